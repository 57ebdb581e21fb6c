# One command per task. The environment is created on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: study budget simulate cnn-example sweep tuned noise test test-fast chaos readme screenshot bench bench-grid lint format ui server clean

study: $(VENV)/.installed  ## run the default study with DVC: prepare -> train every variant -> rounds -> report
	python -m pipeline machine-note  # says so where the committed results come from another CPU
	dvc repro
	python -m pipeline next-steps

budget: $(VENV)/.installed  ## a study of its own (seeds 1000 on) with rounds {max: 20, step: 5} -> reports/budget/
	python scripts/larger_budget.py --max 20 --step 5
	python scripts/readme_findings.py

simulate: $(VENV)/.dev  ## the verdicts' error rate and power on simulated studies (docs/verdicts.md), and the tuned study's (docs/strength-paths.md)
	python -m scripts.simulate_rounds --studies 2000
	python -m scripts.simulate_tuned --studies 2000

cnn-example: $(VENV)/.installed  ## the default variants plus augmentation on the built-in CNN -> docs/cnn-example/
	python scripts/cnn_example.py

sweep: $(VENV)/.installed  ## strength paths (every technique × strength × seed) -> reports/sweep/; each technique at its best strength -> reports/tuned/
	dvc repro sweep-stages/dvc.yaml

tuned: $(VENV)/.installed  ## the same as sweep, the points in one process (the study first, by dvc repro); recorded in sweep-stages/dvc.lock
	dvc repro
	python -m pipeline tuned

noise: $(VENV)/.installed  ## the study at label noise 0, 0.2, 0.4 (queued DVC experiments) -> reports/compare/
	for level in 0 0.2 0.4; do dvc exp run --queue -f -n noise-$$level -S data.label_noise=$$level; done
	dvc queue start --jobs 1
	while dvc queue status | grep -qE 'Queued|Running'; do sleep 10; done
	dvc queue status
	python -m pipeline compare --by label_noise

test: $(VENV)/.dev $(VENV)/.cluster  ## the whole test suite
	scripts/postgres-install  # Debian's PostgreSQL programs: the tests run clusters of their own
	scripts/chromium-up  # Debian's Chromium, for the test that loads the MLflow UI page
	python -m pytest -q -n 2 --dist loadfile --durations=10  # two workers: the end-to-end tests wait on subprocesses; the ten slowest tests listed

test-fast: $(VENV)/.dev  ## the unit tests only (no dvc, mlflow run, servers, Ray, or stage in a process of its own)
	python -m pytest -q -n 2 -m "not e2e"

chaos: $(VENV)/.cluster  ## 100 interrupts of the train and rounds stages, each continued and checked; a Ray worker lost in a round
	python scripts/chaos.py --interrupts 100

readme: $(VENV)/.installed  ## copy the gap report's findings table into the README
	python scripts/readme_findings.py

screenshot: $(VENV)/.dev  ## after make study: the README's picture of the study's view in the MLflow UI
	scripts/chromium-up
	python -m scripts.ui_screenshot

bench: $(VENV)/.installed  ## trainer speed against the tutorial loop and the machine's limits
	python benchmarks/bench.py

bench-grid: $(VENV)/.cluster  ## a 12-run grid in-process vs on a local Ray instance (~4 min)
	python benchmarks/executors.py

lint: $(VENV)/.dev
	ruff check pipeline tests benchmarks scripts
	ruff format --check pipeline tests benchmarks scripts

format: $(VENV)/.dev
	ruff format pipeline tests benchmarks scripts
	ruff check --fix pipeline tests benchmarks scripts

ui: $(VENV)/.installed  ## the MLflow UI on 127.0.0.1 against the project's store
	python -m pipeline ui

server: $(VENV)/.cluster  ## a shared MLflow tracking server on 127.0.0.1:5001 (PostgreSQL store, served artifacts)
	scripts/tracking-server

# What a target needs, no more: the study alone installs the core packages; the tests' tools
# (dev) and Ray and PostgreSQL's driver (cluster) come with the targets that use them, so
# they are not among the packages MLflow scans in every training process. uv installs them,
# set up as pip is (scripts/uv_install.py): ~35 s where pip took ~100 s.
INSTALL := $(BIN)/python scripts/uv_install.py

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-cache-dir uv
	$(INSTALL) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(INSTALL) -e ".[dev]"
	touch $@

$(VENV)/.cluster: $(VENV)/.installed
	$(INSTALL) -e ".[cluster]"
	touch $@

clean:  ## remove pipeline outputs and the tracking store (keeps the environment)
	rm -rf data/prepared models metrics rounds sweeps logs mlflow.db mlruns dvc_plots .train-*
