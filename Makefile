# socialpulse: `make run` (the main job) and `make test` are all a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
UV_VERSION := 0.13.9

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help run test test-fast airflow query summary lint format lock docs bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.created:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH, or set PYTHON=..."; exit 1; }
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "socialpulse needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	touch $@

# the run-time environment, exactly as locked in requirements.txt
$(VENV)/.installed: $(VENV)/.created requirements.txt pyproject.toml
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

# plus the test and lint tools of requirements-dev.txt
$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed ## run the whole pipeline once on the configured companies (sample by default; HISTORY_DAYS=N)
	$(PY) -m socialpulse.cli run $(if $(HISTORY_DAYS),--history-days $(HISTORY_DAYS))

test: $(VENV)/.installed-dev ## run the whole test suite offline
	$(PY) -m pytest

test-fast: $(VENV)/.installed-dev ## the tests without the Airflow DAG runs
	$(PY) -m pytest -m "not integration"

airflow: $(VENV)/.installed ## Airflow UI + scheduler on http://localhost:8080 (airflow standalone)
	$(PY) -m socialpulse.cli airflow

query: $(VENV)/.installed ## SQL shell on the analytics copy (read-only; never blocks the pipeline)
	$(PY) -m socialpulse.cli query

summary: $(VENV)/.installed ## print the per-segment table from the analytics copy (works while Airflow runs)
	$(PY) -m socialpulse.cli summary

lint: $(VENV)/.installed-dev ## ruff and sqlfluff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/sqlfluff lint include/sql

format: $(VENV)/.installed-dev ## apply ruff format and fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

lock: $(VENV)/.created ## recompile requirements*.txt from requirements*.in
	$(UV) pip compile --quiet --universal --python-version 3.11 requirements.in -o requirements.txt
	$(UV) pip compile --quiet --universal --python-version 3.11 requirements-dev.in -o requirements-dev.txt

docs: $(VENV)/.installed ## regenerate docs/data-dictionary.md from the SQL headers and record schemas
	$(PY) -m socialpulse.dictionary

bench: $(VENV)/.installed-dev ## every stage at 1x/4x/16x as ratios to a same-run baseline (~25 min; SIZE=quick: < 1 min); writes docs/benchmarks.md
	$(PY) benchmarks/bench_pipeline.py --size $(or $(SIZE),full)

clean: ## remove the venv, the local Airflow home and generated data
	rm -rf $(VENV) .airflow test-artifacts
	find data -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
