# soraweb: `make run` starts the whole app, `make test` checks it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint format faults bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: install
	$(PY) manage.py runstack

test: install
	$(VENV)/bin/ruff check .
	@# Comparing models with migrations needs no server database: a scratch SQLite.
	tmp=$$(mktemp -d) && DATA_DIR=$$tmp DATABASE_URL= \
		$(PY) manage.py makemigrations --check --dry-run && rm -rf $$tmp
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Figures against issue 7's targets: prints a table, writes bench/results.json (~4 min).
bench: install
	$(PY) -m bench.run

# The fault scenarios (tests/test_faults.py) as a table: lost jobs, creates and polls per job (~4 min).
faults: install
	$(PY) bench/faults.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
