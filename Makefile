SHELL := /bin/bash
# The README's two commands are `make lab` and `make test`; both set up .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Every pinned dependency (base + lab + test extras, with hashes); see its header to update it.
LOCK   := requirements.lock
# A new stamp name, so a re-install, whenever pyproject.toml or the lock changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
PIP_FLAGS ?= --quiet --disable-pip-version-check
# uv installs the lock in seconds; pip (minutes) when uv is neither on PATH nor installable.
UV     ?= $(shell command -v uv 2>/dev/null)

.PHONY: lab test test-cluster typecheck jupyter lint format bench clean install

# One line per stage; a stage's own output is shown only if it fails (then in full).
$(STAMP): pyproject.toml $(LOCK)
	@start=$$(date +%s); log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	run() { "$$@" >"$$log" 2>&1 || { cat "$$log" >&2; echo ">> failed: $$*" >&2; exit 1; }; }; \
	if [ ! -x $(BIN)/python ]; then \
	  echo ">> creating $(VENV)"; run $(PYTHON) -m venv $(VENV); \
	fi; \
	n=$$(grep -c '^[A-Za-z0-9]' $(LOCK)); uv="$(UV)"; \
	if [ -z "$$uv" ]; then \
	  if [ -x $(BIN)/uv ] || $(BIN)/python -m pip install $(PIP_FLAGS) uv >"$$log" 2>&1; then \
	    uv=$(BIN)/uv; \
	  fi; \
	fi; \
	if [ -n "$$uv" ]; then \
	  echo ">> installing $$n locked packages with uv"; \
	  run "$$uv" pip install --python $(BIN)/python -r $(LOCK); \
	  echo ">> installing zdlab"; \
	  run "$$uv" pip install --python $(BIN)/python --no-deps -e .; \
	else \
	  echo ">> installing $$n locked packages with pip (uv could not be installed)"; \
	  run $(BIN)/python -m pip install $(PIP_FLAGS) -r $(LOCK); \
	  echo ">> installing zdlab"; \
	  run $(BIN)/python -m pip install $(PIP_FLAGS) --no-deps -e .; \
	fi; \
	run $(BIN)/python -c "import lab_app, fastapi, httpx, plotly, papermill"; \
	rm -f $(VENV)/.installed-*; touch $@; \
	echo ">> done in $$(( $$(date +%s) - start )) s"

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
