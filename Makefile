# Two commands do everything: `make figures` (every paper figure) and `make test` (the whole suite).
# Both build .venv from requirements.lock when it is missing or stale; only Python >= 3.11 and make are needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: figures test test-browser lint format lab lock clean-venv help

help:
	@echo "make figures   regenerate every paper figure (papers/*/figures, data, executed)"
	@echo "make test      lint and run the whole test suite (unit, notebooks, golden data)"
	@echo "make test-browser  run online_training.ipynb and start_here.ipynb in JupyterLab in headless Chromium (needs chromium)"
	@echo "make lab       open JupyterLab on notebooks/"
	@echo "make lock      re-resolve requirements.in into requirements.lock"

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is needed; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

figures: $(STAMP)
	$(BIN)/kit figures build
	$(BIN)/kit figures report

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-browser: $(STAMP)
	$(BIN)/python -m pytest --browser -m browser tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -r requirements.in
	{ echo "# Exact versions of every dependency (pip freeze of a venv built from requirements.in; torch is the CPU build)."; \
	  echo "# Regenerate with 'make lock'."; \
	  .lock-venv/bin/python -m pip freeze | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/'; } > requirements.lock
	rm -rf .lock-venv

clean-venv:
	rm -rf $(VENV)
