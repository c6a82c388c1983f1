# One target per habit. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# The worker extra pulls torch==2.13.0: the CPU wheel on this kind of machine, CUDA on a GPU one.
EXTRAS ?= worker

.PHONY: demo test test-fast a11y lint format bench serve lock clean e2e-deps .venv-pruna

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip, then the bytecode of what it installed on every core: pip compiles file by file, half
# of a fresh install's time on a 2-core machine (docs/benchmarks.md, "Demo"). Like pip,
# compileall skips files that do not compile here (a package's tests for a newer Python), so
# its exit status is not make's.
comma := ,
define pip_install
	$(PIP) install --quiet --disable-pip-version-check --no-compile -c constraints.txt -e "$(1)"
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
endef

# Stamps make a second `make` skip pip when pyproject.toml and constraints.txt are unchanged.
$(VENV)/.stamp-$(EXTRAS): $(BIN)/python pyproject.toml constraints.txt
	$(call pip_install,.[$(EXTRAS)])
	touch $@

$(VENV)/.stamp-dev: $(BIN)/python pyproject.toml constraints.txt
	$(call pip_install,.[worker$(comma)dev$(comma)postgres])
	touch $@

## .venv-pruna: a virtualenv of its own for pruna's smash backend (the `pruna` extra), which
## pins older peft and torchao than constraints.txt. torch alone first, so that pip takes this
## machine's torch 2.13.0 (the CPU wheel here) before pruna's requirements could pull another
## build; then the worker and pruna extras with torch held there. Run the worker from it:
## .venv-pruna/bin/flux-playground run CONFIG
PRUNA_VENV := .venv-pruna
.venv-pruna: $(PRUNA_VENV)/.stamp-pruna

$(PRUNA_VENV)/.stamp-pruna: pyproject.toml
	rm -rf $(PRUNA_VENV)
	$(PYTHON) -m venv $(PRUNA_VENV)
	$(PRUNA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PRUNA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-e ".[worker,pruna]" torch==2.13.0
	@# pruna imports torchvision, and PyPI's torchvision is built for PyPI's CUDA torch: beside
	@# a CPU-only torch (this repository's CPU wheel) its operators do not load, and neither
	@# pruna nor transformers imports. Then make stops with that reason and writes no stamp.
	@$(PRUNA_VENV)/bin/python -c "import torchvision" 2>/dev/null || { \
		echo "error: $(PRUNA_VENV): torchvision $$($(PRUNA_VENV)/bin/python -m pip show torchvision | sed -n 's/^Version: //p') (PyPI, built for CUDA torch) does not load beside torch $$($(PRUNA_VENV)/bin/python -c 'import torch; print(torch.__version__)'), so pruna cannot import here; it needs a CUDA build of torch" >&2; \
		exit 1; }
	PRUNA_METRICS_ENABLED=false $(PRUNA_VENV)/bin/python -c "import pruna"
	touch $@

## demo: install, create the database, build the tiny models, precompute the demo, serve it
demo: $(VENV)/.stamp-$(EXTRAS)
	$(BIN)/flux-playground demo

# Test processes: one per core. Tests sharing the session's browser, or its PostgreSQL server,
# run on one of them (xdist groups, tests/conftest.py); each is pinned to a core of its own.
TEST_WORKERS ?= auto

## test: install the dev dependencies (and Debian's chromium and postgresql servers for the
## browser and PostgreSQL tests), run every test but the retraining ones (CI runs this,
## then test-training)
test: $(VENV)/.stamp-dev
	scripts/ensure-test-servers.sh
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not training"

## test-training: retrain the shapes models on a schedule of seconds: every stage runs, its
## loss falls, a killed run resumes to the same weights (CI runs it after `make test`)
test-training: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest -m training tests/training

## test-fast: the inner loop: no browser, no PostgreSQL, no cold torch.compile
test-fast: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not e2e and not postgres and not slow and not training"

## a11y: axe-core on every page of the demo's own database (run `make demo` first)
a11y: $(VENV)/.stamp-dev
	scripts/ensure-test-servers.sh
	$(BIN)/python scripts/axe_pages.py

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.stamp-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: the measurement scripts; results go to docs/benchmarks.md by hand, with the date
bench: $(VENV)/.stamp-dev
	$(BIN)/python benchmarks/harness_overhead.py --variant schnell
	$(BIN)/python benchmarks/harness_overhead.py --variant dev

serve: $(VENV)/.stamp-$(EXTRAS)
	$(BIN)/flux-playground serve

## lock: re-pin constraints.txt from a fresh resolve of pyproject.toml
lock:
	rm -rf /tmp/flux-playground-lock && $(PYTHON) -m venv /tmp/flux-playground-lock
	/tmp/flux-playground-lock/bin/pip install --quiet -e ".[worker,dev,postgres]"
	head -3 constraints.txt > constraints.txt.new
	/tmp/flux-playground-lock/bin/pip freeze --exclude-editable | sed 's/+cpu//' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf data media models
