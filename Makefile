# The two commands of the README: `make repro` (the pipeline) and `make test` (the tests).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bitpruner-installed
PORT ?= 5000

export DVC_NO_ANALYTICS := 1
export NUMBA_THREADING_LAYER := workqueue
# Stages run `python ...`: make it the project's virtualenv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro results sweep test test-slow lint mlflow-ui clean

# System step: Chromium for the browser test (tests/report/test_report_chromium.py). As root with apt-get
# it is installed when missing; anywhere else setup goes on, and that test skips (it fails under CI=true).
setup: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "setup: chromium not installed (needs root and apt-get); the browser test will skip"

# Reinstalls only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

repro: setup
	$(VENV)/bin/dvc repro

# The results a reviewer reads (results/results.md, results.csv, plan_vs_uniform.csv, PNGs): the default pipeline
# (LeNet-5 x seeds), then results/, a DVC project of its own: ResNet-20 x seeds through the same chain, and for both
# networks BitPruner as published and the uniform-k budgets, simulated and aggregated (results/dvc.yaml).
results: repro
	cd results && $(CURDIR)/$(VENV)/bin/dvc repro

# The optional k x mode grid of prune_bits runs: pipelines/sweep is a DVC project of its own (the root's bare
# `dvc status` / `dvc metrics show` do not read it). Its input is the root pipeline's prune_weights model.
sweep: setup
	$(VENV)/bin/dvc repro prune_weights@$$(sed -n 's/^seed: *\([0-9]*\).*/\1/p' pipelines/sweep/params.yaml)
	cd pipelines/sweep && $(CURDIR)/$(VENV)/bin/dvc repro

test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

lint: setup
	$(VENV)/bin/ruff check src pipelines tests benchmarks

# Prints the experiment's address first: with ?workflowType=machine_learning the UI opens on its training runs
# (MLflow 3 keeps a GenAI / model-training switch per browser that starts on GenAI). The server's Starlette
# deprecation warning, noise for a user of the UI, is silenced.
MLFLOW_EXPERIMENT ?= bitpruner
mlflow-ui: setup
	@$(PY) -c "import os; from mlflow.tracking import MlflowClient; \
	e = MlflowClient('sqlite:///mlflow.db').get_experiment_by_name('$(MLFLOW_EXPERIMENT)') if os.path.isfile('mlflow.db') else None; \
	print('MLflow UI: http://127.0.0.1:$(PORT)/#/experiments' + ('/' + e.experiment_id + '/runs' if e else '') + '?workflowType=machine_learning')"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false PYTHONWARNINGS='ignore:starlette.middleware.wsgi is deprecated' \
		$(VENV)/bin/mlflow ui \
		--backend-store-uri sqlite:///mlflow.db --workers 1 --port $(PORT)

clean:
	rm -rf logs checkpoints .cache
