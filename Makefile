SHELL := /bin/bash
# The README's two commands are `make lab` and `make test`; both set up .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PIP_FLAGS ?= --quiet --disable-pip-version-check

.PHONY: lab test test-cluster typecheck jupyter lint format bench clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo ">> installing zdlab with its lab and test extras into $(VENV) (about a minute)"
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/pip install $(PIP_FLAGS) -e '.[test]' 2>&1 | grep -v "is ignored: it is neither"; test $${PIPESTATUS[0]:-0} -eq 0
	$(BIN)/python -c "import lab_app, fastapi, httpx, plotly, papermill" 
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

## make lab: install, then run every notebook headless on the embedded backend -> out/
lab: $(STAMP)
	$(BIN)/python scripts/run_notebooks.py --out out

## make test: install, then lint and run the whole test suite (unit, e2e, notebooks via nbval)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(MAKE) --no-print-directory typecheck
	@rm -rf out/results  # notebook 08 compares this run's results only
	ZDLAB_LIVE=0 $(BIN)/python -m pytest -m "not cluster" tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider --durations=15

## make typecheck: mypy with pyproject.toml's [tool.mypy] (strict on lab_app/cluster and
## lab_app/progressive, default elsewhere); `make test` runs it after ruff
typecheck: $(STAMP)
	$(BIN)/mypy

## make test-cluster: notebooks 02-08 against a real cluster (kind/minikube + Istio), in order;
## fails within seconds, in one line naming the context and the reason, when none is usable
test-cluster: $(STAMP)
	@$(BIN)/python -m lab_app.cluster.kube.reach
	ZDLAB_BACKEND=kubernetes ZDLAB_LIVE=0 $(BIN)/python -m pytest -m cluster tests/cluster -p no:cacheprovider -v

## make jupyter: JupyterLab on the notebooks, bound to localhost, token kept
jupyter: $(STAMP)
	$(BIN)/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/load_accuracy.py

clean:
	rm -rf out .pytest_cache .mypy_cache
