"""End to end: networks other than the MLP (the user's own factory in `networks/`, the built-in
CNN with augmentation) through the real `dvc repro`, `dvc exp run`, `mlflow run` and
`python -m pipeline`, in a scratch copy of the repository; checked in its SQLite MLflow store,
its DVC status and its outputs."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from safetensors.numpy import load_file

from tests.support.repo import REPO, TINY_PARAMS, Runner, make_runner, scratch_repo
from tests.support.tracking import training_runs

pytestmark = pytest.mark.e2e

PY = sys.executable
EXPERIMENT = TINY_PARAMS["mlflow"]["experiment"]
USER_NETWORK = "networks.example:build"
# Digits are one-channel 8×8 images (meta.json's input_shape (1, 8, 8)), and networks/example.py
# starts with a 3×3 convolution to 16 channels: its first weight, as the files hold it.
EXAMPLE_FIRST_CONV = (16, 1, 3, 3)

# The tiny study on the example network. `label_noise` is written out so that
# `dvc exp run -S data.label_noise=...` can set it (DVC's -S changes a key, it adds none).
USER_PARAMS = copy.deepcopy(TINY_PARAMS)
USER_PARAMS["data"]["label_noise"] = 0.0
USER_PARAMS["model"] = {"network": USER_NETWORK}
USER_PARAMS["train"]["epochs"] = 2
USER_PARAMS["variants"]["dropout"] = {"dropout": 0.3}
USER_VARIANTS = set(USER_PARAMS["variants"])
SEEDS = USER_PARAMS["train"]["seeds"]


def write_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def pairs(runs: list) -> list[tuple[str, int]]:
    return sorted((r.data.tags["variant"], int(r.data.tags["seed"])) for r in runs)


def weight_shapes(folder: Path) -> set[tuple[int, ...]]:
    """The shapes of the tensors a run's `model.safetensors` holds."""
    return {tuple(t.shape) for t in load_file(folder / "model.safetensors").values()}


def architecture_of(folder: Path) -> dict:
    return json.loads((folder / "architecture.json").read_text())["architecture"]


def dvc_status(repo: Path) -> dict:
    return json.loads(make_runner(repo)("dvc", "status", "dvc.yaml", "--json").stdout)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def the_dataset(run) -> tuple[str, str, dict]:
    """The one dataset input of a training run: (name, digest, profile)."""
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1, f"{run.info.run_name}: {len(inputs)} dataset inputs"
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags == {"mlflow.data.context": "training"}, tags
    dataset = inputs[0].dataset
    return dataset.name, dataset.digest, json.loads(dataset.profile)


# --- a study of the example network, reproduced once for the tests that read it --------------


@pytest.fixture(scope="module")
def user_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`dvc repro` of the tiny study with `model.network: networks.example:build`. Python
    writes its bytecode as it does outside this test session (PYTHONDONTWRITEBYTECODE empty):
    importing the network then leaves networks/__pycache__/ beside it. The tests after the
    ones that read it edit it, in the order they are written."""
    repo = scratch_repo(tmp_path_factory.mktemp("networks") / "repo", USER_PARAMS)
    make_runner(repo)("dvc", "repro", PYTHONDONTWRITEBYTECODE="")
    return repo


def test_a_users_network_trains_every_variant_under_dvc(user_study: Path) -> None:
    runs = training_runs(user_study, EXPERIMENT)
    assert pairs(runs) == sorted((v, s) for v in USER_VARIANTS for s in SEEDS)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["network"] == USER_NETWORK
        # Dropout is a number MLflow can chart: the variant's rate as params.yaml writes it.
        rate = USER_PARAMS["variants"][run.data.tags["variant"]].get("dropout", 0.0)
        assert float(run.data.params["dropout"]) == rate
    assert {r.data.params["dropout"] for r in runs if r.data.tags["variant"] == "dropout"} == {
        "0.3"
    }
    for variant in USER_VARIANTS:
        for seed in SEEDS:
            folder = user_study / "models" / variant / f"seed{seed}"
            assert architecture_of(folder)["network"] == USER_NETWORK
            # The example's layers were trained, not the MLP's.
            assert EXAMPLE_FIRST_CONV in weight_shapes(folder), folder
    report = (user_study / "reports" / "gap_report.md").read_text()
    assert f"network {USER_NETWORK}" in report


# Run with the scratch repository as the working directory, where `networks` imports: the
# network rebuilt from a run's saved files, its class probabilities on the first 5 validation
# rows of its seed's split; those rows raw, as the pool holds them, for the model loaded
# elsewhere.
REBUILD = """
import json, sys
from pathlib import Path
import numpy as np, torch
from safetensors.torch import load_file
from pipeline.core.architecture import Architecture
from pipeline.data.prepared import load_pool
from pipeline.data.splits import draw
from pipeline.training.model import build
folder, seed, rows, out = sys.argv[1:]
described = json.loads(open(f"{folder}/architecture.json").read())
network = build(Architecture.from_json(described["architecture"]))
network.load_state_dict(load_file(f"{folder}/model.safetensors"))
network.eval()
pool = load_pool(Path("data/prepared"))
drawn = draw(pool, int(seed))
np.save(rows, pool.x[drawn.indices["val"][:5]])
with torch.no_grad():
    np.save(out, torch.softmax(network(torch.from_numpy(drawn.val.x[:5])), 1).numpy())
print(sys.modules["networks.example"].__file__)
"""

# Run in a folder outside the repository, where `networks` does not import: the logged model
# loaded by MLflow, its class probabilities on the same rows, raw.
LOAD_ELSEWHERE = """
import importlib.util, json, sys
import numpy as np
assert importlib.util.find_spec("networks") is None, "networks imports here"
import mlflow.pyfunc
uri, rows, out = sys.argv[1:]
model = mlflow.pyfunc.load_model(uri)
np.save(out, np.stack(model.predict(np.load(rows))["probabilities"].to_list()))
network = model.unwrap_python_model().network
print(json.dumps({"module": sys.modules["networks.example"].__file__,
                  "training": network.training}))
"""


def test_the_logged_model_loads_where_networks_does_not_import(
    user_study: Path, tmp_path: Path
) -> None:
    [run] = [
        r
        for r in training_runs(user_study, EXPERIMENT)
        if r.data.tags["variant"] == "dropout" and r.data.tags["seed"] == "1"
    ]
    folder = user_study / "models" / "dropout" / "seed1"
    rows, saved = tmp_path / "rows.npy", tmp_path / "saved.npy"
    rebuilt = make_runner(user_study)(PY, "-c", REBUILD, str(folder), "1", str(rows), str(saved))
    assert Path(rebuilt.stdout.strip()) == user_study / "networks" / "example.py"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    loaded = make_runner(elsewhere)(
        PY,
        "-c",
        LOAD_ELSEWHERE,
        f"runs:/{run.info.run_id}/model",
        str(rows),
        str(tmp_path / "loaded.npy"),
        MLFLOW_TRACKING_URI=f"sqlite:///{user_study / 'mlflow.db'}",
    )
    found = json.loads(loaded.stdout.strip().splitlines()[-1])
    # The network's module came with the model, from neither repository.
    module = Path(found["module"])
    assert module.parts[-2:] == ("networks", "example.py")
    assert not module.is_relative_to(user_study) and not module.is_relative_to(REPO), module
    assert found["training"] is False

    expected, predicted = np.load(saved), np.load(tmp_path / "loaded.npy")
    assert expected.shape == (5, 10)  # digits: 10 classes
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5)


def test_every_training_run_logs_its_data_as_a_dataset_input(user_study: Path) -> None:
    runs = training_runs(user_study, EXPERIMENT)
    found = [the_dataset(r) for r in runs]
    assert {name for name, _, _ in found} == {"digits"}
    digests = {digest for _, digest, _ in found}
    assert len(digests) == 1, f"one study, one data: {digests}"
    assert re.fullmatch(r"[0-9a-f]{12}", digests.pop())
    assert {profile["label_noise"] for _, _, profile in found} == {0.0}


def test_python_bytecode_beside_the_network_does_not_retrain(
    user_study: Path, tmp_path: Path
) -> None:
    cache = user_study / "networks" / "__pycache__"
    if not cache.is_dir():
        pytest.fail("no bytecode was written beside the network: nothing to check")
    shutil.move(cache, tmp_path / "__pycache__")
    try:  # as in a fresh clone, or after `git clean -fdX`
        assert dvc_status(user_study) == {}
    finally:
        shutil.move(tmp_path / "__pycache__", cache)


def test_editing_the_network_retrains_every_stage_that_builds_it(user_study: Path) -> None:
    run = make_runner(user_study)
    before = {r.info.run_id: r for r in training_runs(user_study, EXPERIMENT)}
    assert dvc_status(user_study) == {}
    source = user_study / "networks" / "example.py"
    text = source.read_text()
    # The first convolution: 16 channels -> 12, wherever its width matters.
    for old, new in (
        ("nn.Conv2d(channels, 16, 3, padding=1)", "nn.Conv2d(channels, 12, 3, padding=1)"),
        ("nn.BatchNorm2d(16)", "nn.BatchNorm2d(12)"),
        ("nn.Conv2d(16, 32, 3, padding=1)", "nn.Conv2d(12, 32, 3, padding=1)"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    source.write_text(text)

    changed = {"networks": "modified"}
    expected = {f"train@{v}" for v in USER_VARIANTS} | {"rounds"}
    assert dvc_status(user_study) == {stage: [{"changed deps": changed}] for stage in expected}
    done = run("dvc", "repro", PYTHONDONTWRITEBYTECODE="")
    assert ran_stages(done.stdout) == expected | {"report"}
    assert dvc_status(user_study) == {}

    new = [r for r in training_runs(user_study, EXPERIMENT) if r.info.run_id not in before]
    assert pairs(new) == sorted((v, s) for v in USER_VARIANTS for s in SEEDS)
    assert all(r.info.status == "FINISHED" for r in new)
    for variant in USER_VARIANTS:
        for seed in SEEDS:
            shapes = weight_shapes(user_study / "models" / variant / f"seed{seed}")
            assert (12, 1, 3, 3) in shapes and EXAMPLE_FIRST_CONV not in shapes
    # The same data as before: the same dataset digest.
    assert {the_dataset(r)[1] for r in new} == {the_dataset(r)[1] for r in before.values()}


def test_editing_one_variant_retrains_only_it(user_study: Path) -> None:
    before = {r.info.run_id for r in training_runs(user_study, EXPERIMENT)}
    # What a variant tests is a comment beside its name: rewording it changes no parameter.
    text = (user_study / "params.yaml").read_text()
    assert "\n  l2:\n" in text
    (user_study / "params.yaml").write_text(text.replace("\n  l2:\n", "\n  l2:  # reworded\n"))
    assert dvc_status(user_study) == {}
    params = yaml.safe_load((user_study / "params.yaml").read_text())
    params["variants"]["l2"]["l2"] = 0.002
    write_params(user_study, params)
    assert set(dvc_status(user_study)) == {"train@l2", "rounds", "report"}
    done = make_runner(user_study)("dvc", "repro", PYTHONDONTWRITEBYTECODE="")
    assert ran_stages(done.stdout) == {"train@l2", "rounds", "report"}
    new = [r for r in training_runs(user_study, EXPERIMENT) if r.info.run_id not in before]
    assert pairs(new) == [("l2", s) for s in SEEDS]
    assert all(float(r.data.params["l2"]) == 0.002 for r in new)
    assert all(r.data.params["network"] == USER_NETWORK for r in new)


def test_a_study_on_other_data_logs_another_digest(user_study: Path) -> None:
    earlier = {the_dataset(r)[1] for r in training_runs(user_study, EXPERIMENT)}
    assert len(earlier) == 1
    make_runner(user_study)(
        "dvc", "exp", "run", "-n", "noisy", "-S", "data.label_noise=0.2", "train@baseline"
    )
    noisy = [
        r
        for r in training_runs(user_study, EXPERIMENT)
        if r.data.tags.get("dvc_exp_name") == "noisy"
    ]
    assert pairs(noisy) == [("baseline", s) for s in SEEDS]
    found = [the_dataset(r) for r in noisy]
    assert {name for name, _, _ in found} == {"digits"}
    assert {profile["label_noise"] for _, _, profile in found} == {0.2}
    [digest] = {digest for _, digest, _ in found}
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert digest not in earlier


# --- one run under `mlflow run`, the network given as a parameter ---------------------------


def test_mlflow_run_takes_the_network_as_a_parameter(
    tiny_repo: Path, run_in: Runner, tmp_path: Path
) -> None:
    run_in(PY, "-m", "pipeline", "prepare")
    done = run_in(
        "mlflow",
        "run",
        ".",
        "-e",
        "train",
        "--env-manager",
        "local",
        "--experiment-name",
        EXPERIMENT,
        "-P",
        "variant=dropout",
        "-P",
        f"network={USER_NETWORK}",
    )
    assert "succeeded" in done.stderr
    [run] = training_runs(tiny_repo, EXPERIMENT)
    assert run.info.status == "FINISHED" and run.info.run_name == "dropout-seed0"
    assert run.data.params["network"] == USER_NETWORK
    # params.yaml's rate for the variant, logged as a number.
    assert run.data.params["dropout"] == str(TINY_PARAMS["variants"]["dropout"]["dropout"])
    # Read through a client of this store only: MLflow's module-level functions would look
    # runs:/ models up in the default store of the working directory.
    client = MlflowClient(tracking_uri=f"sqlite:///{tiny_repo / 'mlflow.db'}")
    weights = Path(client.download_artifacts(run.info.run_id, "weights", str(tmp_path)))
    assert architecture_of(weights)["network"] == USER_NETWORK
    assert EXAMPLE_FIRST_CONV in weight_shapes(weights)
    # The model carries the network's module as it was.
    [model] = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    )
    shipped = Path(model.artifact_location.removeprefix("file://")) / "code" / "networks"
    assert (shipped / "example.py").read_bytes() == (
        tiny_repo / "networks" / "example.py"
    ).read_bytes()
    # A run that differs from params.yaml lives in MLflow only.
    assert not (tiny_repo / "models").exists()


# --- the built-in CNN, with augmentation ------------------------------------------------------


def test_the_cnn_with_augmentation_through_dvc(tmp_path: Path) -> None:
    params = copy.deepcopy(TINY_PARAMS)
    params["model"] = {"network": "cnn", "channels": [4, 8], "hidden_sizes": [16]}
    params["train"]["epochs"] = 2
    params["variants"] = {
        "baseline": {},
        "plain": {},  # nothing either: the baseline's numbers
        "augment": {"crop": 1, "flip": True},
    }
    repo = scratch_repo(tmp_path / "repo", params)
    done = make_runner(repo)("dvc", "repro")
    assert {f"train@{v}" for v in params["variants"]} <= ran_stages(done.stdout)

    runs = training_runs(repo, EXPERIMENT)
    assert pairs(runs) == sorted((v, s) for v in params["variants"] for s in SEEDS)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["network"] == "cnn"
        assert run.data.params["channels"] == "[4, 8]"
        assert run.data.params["hidden_sizes"] == "[16]"
    augmented = [r for r in runs if r.data.tags["variant"] == "augment"]
    assert {(r.data.params["crop"], r.data.params["flip"]) for r in augmented} == {("1", "True")}

    # 3×3 convolutions 1 -> 4 -> 8 channels, each pooling 8×8 by 2: 8 × 2 × 2 features into
    # the dense layer of 16.
    shapes = weight_shapes(repo / "models" / "augment" / "seed0")
    assert {(4, 1, 3, 3), (8, 4, 3, 3), (16, 32), (10, 16)} <= shapes

    # The same seeds train the same numbers unless something acts: `plain` repeats the
    # baseline, and augmentation changes what it learns from the first epoch on.
    def losses(variant: str) -> list[str]:
        rows = (repo / "metrics" / variant / "history.csv").read_text().splitlines()
        column = rows[0].split(",").index("train_loss")
        return [row.split(",")[column] for row in rows[1:]]

    assert len(losses("baseline")) == len(SEEDS) * params["train"]["epochs"]
    assert losses("plain") == losses("baseline")
    assert all(a != b for a, b in zip(losses("augment"), losses("baseline"), strict=True))

    report = (repo / "reports" / "gap_report.md").read_text()
    assert "CNN channels [4, 8]" in report
    row = next(line for line in report.splitlines() if line.startswith("| augment |"))
    assert "crop" in row and "flip" in row, row


# --- refused before anything trains -----------------------------------------------------------

NO_DROPOUT = """from torch import nn


def build(input_shape, n_classes, dropout, input_dropout):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, n_classes))
"""


@pytest.mark.parametrize(
    ("case", "variant", "needles"),
    [
        ("crop on per-feature data", "cropped", ["variants.cropped.crop"]),
        ("a network that fails to import", "baseline", ["model.network", "boom"]),
        ("dropout on a network without", "dropout", ["variants.dropout.dropout"]),
    ],
)
def test_a_variant_that_cannot_apply_is_refused_in_one_line(
    tmp_path: Path, case: str, variant: str, needles: list[str]
) -> None:
    params = copy.deepcopy(TINY_PARAMS)
    files = {}
    if case == "crop on per-feature data":
        params["data"]["normalize"] = "per_feature"
        params["variants"]["cropped"] = {"crop": 2}
    elif case == "a network that fails to import":
        params["model"] = {"network": "networks.broken:build"}
        files["networks/broken.py"] = 'raise RuntimeError("boom")\n'
    else:
        params["model"] = {"network": "networks.plain:build"}
        files["networks/plain.py"] = NO_DROPOUT
    repo = scratch_repo(tmp_path / "repo", params)
    for name, text in files.items():
        (repo / name).write_text(text)
    run = make_runner(repo)
    run(PY, "-m", "pipeline", "prepare")

    refused = run(PY, "-m", "pipeline", "train", "--variant", variant, check=False)
    assert refused.returncode != 0
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    # Nothing trained: no outputs, no MLflow run.
    assert not (repo / "models").exists() and not (repo / "metrics").exists()
    if (repo / "mlflow.db").exists():
        client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
        exp = client.get_experiment_by_name(EXPERIMENT)
        assert exp is None or client.search_runs([exp.experiment_id]) == []


# --- on Ray -----------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_a_users_network_on_a_local_ray_instance(tmp_path: Path) -> None:
    """The study on Ray, with one round that adds a third seed to what is undecided (at
    α = 1e-6 no interval on 2 seeds decides a verdict), gives what the same study gives in
    one process: with one thread per run, bit for bit."""
    params = copy.deepcopy(USER_PARAMS)
    params["variants"] = {"baseline": {}, "dropout": {"dropout": 0.3}}
    params["rounds"] = {"max": 3, "step": 1}
    params["report"] = {"baseline": "baseline", "alpha": 1e-6}
    repo = scratch_repo(tmp_path / "repo", params)
    run = make_runner(repo)
    done = run(
        PY,
        "-m",
        "pipeline",
        "study",
        "--executor",
        "ray",
        "--cpus-per-run",
        "0.5",
        RAY_AUTH_MODE="token",
        RAY_USAGE_STATS_ENABLED="0",
    )
    assert f"[{len(params['variants']) * len(SEEDS)}/" in done.stderr
    runs = training_runs(repo, EXPERIMENT)
    added = len(SEEDS)  # the round's seed
    assert pairs(runs) == sorted((v, s) for v in params["variants"] for s in [*SEEDS, added])
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.tags["executor"] == "ray"
        assert r.data.params["network"] == USER_NETWORK
    for variant in params["variants"]:
        for seed in SEEDS:
            folder = repo / "models" / variant / f"seed{seed}"
            assert architecture_of(folder)["network"] == USER_NETWORK
            assert EXAMPLE_FIRST_CONV in weight_shapes(folder)
    assert (repo / "reports" / "gap_report.md").is_file()

    on_ray = outcomes(repo, params["variants"])
    shutil.rmtree(repo / "rounds")  # trained again in-process, not reused
    run(PY, "-m", "pipeline", "study")  # into the same SQLite store
    assert outcomes(repo, params["variants"]) == on_ray


def outcomes(repo: Path, variants: dict) -> dict:
    """What a study's training gave: each variant's runs (without their timing), the seeds
    its rounds added, and rounds/rounds.json."""
    return {
        "runs": {
            v: [r["summary"] for r in json.loads((repo / "metrics" / v / "runs.json").read_text())]
            for v in variants
        },
        "added": {
            str(path.parent.relative_to(repo)): json.loads(path.read_text())["summary"]
            for path in sorted((repo / "rounds").glob("*/seed*/record.json"))
        },
        "rounds": json.loads((repo / "rounds" / "rounds.json").read_text()),
    }
