"""A user's own image folder (`dataset: imagefolder`) and table (`csv`, `parquet`), read by
`data/sources.py`: what they become, and what each may not hold, refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.core.config import DataConfig
from pipeline.core.errors import DataError
from pipeline.data.pool import pool_of
from pipeline.data.sources import load_source
from pipeline.data.splits import draw
from tests.support.data import table, write_image_folder


def folder_cfg(root: Path) -> DataConfig:
    return DataConfig(dataset="imagefolder", path=str(root))


def refused(cfg: DataConfig) -> str:
    with pytest.raises(DataError) as info:
        load_source(cfg)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_an_image_folder_is_read_as_images_its_folders_naming_the_classes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=5, size=(8, 6))
    source = load_source(folder_cfg(root))
    assert source.x.shape == (15, 1, 6, 8) and source.x.dtype == np.uint8  # (N, C, H, W)
    assert source.class_names == ["cat", "dog", "eel"]  # the folders, sorted: classes 0, 1, 2
    assert source.y.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    on_disk = np.asarray(Image.open(root / "dog" / "3.png"))
    assert np.array_equal(source.x[5 + 3, 0], on_disk)  # sorted by name: 0, 1, 2, 3 ...
    pool = pool_of(folder_cfg(root))
    assert pool.meta["input_shape"] == [1, 6, 8] and pool.meta["n_features"] == 48
    assert pool.meta["class_names"] == ["cat", "dog", "eel"]
    assert pool.meta["source"] == str(root)


def test_colour_images_are_three_channels_and_grey_ones_among_them_too(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=4, size=(5, 7), mode="RGB")
    Image.open(root / "cat" / "0.png").convert("L").save(root / "cat" / "0.png")  # one grey
    Image.open(root / "dog" / "0.png").convert("RGBA").save(root / "dog" / "0.png")
    x = load_source(folder_cfg(root)).x
    assert x.shape == (12, 3, 7, 5)
    grey = x[0]  # read as RGB: the same value in each channel
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[1], grey[2])
    rgb = np.asarray(Image.open(root / "cat" / "1.png"))
    assert np.array_equal(x[1], rgb.transpose(2, 0, 1))  # channels first


def test_an_image_of_another_size_is_refused_naming_it(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=4, size=(8, 6))
    Image.new("L", (9, 6)).save(root / "dog" / "2.png")
    message = refused(folder_cfg(root))
    assert message == (
        f"{root / 'dog' / '2.png'}: 9×6 pixels, but 11 of the 12 images are 8×6 "
        "(width×height); every image must have one size"
    )


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda root: root.mkdir(), "no class folders in it"),
        (
            lambda root: (root / "cat").mkdir(parents=True),
            "Found no valid file for the classes cat",
        ),
        (
            lambda root: None,
            "no such folder (data.path must name the folder of <class>/<image> files)",
        ),
        (
            lambda root: (
                write_image_folder(root, per_class=2),
                (root / "cat" / "9.png").write_bytes(b"not a png"),
            ),
            "9.png: not a readable image",
        ),
        (
            lambda root: (
                write_image_folder(root, per_class=2),
                Image.new("I;16", (8, 6)).save(root / "eel" / "deep.png"),
            ),
            "deep.png: a I;16 image (16-bit or floating-point pixels)",
        ),
        (lambda root: write_image_folder(root, classes=("only",)), "at least two classes"),
    ],
    ids=["no-classes", "empty-class", "no-folder", "not-an-image", "16-bit", "one-class"],
)
def test_an_image_folder_the_study_cannot_use_is_refused(tmp_path: Path, make, needle: str) -> None:
    root = tmp_path / "imgs"
    make(root)
    assert needle in refused(folder_cfg(root))


def write_table(tmp_path: Path, kind: str, columns: dict[str, list]) -> Path:
    path = tmp_path / f"table.{kind}"
    frame = pd.DataFrame(columns)
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def table_cfg(path: Path, kind: str, label_column: str = "kind") -> DataConfig:
    return DataConfig(dataset=kind, path=str(path), label_column=label_column)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_table_is_its_numeric_columns_and_its_label_column(tmp_path: Path, kind: str) -> None:
    columns = table(n=30)
    path = write_table(tmp_path, kind, columns)
    source = load_source(table_cfg(path, kind))
    assert source.class_names == ["high", "low", "mid"]  # sorted: classes 0, 1, 2
    expected_y = [["high", "low", "mid"].index(k) for k in columns["kind"]]
    assert source.y.tolist() == expected_y and source.y.dtype == np.int64
    # every other column, in the table's order, a feature
    expected_x = np.column_stack([columns["width"], columns["height"], columns["count"]])
    assert np.allclose(source.x, expected_x) and source.x.shape == (30, 3)
    pool = pool_of(table_cfg(path, kind))
    assert pool.meta["input_shape"] == [3] and pool.meta["class_names"] == ["high", "low", "mid"]
    assert draw(pool, 0).meta["sizes"] == {"train": 18, "val": 6, "test": 6}


@pytest.mark.parametrize(
    ("labels", "names"),
    [
        ((10, 2, 7), ["2", "7", "10"]),  # numbers in numeric order, not as text
        ((1.0, 0.0), ["0", "1"]),
        ((0.5, 1.5), ["0.5", "1.5"]),
        ((True, False), ["False", "True"]),
    ],
)
def test_numeric_labels_become_classes_in_sorted_order(
    tmp_path: Path, labels: tuple, names: list[str]
) -> None:
    columns = table(n=12, labels=labels)
    source = load_source(table_cfg(write_table(tmp_path, "csv", columns), "csv"))
    assert source.class_names == names
    shown = [str(v) if isinstance(v, bool) or v % 1 else str(int(v)) for v in columns["kind"]]
    assert [names[c] for c in source.y] == shown


def test_a_table_the_study_cannot_use_is_refused_naming_what_is_wrong(tmp_path: Path) -> None:
    columns = table(n=12)
    path = write_table(tmp_path, "csv", columns)
    assert refused(table_cfg(path, "csv", "label")) == (
        f"{path}: no column 'label' (data.label_column); its columns: width, kind, height, count"
    )
    with_text = write_table(tmp_path, "csv", {**columns, "colour": ["red"] * 12, "id": ["a"] * 12})
    assert refused(table_cfg(with_text, "csv")) == (
        f"{with_text}: non-numeric feature column(s) colour, id; every column but the label "
        "column 'kind' must hold numbers"
    )
    gaps = write_table(tmp_path, "parquet", {**columns, "width": [None] + columns["width"][1:]})
    assert "empty cells in column(s) width" in refused(table_cfg(gaps, "parquet"))
    only_label = write_table(tmp_path, "csv", {"kind": columns["kind"]})
    assert "no feature column besides the label column 'kind'" in refused(
        table_cfg(only_label, "csv")
    )
    assert "no such file" in refused(table_cfg(tmp_path / "absent.csv", "csv"))
    not_parquet = tmp_path / "text.parquet"
    not_parquet.write_text("a,b\n1,2\n")
    assert f"{not_parquet}: not a readable parquet file" in refused(
        table_cfg(not_parquet, "parquet")
    )
    with_index = tmp_path / "indexed.csv"
    pd.DataFrame(columns).to_csv(with_index)  # pandas' row index as a first, unnamed column
    assert refused(table_cfg(with_index, "csv")) == (
        f"{with_index}: column(s) without a name in the header (Unnamed: 0), as pandas writes "
        "a row index: drop them (DataFrame.to_csv(path, index=False)) or name them"
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert f"{empty}: not a readable csv file" in refused(table_cfg(empty, "csv"))
    one_class = write_table(tmp_path, "csv", table(n=6, labels=("a",)))
    assert "at least two classes" in refused(table_cfg(one_class, "csv"))


def test_a_wide_tables_columns_are_listed_in_part(tmp_path: Path) -> None:
    path = write_table(tmp_path, "csv", {f"p{i}": [0, 1] for i in range(30)})
    message = refused(table_cfg(path, "csv", "label"))
    assert message.endswith("its columns: p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, … (30 in all)")
