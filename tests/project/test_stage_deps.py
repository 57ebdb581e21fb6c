"""Each DVC stage depends on the package's layers it runs, and on its own stage module: an edit
to code it runs reruns the stage (so no output is stale), and an edit to a layer it does not
import does not (so editing the report does not retrain). The code a stage runs is the import
closure of its stage module and of `loading` (which turns params.yaml into what the stage
gets); the command line that dispatches to it and the packages' docstring-only `__init__`
files are not counted. The layers' imports point one way, down the list `LAYERS`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from pipeline.cli.sweep_stages import sweep_dvc_yaml
from tests.support.repo import REPO

PACKAGE = REPO / "pipeline"
# The package's layers, lowest first (docs/layout.md): a module imports from its own layer or
# from those before it, never from one after it.
LAYERS = (
    "core",
    "data",
    "training",
    "tracking",
    "executors",
    "outputs",
    "analysis",
    "reports",
    "stages",
    "cli",
)


LOGGED_MODEL = PACKAGE / "tracking" / "logged_model.py"


def module_file(dotted: str) -> Path | None:
    """The file of `pipeline.<dotted>` (a module, not a package), if there is one."""
    path = PACKAGE.joinpath(*dotted.split(".")) if dotted else PACKAGE
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imports_of(path: Path) -> set[Path]:
    """The package's modules `path` imports, at the top or inside functions."""
    package = path.relative_to(PACKAGE).parent.parts
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - node.level + 1])
            base += node.module.split(".") if node.module else []
            names = [".".join(base)] + [".".join([*base, a.name]) for a in node.names]
        elif path == LOGGED_MODEL and isinstance(node, ast.ImportFrom) and node.module:
            # MLflow loads this file by its path, outside the package: absolute names
            base = node.module.removeprefix("pipeline").lstrip(".").split(".")
            names = [".".join(base)]
        elif isinstance(node, ast.ImportFrom | ast.Import):
            assert not any(a.name.startswith("pipeline") for a in node.names), "use relative"
            assert not (getattr(node, "module", "") or "").startswith("pipeline"), path
            continue
        else:
            continue
        found |= {f for f in map(module_file, names) if f is not None}
    return found


def code_of(stage_module: str) -> set[str]:
    todo = [PACKAGE / "stages" / f"{stage_module}.py", PACKAGE / "core" / "loading.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imports_of(path))
    return {str(p.relative_to(REPO)) for p in seen}


def code_deps(stage: dict) -> set[str]:
    return {d for d in stage["deps"] if isinstance(d, str) and d.startswith("pipeline/")}


def covers(dep: str, path: str) -> bool:
    """Whether the DVC dependency `dep` (a file or a folder) holds `path`."""
    return path == dep or path.startswith(dep + "/")


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return "cli" if len(parts) == 1 else parts[0]  # __main__.py is the command line


def test_every_module_is_in_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert layer_of(path) in LAYERS, path


def test_imports_point_down_the_layers() -> None:
    climbs = [
        f"{path.relative_to(PACKAGE)} imports {target.relative_to(PACKAGE)}"
        for path in PACKAGE.rglob("*.py")
        for target in imports_of(path)
        if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(path))
    ]
    assert climbs == []


def test_init_files_hold_no_code_that_could_change_a_result() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        kinds = {type(node) for node in body}
        assert kinds <= {ast.Expr, ast.Assign}, init  # a docstring, constant names


STUDY = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
SWEEP = yaml.safe_load(sweep_dvc_yaml())["stages"]


@pytest.mark.parametrize(
    ("stage", "module"),
    [
        (STUDY["prepare"], "prepare"),
        (STUDY["train"]["do"], "train"),
        (STUDY["rounds"], "rounds"),
        (STUDY["report"], "report"),
        (SWEEP["sweep-l2"], "sweep_point"),
        (SWEEP["sweep-report"], "sweep_report"),
    ],
    ids=["prepare", "train", "rounds", "report", "sweep-point", "sweep-report"],
)
def test_a_stage_depends_on_the_code_it_runs_and_no_other(stage: dict, module: str) -> None:
    declared, runs = code_deps(stage), code_of(module)
    assert {p for p in runs if not any(covers(d, p) for d in declared)} == set(), "undeclared"
    assert {d for d in declared if not any(covers(d, p) for p in runs)} == set(), "not run"
    assert len(declared) <= 8  # a layer per entry: readable at a glance


def test_report_code_is_not_a_dependency_of_training() -> None:
    train = code_of("train") | code_of("sweep_point")
    assert not any(
        covers(f"pipeline/{layer}", p) for p in train for layer in ("analysis", "reports")
    )


def test_the_reports_do_not_import_the_networks() -> None:
    """Editing a network or the training loop retrains, and does not rewrite the report."""
    for stage in ("report", "sweep_report"):
        assert not any(covers("pipeline/training", path) for path in code_of(stage)), stage


def test_only_the_commands_import_a_stage() -> None:
    """Stage modules are not a library: a stage that needs another's work gets it from files,
    and only the command line (and `study`, which runs three stages) imports them."""
    stages = set((PACKAGE / "stages").glob("*.py")) - {PACKAGE / "stages" / "__init__.py"}
    # MLflow loads the logged model's code by its path, outside the package: it imports
    # the network's modules by their absolute names, and nothing else of the package.
    model_code = LOGGED_MODEL
    tree = ast.parse(model_code.read_text())
    from_package = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline")
    }
    assert from_package == {
        "pipeline.core.architecture",
        "pipeline.training.model",
        "pipeline.training.user_network",
    }
    modules = set(PACKAGE.rglob("*.py")) - {model_code}
    importers = {str(path.relative_to(REPO)) for path in modules if imports_of(path) & stages}
    assert importers == set()  # the commands import theirs by name when they run: see below
    text = (PACKAGE / "cli" / "main.py").read_text() + (PACKAGE / "cli" / "study.py").read_text()
    called = set(re.findall(r'stage\("(\w+)"\)', text))
    assert called == {path.stem for path in stages}


def test_the_logged_model_carries_the_code_it_imports() -> None:
    """An MLflow model's code (`MODEL_CODE`) is the closure of what tracking/logged_model.py
    imports from the package: it then loads where the project is not installed."""
    from pipeline.executors.mlflow_model import MODEL_CODE

    todo = [PACKAGE / "core" / "architecture.py", PACKAGE / "training" / "model.py"]
    todo.append(PACKAGE / "training" / "user_network.py")
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imports_of(path))
    assert {str(p.relative_to(PACKAGE)) for p in seen} == set(MODEL_CODE)


def test_training_stages_depend_on_the_users_networks() -> None:
    for stage in (STUDY["train"]["do"], STUDY["rounds"], SWEEP["sweep-l2"]):
        assert "networks" in stage["deps"]
        assert "model" in stage["params"]


def test_only_the_rounds_and_the_report_read_the_seed_budget() -> None:
    """A new seed budget (`rounds`) retrains no seed of the train stages or strength paths."""
    assert "rounds" in STUDY["rounds"]["params"]
    for stage in (STUDY["train"]["do"], SWEEP["sweep-l2"], SWEEP["sweep-report"]):
        assert "rounds" not in stage["params"]
