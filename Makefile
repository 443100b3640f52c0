# soraweb: `make run` starts the whole app, `make check` is the fast lane, `make test` checks all of it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# pytest-xdist processes; tests/envsetup.py gives each its own DATA_DIR, Redis and database. 0: serial.
TEST_WORKERS ?= 2

.PHONY: install run check test lint typecheck migrations browser format faults soak bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: install
	$(PY) manage.py runstack

# Lint, migrations and every test that needs no process, server or browser of its own.
check: install lint typecheck migrations
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) -q

# The whole suite: unit, integration, browser and fault scenarios.
test: browser install lint typecheck migrations
	$(PY) -m pytest -n $(TEST_WORKERS) --durations=15

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The public functions of jobs/ (pyproject.toml lists the modules). The Django plugin
# loads the settings; typing needs no server database or broker, whatever the shell says.
typecheck: install
	DATABASE_URL= REDIS_URL= $(VENV)/bin/mypy

# Comparing models with migrations needs no server database: a scratch SQLite.
migrations: install
	tmp=$$(mktemp -d) && DATA_DIR=$$tmp DATABASE_URL= \
		$(PY) manage.py makemigrations --check --dry-run && rm -rf $$tmp

# Debian's chromium for the browser tests: installed when root, else the command to run.
browser:
	bash .ci/ensure-chromium

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Figures against issue 7's targets: prints a table, writes bench/results.json (~4 min).
bench: install
	$(PY) -m bench.run

# The fault scenarios (tests/test_faults.py) as a table: lost jobs, creates and polls per job (~4 min).
faults: install
	$(PY) bench/faults.py

# A few hundred jobs under random faults (~25 min; SOAK_MINUTES, SOAK_JOBS, SOAK_SEED); needs root for its tmpfs.
soak: install
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
