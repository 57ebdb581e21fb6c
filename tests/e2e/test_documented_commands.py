"""End to end: every command of the README's "Using it" table and every script behind a make
target, run at tiny settings in a scratch copy of the repository, so that none can break
unseen. Where another test already runs a command, the tables below name that test instead of
running it twice; the first two tests keep the tables complete against README.md and the
Makefile.

The slow commands (`make bench`, `make cnn-example`, `make screenshot`, the experiments
`make noise` queues, a larger seed budget) start before the first test and run beside the
others, each test waiting for its own, so that both cores of a 2-core machine have work.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy
from mlflow import MlflowClient

from pipeline.core.loading import OVERRIDABLE
from pipeline.core.techniques import TECHNIQUES
from tests.support.postgres import Cluster, postgres_cluster
from tests.support.repo import BIN, REPO, TINY_PARAMS, command_env, make_runner, scratch_repo
from tests.support.servers import free_port, get_json, job_runner_processes, wait_for_health
from tests.support.simulated_studies import NOISES, TRUTHS, schedules
from tests.support.tracking import client_for

pytestmark = pytest.mark.e2e

PY = sys.executable
EXPERIMENT = TINY_PARAMS["mlflow"]["experiment"]

# The study most commands run on: two variants, two seeds, then one more in a round. At
# α = 1e-6 no interval on 2 to 4 seeds decides a verdict, so every round has seeds to add.
STUDY = copy.deepcopy(TINY_PARAMS)
STUDY["data"]["label_noise"] = 0.0  # as params.yaml has it: `make noise` sets it with -S
STUDY["variants"] = {"baseline": {}, "l2": {"l2": 0.01}}
STUDY["rounds"] = {"max": 3, "step": 1}
STUDY["report"] = {"baseline": "baseline", "alpha": 1e-6}
STUDY["mlflow"]["log_model"] = False  # no test here reads a logged model (test_dvc.py does)
SEEDS_AFTER_ROUNDS = 3
# The least a script that trains can run on: the baseline, one seed, one epoch.
SOLO = copy.deepcopy(TINY_PARAMS)
SOLO["variants"] = {"baseline": {}}
SOLO["train"].update(seeds=[0], epochs=1)


@dataclass(frozen=True)
class Covered:
    """How a documented command is run at tiny settings (`runs`), and the test that runs it:
    a node id in this module, or of the test elsewhere that already does."""

    test: str
    runs: str


HERE = "tests/e2e/test_documented_commands.py::"
E2E_DVC_EXPERIMENTS = "tests/e2e/test_dvc.py::test_experiments_run_queued_and_side_by_side"
E2E_DVC_EXP = Covered(
    E2E_DVC_EXPERIMENTS,
    "dvc exp run -n strong-dropout -S variants.dropout.dropout=0.3, then dvc exp show "
    "--only-changed at 120 columns, "
    "dvc exp diff and dvc plots diff of it and the queued experiment",
)
E2E_DVC_QUEUE = Covered(
    E2E_DVC_EXPERIMENTS,
    "dvc exp run --queue -n queued-l2 -S variants.l2.l2=0.01, then dvc queue start",
)
IN_VENV = Covered(
    f"{HERE}test_the_whole_study_runs_inside_the_venv",
    "source .venv/bin/activate && command -v dvc && dvc repro",
)
BY_HAND = Covered(
    f"{HERE}test_one_stage_by_hand",
    "python -m pipeline prepare; python -m pipeline train --variant l2; python -m pipeline report",
)
SERVER = Covered(
    f"{HERE}test_make_server_is_a_tracking_server_on_postgresql",
    "scripts/tracking-server on a free port with a database of its own; a client of its "
    "address logs a run and an artifact",
)
SWEEP = Covered(
    "tests/e2e/test_evidence.py::"
    "test_strength_paths_run_one_stage_per_point_and_report_against_the_baseline",
    "dvc repro sweep-stages/dvc.yaml",
)
TUNED = Covered(
    "tests/e2e/test_evidence.py::"
    "test_strength_paths_run_one_stage_per_point_and_report_against_the_baseline",
    "python -m pipeline tuned before and after the study's stages it stands on",
)
NOISE = Covered(
    f"{HERE}test_make_noise_compares_the_study_at_each_label_noise",
    "dvc exp run --queue -n noise-L -S data.label_noise=L for L in 0, 0.2; "
    "dvc queue start --jobs 1; dvc queue status until none is queued or running; "
    "python -m pipeline compare --by label_noise",
)

# Every backticked text of the "run" column of the README's "Using it" table, as written there.
README_COMMANDS: dict[str, Covered] = {
    "dvc repro": IN_VENV,
    ".venv": IN_VENV,
    "source .venv/bin/activate": IN_VENV,
    "dvc exp run -S variants.dropout.dropout=0.3": E2E_DVC_EXP,
    "dvc exp show --only-changed": E2E_DVC_EXP,
    "dvc exp run -S rounds.max=20 -S rounds.step=5": Covered(
        f"{HERE}test_a_larger_seed_budget_trains_only_the_added_seeds",
        "dvc exp run -S rounds.max=4 -S rounds.step=1",
    ),
    "dvc exp run --queue -S train.lr=0.003": E2E_DVC_QUEUE,
    "dvc queue start": E2E_DVC_QUEUE,
    "python -m pipeline study": Covered(
        "tests/e2e/test_cli.py::test_study_without_dvc", "python -m pipeline study"
    ),
    "python -m pipeline study --executor ray [--address HOST:PORT]": Covered(
        "tests/e2e/test_cluster.py::test_ray_cluster_runs_the_grid_into_the_shared_server",
        "python -m pipeline study --executor ray --address HOST:PORT --cpus-per-run 0.5",
    ),
    "make server": SERVER,
    "export MLFLOW_TRACKING_URI=http://127.0.0.1:5001": SERVER,
    "python -m pipeline prepare": BY_HAND,
    "… train --variant l2": BY_HAND,
    "… report": BY_HAND,
    "python -m pipeline train --variant l2 --l2 3e-4 --seed 5": Covered(
        "tests/e2e/test_cli.py::test_one_run_with_overrides_needs_no_rounds",
        "python -m pipeline train --variant l2 --l2 3e-4 --seed 5",
    ),
    "--help": Covered(
        f"{HERE}test_techniques_and_train_help_list_every_knob", "python -m pipeline train --help"
    ),
    "python -m pipeline train --variant l2 --resume": Covered(
        "tests/e2e/test_resume.py::"
        "test_sigterm_kills_the_run_and_resume_matches_an_uninterrupted_run",
        "python -m pipeline train --variant dropout --resume, after a SIGTERM mid-stage",
    ),
    "mlflow run . -e train -P variant=dropout -P dropout=0.3 --env-manager local "
    "--experiment-name regularization-study": Covered(
        "tests/e2e/test_mlflow.py::test_mlflow_run_trains_one_variant_with_overrides",
        "mlflow run . -e train --env-manager local --experiment-name tiny-study "
        "-P variant=dropout -P dropout=0.3 -P lr=1e-2",
    ),
    "make sweep": SWEEP,
    "make tuned": TUNED,
    "reports/sweep/": SWEEP,
    "reports/tuned/": SWEEP,
    "make noise": NOISE,
    "reports/compare/label_noise/": NOISE,
    "python -m pipeline compare --by n_train [--where dataset=mnist-5k]": Covered(
        f"{HERE}test_compare_across_a_logged_parameter",
        "python -m pipeline compare --by n_train --where dataset=digits",
    ),
    "make ui": Covered(
        "tests/e2e/test_reliability.py::"
        "test_ui_binds_to_loopback_with_one_worker_and_no_job_runner",
        "python -m pipeline ui --port PORT",
    ),
    "dvc exp diff A B": E2E_DVC_EXP,
    "dvc plots diff A B": E2E_DVC_EXP,
}


@dataclass(frozen=True)
class Target:
    """A make target: its recipe as the Makefile has it, and the tests that run it small."""

    recipe: tuple[str, ...]
    covered: tuple[Covered, ...]


MAKE_TARGETS: dict[str, Target] = {
    "study": Target(
        ("python -m pipeline machine-note", "dvc repro", "python -m pipeline next-steps"),
        (
            Covered(
                "tests/unit/cli/test_machine_note.py::"
                "test_results_made_on_another_cpu_get_a_note_and_no_torch",
                "python -m pipeline machine-note",
            ),
            Covered(
                "tests/e2e/test_dvc.py::test_a_fresh_clone_logs_the_committed_report_to_mlflow",
                "dvc repro, then python -m pipeline next-steps",
            ),
        ),
    ),
    "budget": Target(
        ("python scripts/larger_budget.py --max 20 --step 5", "python scripts/readme_findings.py"),
        (
            Covered(
                f"{HERE}test_make_budget_reports_what_more_seeds_decide",
                "python scripts/larger_budget.py --max 4 --step 1; "
                "python scripts/readme_findings.py",
            ),
        ),
    ),
    "simulate": Target(
        (
            "python -m scripts.simulate_rounds --studies 2000",
            "python -m scripts.simulate_tuned --studies 2000",
        ),
        (
            Covered(
                f"{HERE}test_make_simulate_prints_every_row_of_the_verdicts_table",
                "python -m scripts.simulate_rounds --studies 2",
            ),
            Covered(
                "tests/unit/scripts/test_simulate_tuned.py::"
                "test_the_table_has_a_row_per_scenario_with_fractions_in_its_cells",
                "python -m scripts.simulate_tuned --studies 5",
            ),
        ),
    ),
    "cnn-example": Target(
        ("python scripts/cnn_example.py",),
        (
            Covered(
                f"{HERE}test_make_cnn_example_reports_the_cnn_with_augmentation",
                "python scripts/cnn_example.py --epochs 1",
            ),
        ),
    ),
    "sweep": Target(("dvc repro sweep-stages/dvc.yaml",), (SWEEP,)),
    "tuned": Target(("dvc repro", "python -m pipeline tuned"), (TUNED,)),
    "noise": Target(
        (
            "for level in 0 0.2 0.4; do dvc exp run --queue -f -n noise-$$level"
            " -S data.label_noise=$$level; done",
            "dvc queue start --jobs 1",
            "while dvc queue status | grep -qE 'Queued|Running'; do sleep 10; done",
            "dvc queue status",
            "python -m pipeline compare --by label_noise",
        ),
        (NOISE,),
    ),
    "readme": Target(
        ("python scripts/readme_findings.py",),
        (
            Covered(
                f"{HERE}test_make_readme_copies_the_reports_findings",
                "python scripts/readme_findings.py",
            ),
        ),
    ),
    "screenshot": Target(
        ("scripts/chromium-up", "python -m scripts.ui_screenshot"),
        (
            Covered(
                f"{HERE}test_make_screenshot_takes_the_studys_view",
                "scripts/chromium-up; python -m scripts.ui_screenshot",
            ),
        ),
    ),
    "bench": Target(
        ("python benchmarks/bench.py",),
        (Covered(f"{HERE}test_make_bench_runs_every_step", "python benchmarks/bench.py --quick"),),
    ),
    "ui": Target(("python -m pipeline ui",), (README_COMMANDS["make ui"],)),
    "server": Target(("scripts/tracking-server",), (SERVER,)),
}
# Targets no test here runs, and why.
NOT_RUN_HERE = {
    "test": "the test suite itself",
    "test-fast": "the unit tests of the suite",
    "lint": "ruff check and format --check",
    "format": "ruff format and check --fix",
    "clean": "removes the outputs",
    "chaos": "scripts/chaos.py: 100 interrupts of the train and rounds stages, about an hour; "
    "tests/unit/core/test_config.py keeps its settings a valid params.yaml",
    "bench-grid": "benchmarks/executors.py: a 12-run grid in-process and on Ray, about 4 min, "
    "with no smaller setting",
}


# --- the tables against README.md and the Makefile --------------------------------------------


def readme_run_column() -> list[str]:
    """The backticked texts of the "run" column of the README's "Using it" table."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("| you want to | run |")
    spans = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 2, f"a row of the README's table with other than 2 cells: {line}"
        spans += re.findall(r"`([^`]+)`", cells[1])
    return spans


def make_recipes() -> dict[str, list[str]]:
    """Each target of the Makefile: its recipe's lines, comments left out."""
    recipes: dict[str, list[str]] = {}
    current = None
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith("\t") and current is not None:
            command = line.split("  #")[0].strip()
            if command:
                recipes[current].append(command)
        else:
            found = re.match(r"([A-Za-z][\w.-]*):(?!=)", line)
            current = found.group(1) if found else None
            if current is not None:
                recipes[current] = []
    return recipes


def assert_test_exists(node: str) -> None:
    path, _, name = node.partition("::")
    assert (REPO / path).is_file(), f"{node}: no such file"
    tree = ast.parse((REPO / path).read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert name in defined, f"{node}: no such test"


def test_every_command_of_the_readme_table_is_run_by_a_test() -> None:
    documented = readme_run_column()
    assert len(documented) > 20, documented  # the table was found and read
    missing = [command for command in documented if command not in README_COMMANDS]
    assert missing == [], f"README commands that no test runs: {missing}"
    stale = sorted(set(README_COMMANDS) - set(documented))
    assert stale == [], f"commands the README no longer has: {stale}"
    for covered in README_COMMANDS.values():
        assert_test_exists(covered.test)


def test_every_make_target_script_is_run_by_a_test() -> None:
    recipes = make_recipes()
    phony = next(
        line.split(":", 1)[1].split()
        for line in (REPO / "Makefile").read_text().splitlines()
        if line.startswith(".PHONY:")
    )
    unknown = sorted(set(phony) - set(MAKE_TARGETS) - set(NOT_RUN_HERE))
    assert unknown == [], f"make targets that no test runs: {unknown}"
    for target, expected in MAKE_TARGETS.items():
        # A recipe that changes must change the test that runs it small.
        assert tuple(recipes[target]) == expected.recipe, target
        for covered in expected.covered:
            assert_test_exists(covered.test)


# --- the study most commands read, and copies of it ---------------------------------------------


@dataclass(frozen=True)
class Study:
    repo: Path
    repro: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """The README's first row: `dvc repro` in a shell where only `source .venv/bin/activate`
    puts the project's tools on PATH. Its outputs are committed, as a clone has them, so that
    experiments start from them."""
    repo = scratch_repo(tmp_path_factory.mktemp("study") / "repo", STUDY)
    (repo / ".venv").mkdir()
    (repo / ".venv" / "bin").symlink_to(BIN)
    run = make_runner(repo)
    repro = run("bash", "-c", IN_VENV.runs, PATH="/usr/bin:/bin")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "the study's outputs")
    return Study(repo, repro)


@pytest.fixture(scope="module")
def copy_of(study: Study, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A copy of the study for a test that changes it (its store and DVC cache included)."""

    def copy_study(name: str) -> Path:
        dest = tmp_path_factory.mktemp(name) / "repo"
        shutil.copytree(study.repo, dest, symlinks=True)
        return dest

    return copy_study


def training_run_names(repo: Path, experiment: str = EXPERIMENT) -> dict[str, str]:
    """run id -> run name of the experiment's training runs."""
    client = client_for(repo)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    runs = client.search_runs([found.experiment_id], "tags.kind = 'train'", max_results=1000)
    return {r.info.run_id: r.info.run_name for r in runs}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def findings_between_markers(readme: str, start: str, end: str) -> str:
    return readme.split(start, 1)[1].split(end, 1)[0].strip()


# --- scripts that start before the first test ---------------------------------------------------


class Job:
    """A command started in the background; `finish` waits for it."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.args = list(args)
        self.stdout, self.stderr = cwd.parent / "job.out", cwd.parent / "job.err"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.process = subprocess.Popen(
                self.args,
                cwd=cwd,
                env=command_env(),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def finish(self, timeout: float) -> subprocess.CompletedProcess:
        self.process.wait(timeout=timeout)
        return subprocess.CompletedProcess(
            self.args, self.process.returncode, self.stdout.read_text(), self.stderr.read_text()
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)


def assert_succeeded(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, (
        f"{' '.join(done.args)} exited {done.returncode}\n--- stdout\n{done.stdout[-5000:]}"
        f"\n--- stderr\n{done.stderr[-5000:]}"
    )


@pytest.fixture(scope="module")
def bench_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Job]]:
    """`make bench` after `python -m pipeline prepare` (its stage timing trains on the prepared
    data, as after `make study`)."""
    repo = scratch_repo(tmp_path_factory.mktemp("bench") / "repo", SOLO)
    steps = f"{shlex.quote(PY)} -m pipeline prepare && exec {shlex.quote(PY)} "
    job = Job(repo, "bash", "-c", steps + "benchmarks/bench.py --quick")
    yield repo, job
    job.stop()


@pytest.fixture(scope="module")
def cnn_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Job]]:
    repo = scratch_repo(tmp_path_factory.mktemp("cnn") / "repo", SOLO)
    shutil.rmtree(repo / "docs" / "cnn-example", ignore_errors=True)  # the committed example
    job = Job(repo, PY, "scripts/cnn_example.py", "--epochs", "1")
    yield repo, job
    job.stop()


@pytest.fixture(scope="module")
def noise_queue(copy_of: Callable[[str], Path]) -> Iterator[Path]:
    """`make noise`'s first two steps: its experiments run in DVC's queue worker from here on.
    Level 0 is the study as committed, so DVC finds its outputs cached."""
    repo = copy_of("noise")
    run = make_runner(repo)
    for level in ("0", "0.2"):
        run(
            "dvc",
            "exp",
            "run",
            "--queue",
            "-n",
            f"noise-{level}",
            "-S",
            f"data.label_noise={level}",
        )
    run("dvc", "queue", "start", "--jobs", "1")
    yield repo
    run("dvc", "queue", "stop", "--kill", check=False)


@pytest.fixture(scope="module")
def more_seeds_job(
    copy_of: Callable[[str], Path],
) -> Iterator[tuple[Path, dict[str, str], Job]]:
    repo = copy_of("more-seeds")
    before = training_run_names(repo)
    command = README_COMMANDS["dvc exp run -S rounds.max=20 -S rounds.step=5"].runs
    job = Job(repo, *shlex.split(command))
    yield repo, before, job
    job.stop()


@pytest.fixture(scope="module")
def screenshot_job(study: Study) -> Iterator[Job]:
    (study.repo / "docs" / "mlflow_view.png").unlink(missing_ok=True)  # the committed one
    steps = f"scripts/chromium-up && exec {shlex.quote(PY)} -m scripts.ui_screenshot"
    job = Job(study.repo, "bash", "-c", steps)
    yield job
    job.stop()


@pytest.fixture(scope="module", autouse=True)
def started_early(request: pytest.FixtureRequest) -> None:
    """Start what the selected tests of this module wait for, before the first of them: the
    benchmark beside the study, then what needs the study."""
    wanted: set[str] = set()
    for item in request.session.items:
        if getattr(item, "module", None) is request.module:
            wanted |= set(item.fixturenames)
    for name in ("bench_job", "noise_queue", "more_seeds_job", "screenshot_job", "cnn_job"):
        if name in wanted:
            # A failure is raised again, and reported, in each test that uses the fixture.
            with contextlib.suppress(Exception):
                request.getfixturevalue(name)


# --- the README's commands ----------------------------------------------------------------------


def test_the_whole_study_runs_inside_the_venv(study: Study) -> None:
    out = study.repro.stdout
    assert Path(out.splitlines()[0]).parent.samefile(BIN), out  # the activated venv's dvc
    for stage in ("prepare", "train@baseline", "train@l2", "rounds", "report"):
        assert f"Running stage '{stage}'" in out, stage
    assert (study.repo / "dvc.lock").is_file()
    summary = read_json(study.repo / "reports" / "summary.json")
    assert {name: v["n_seeds"] for name, v in summary["variants"].items()} == {
        "baseline": SEEDS_AFTER_ROUNDS,
        "l2": SEEDS_AFTER_ROUNDS,
    }
    names = sorted(training_run_names(study.repo).values())
    expected = [f"{v}-seed{s}" for v in STUDY["variants"] for s in range(SEEDS_AFTER_ROUNDS)]
    assert names == sorted(expected)


def test_techniques_and_train_help_list_every_knob(study: Study) -> None:
    run = make_runner(study.repo)
    # The README's "Adding a variant" names it in its prose.
    listed = run("python", "-m", "pipeline", "techniques").stdout
    starts = {line.split()[0] for line in listed.splitlines() if line and not line[0].isspace()}
    assert {t.knob for t in TECHNIQUES} <= starts, listed
    helped = run(*shlex.split(README_COMMANDS["--help"].runs)).stdout
    for knob in OVERRIDABLE:
        assert f"--{knob.replace('_', '-')}" in helped, knob


def test_one_stage_by_hand(copy_of: Callable[[str], Path]) -> None:
    repo = copy_of("by-hand")
    run = make_runner(repo)
    before = training_run_names(repo)
    for output in ("data/prepared", "models/l2", "metrics/l2", "reports/figures"):
        shutil.rmtree(repo / output)
    (repo / "reports" / "gap_report.md").unlink()

    run(PY, "-m", "pipeline", "prepare")
    assert read_json(repo / "data" / "prepared" / "meta.json")["dataset"] == "digits"
    trained = run(PY, "-m", "pipeline", "train", "--variant", "l2")
    new = sorted(name for rid, name in training_run_names(repo).items() if rid not in before)
    assert new == ["l2-seed0", "l2-seed1"], trained.stderr
    for seed in STUDY["train"]["seeds"]:
        assert (repo / "models" / "l2" / f"seed{seed}" / "model.safetensors").is_file()
    assert [r["seed"] for r in read_json(repo / "metrics" / "l2" / "runs.json")] == [0, 1]

    run(PY, "-m", "pipeline", "report")
    report = (repo / "reports" / "gap_report.md").read_text()
    assert "| l2 |" in report and "| baseline |" in report
    assert (repo / "reports" / "figures" / "loss_gap.png").stat().st_size > 10_000


def test_compare_across_a_logged_parameter(study: Study) -> None:
    command = README_COMMANDS["python -m pipeline compare --by n_train [--where dataset=mnist-5k]"]
    make_runner(study.repo)(*shlex.split(command.runs))
    out = study.repo / "reports" / "compare" / "n_train"
    n_train = str(read_json(study.repo / "data" / "prepared" / "meta.json")["sizes"]["train"])
    summary = read_json(out / "summary.json")
    assert list(summary) == [n_train]
    assert list(summary[n_train]) == ["baseline", "l2"]
    # Seeds the rounds added are left out: their study's verdicts chose them.
    seeds = len(STUDY["train"]["seeds"])
    assert summary[n_train]["l2"]["n"] == seeds
    assert f"| {n_train} | l2 | {seeds} |" in (out / "compare.md").read_text()
    assert (out / "compare.png").stat().st_size > 10_000


def test_make_readme_copies_the_reports_findings(study: Study) -> None:
    run = make_runner(study.repo)
    run(PY, "scripts/readme_findings.py")
    report = (study.repo / "reports" / "gap_report.md").read_text().splitlines()
    heading = next(i for i, line in enumerate(report) if line.startswith("## Change against"))
    table = []
    for line in report[heading + 1 :]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    readme = (study.repo / "README.md").read_text()
    findings = findings_between_markers(
        readme, "<!-- findings: from reports/gap_report.md -->", "<!-- end of findings -->"
    )
    assert findings == "\n".join(table)
    assert [row.split(" | ")[0] for row in table[2:]] == ["| l2"]
    run(PY, "scripts/readme_findings.py", "--check")  # and now the README agrees


def test_make_budget_reports_what_more_seeds_decide(copy_of: Callable[[str], Path]) -> None:
    repo = copy_of("budget")
    run = make_runner(repo)
    done = run(PY, "scripts/larger_budget.py", "--max", "4", "--step", "1")
    assert "report: reports/budget/gap_report.md" in done.stdout
    budget = repo / "reports" / "budget"
    rounds = read_json(budget / "rounds.json")
    assert rounds["looks"] == [2, 3, 4]
    # Seeds of its own, none the default study looked at.
    assert rounds["seeds"] == [1000, 1001, 1002, 1003]
    assert set(read_json(budget / "summary.json")["variants"]) == set(STUDY["variants"])
    assert "| l2 |" in (budget / "gap_report.md").read_text()
    # What its verdicts rest on, and its pictures, beside it.
    assert (budget / "per_seed.csv").read_text().startswith("variant,seed,")
    assert (budget / "figures" / "verdicts.png").is_file()
    # Its runs went to this project's store, under an experiment of their own.
    assert training_run_names(repo, f"{EXPERIMENT}-rounds-max-4")

    run(PY, "scripts/readme_findings.py")
    text = findings_between_markers(
        (repo / "README.md").read_text(),
        "<!-- budget: from reports/budget/ -->",
        "<!-- end of budget -->",
    )
    assert text.startswith("A study of its own (seeds 1000 on, `rounds: {max: 4, step: 1}`"), text
    # At α = 1e-6 nothing is decided on 2 to 4 seeds: every variant trains up to max = 4.
    assert "the variants took 4 seeds each" in text, text


def test_make_simulate_prints_every_row_of_the_verdicts_table() -> None:
    done = subprocess.run(
        [PY, "-m", "scripts.simulate_rounds", "--studies", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    # The header, then every noise × truth × seeds of the simulated studies.
    assert len(rows) == 1 + len(NOISES) * len(TRUTHS) * len(schedules()), done.stdout
    assert rows[0].startswith("| noise | truth | seeds | family-wise wrong")


@pytest.fixture
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL cluster of the test's own, stopped and removed afterwards."""
    with postgres_cluster() as cluster:
        yield cluster


def test_make_server_is_a_tracking_server_on_postgresql(tmp_path: Path, postgres: Cluster) -> None:
    """scripts/tracking-server as `make server` runs it, with its defaults (role, database, a
    password made on first use), on a cluster of the test's own that it sets up as its superuser."""
    repo = scratch_repo(tmp_path / "repo", STUDY)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    artifacts = tmp_path / "artifacts"
    log = tmp_path / "server.log"
    env = command_env(**postgres.env, MLFLOW_PORT=str(port), MLFLOW_ARTIFACTS=str(artifacts))
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(repo / "scripts" / "tracking-server")],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_health(url, server, 120, log)
        said = log.read_text()
        assert f"MLflow tracking server on {url}" in said
        assert f"backend store: postgresql://…@127.0.0.1:{postgres.port}/regularization" in said
        password = (repo / ".postgres-password").read_text().strip()
        assert (repo / ".postgres-password").stat().st_mode & 0o077 == 0  # its owner's alone
        assert f"export MLFLOW_TRACKING_URI={url}" in said
        assert password not in said
        assert job_runner_processes(server.pid) == []  # MLflow's GenAI jobs: not this study's

        # What a client does with MLFLOW_TRACKING_URI set to it: a run, its param, an artifact.
        client = MlflowClient(tracking_uri=url)
        experiment_id = client.create_experiment(EXPERIMENT)
        run_id = client.create_run(experiment_id, run_name="through-the-server").info.run_id
        client.log_param(run_id, "l2", "0.0003")
        note = tmp_path / "note.txt"
        note.write_text("kept by the server\n")
        client.log_artifact(run_id, str(note))
        client.set_terminated(run_id)

        api = f"{url}/api/2.0/mlflow"
        found = get_json(f"{api}/runs/search", {"experiment_ids": [experiment_id]})["runs"]
        assert [(r["info"]["run_name"], r["info"]["status"]) for r in found] == [
            ("through-the-server", "FINISHED")
        ]
        assert found[0]["data"]["params"] == [{"key": "l2", "value": "0.0003"}]
        [kept] = artifacts.rglob("note.txt")  # uploaded through the server, into its folder
        assert kept.read_text() == "kept by the server\n"
        # In PostgreSQL, not in a file: the server's database holds the run.
        uri = f"postgresql://regularization:{quote(password)}@127.0.0.1:{postgres.port}"
        engine = sqlalchemy.create_engine(f"{uri}/regularization")
        with engine.connect() as connection:
            names = connection.execute(sqlalchemy.text("SELECT name FROM runs")).scalars()
            assert list(names) == ["through-the-server"]
        engine.dispose()
        assert not (repo / "mlflow.db").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


# --- the make targets that started early --------------------------------------------------------


def test_a_larger_seed_budget_trains_only_the_added_seeds(
    more_seeds_job: tuple[Path, dict[str, str], Job],
) -> None:
    repo, before, job = more_seeds_job
    done = job.finish(timeout=480)
    assert_succeeded(done)
    out = done.stdout
    assert "Running stage 'train@" not in out, out
    for variant in STUDY["variants"]:
        assert f"Stage 'train@{variant}' didn't change, skipping" in out
    assert "Running stage 'rounds'" in out and "Running stage 'report'" in out
    outcomes = read_json(repo / "rounds" / "rounds.json")["variants"]
    added = {
        f"{name}-seed{seed}"
        for name, outcome in outcomes.items()
        for seed in range(SEEDS_AFTER_ROUNDS, outcome["seeds"])
    }
    assert added, outcomes  # α = 1e-6: the fourth seed was trained
    new = {name for rid, name in training_run_names(repo).items() if rid not in before}
    assert new == added
    summary = read_json(repo / "reports" / "summary.json")["variants"]
    assert {n: v["n_seeds"] for n, v in summary.items()} == {
        n: o["seeds"] for n, o in outcomes.items()
    }


def test_make_screenshot_takes_the_studys_view(study: Study, screenshot_job: Job) -> None:
    done = screenshot_job.finish(timeout=300)
    assert_succeeded(done)
    picture = study.repo / "docs" / "mlflow_view.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert picture.stat().st_size > 10_000
    assert "docs/mlflow_view.png: http://127.0.0.1:5000/#/experiments/" in done.stdout
    assert "viewStateShareKey=" in done.stdout


def test_make_noise_compares_the_study_at_each_label_noise(noise_queue: Path) -> None:
    run = make_runner(noise_queue)
    deadline = time.monotonic() + 480
    while re.search("Queued|Running", status := run("dvc", "queue", "status").stdout):
        assert time.monotonic() < deadline, status
        time.sleep(5)
    assert status.count("Success") == 2, status
    # Each experiment named after its level, the column DVC keeps when it folds others.
    assert {"noise-0", "noise-0.2"} <= set(run("dvc", "exp", "list", "--name-only").stdout.split())
    run("python", "-m", "pipeline", "compare", "--by", "label_noise")
    out = noise_queue / "reports" / "compare" / "label_noise"
    summary = read_json(out / "summary.json")
    assert list(summary) == ["0.0", "0.2"]
    seeds = STUDY["train"]["seeds"]  # the seeds the rounds added are left out
    for level in summary.values():
        assert list(level) == ["baseline", "l2"]  # the baseline first, then params.yaml's order
        assert level["l2"]["n"] == len(seeds)
        assert "change_loss_gap_last" not in level["baseline"]
    assert f"| 0.2 | l2 | {len(seeds)} |" in (out / "compare.md").read_text()
    assert (out / "compare.png").stat().st_size > 10_000

    # The numbers are the runs' own, read back from MLflow here.
    client = client_for(noise_queue)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    noisy = client.search_runs([experiment], "params.label_noise = '0.2' and tags.kind = 'train'")
    gap = {
        (r.data.tags["variant"], int(r.data.tags["seed"])): r.data.metrics["loss_gap_last"]
        for r in noisy
    }
    l2 = summary["0.2"]["l2"]
    assert l2["loss_gap_last"]["mean"] == pytest.approx(
        sum(gap["l2", s] for s in seeds) / len(seeds)
    )
    change = sum(gap["l2", s] - gap["baseline", s] for s in seeds) / len(seeds)
    assert l2["change_loss_gap_last"]["mean"] == pytest.approx(change)

    # --out writes its three files beside what a folder holds: a user's file and the gap
    # report survive, and a rerun replaces only the comparison's own files.
    mine = noise_queue / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("mine\n")
    gap_report = (noise_queue / "reports" / "gap_report.md").read_bytes()
    for folder in ("notes", "reports"):
        run("python", "-m", "pipeline", "compare", "--by", "label_noise", "--out", folder)
        assert (noise_queue / folder / "compare.md").read_text() == (out / "compare.md").read_text()
    assert (mine / "todo.txt").read_text() == "mine\n"
    assert (noise_queue / "reports" / "gap_report.md").read_bytes() == gap_report
    assert sorted(p.name for p in mine.iterdir()) == [
        "compare.md",
        "compare.png",
        "summary.json",
        "todo.txt",
    ]

    bad = run("python", "-m", "pipeline", "compare", "--by", "noise_level", check=False)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "'noise_level'" in bad.stderr and "label_noise" in bad.stderr


def test_make_bench_runs_every_step(bench_job: tuple[Path, Job]) -> None:
    repo, job = bench_job
    done = job.finish(timeout=480)
    assert_succeeded(done)
    assert "written: reports/benchmark-quick.json" in done.stdout
    results = read_json(repo / "reports" / "benchmark-quick.json")
    assert [row["batch"] for row in results["epochs"]] == [128, 512]
    assert results["tutorial_epoch_s_batch128"] > 0
    assert results["options_batch512"]["compiled_s"] > 0
    assert results["tracking"]["fixed_cost_s"] > 0
    assert results["stage_start"]["one_epoch_stage_s"] > 0
    assert results["stack"]["seeds"] == 2
    assert [study["seeds"] for study in results["study"]] == [1]
    assert "dvc repro -f of the default study, 1 seeds per variant" in done.stdout
    assert (results["tuned"]["runs"], results["tuned"]["seed_epochs"]) == (1, 1)
    assert "python -m pipeline tuned, 1 seeds per point (1 runs" in done.stdout


def test_make_cnn_example_reports_the_cnn_with_augmentation(cnn_job: tuple[Path, Job]) -> None:
    repo, job = cnn_job
    done = job.finish(timeout=480)
    assert_succeeded(done)
    assert "report: docs/cnn-example/gap_report.md" in done.stdout
    out = repo / "docs" / "cnn-example"
    assert list(read_json(out / "summary.json")["variants"]) == ["baseline", "augmentation"]
    assert "| augmentation |" in (out / "gap_report.md").read_text()
    assert (out / "figures" / "loss_gap.png").stat().st_size > 10_000
    client = client_for(repo)
    experiment = client.get_experiment_by_name(f"{EXPERIMENT}-cnn")
    runs = client.search_runs([experiment.experiment_id], "tags.kind = 'train'")
    assert sorted(r.info.run_name for r in runs) == ["augmentation-seed0", "baseline-seed0"]
    assert {r.data.params["network"] for r in runs} == {"cnn"}
