# Keymaster: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format install migrate demo clean fuzz bench bench-soak lock lock-check

# The locks, with hashes (requirements.txt: production; requirements-dev.txt: tests, lint, fuzzing,
# the benchmark). --no-deps: the locks name every package; the client is installed editable
# without its dependencies (they are in the dev lock) and without build isolation (its build
# backend, setuptools, is locked too), so nothing is fetched that was not hashed.
$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e ./clients/python
	touch $(STAMP)

install: $(STAMP)

# Serve the site and one django-q2 worker on http://127.0.0.1:8000 until Ctrl-C.
run: $(STAMP)
	DEBUG=$${DEBUG:-1} $(PY) manage.py run_demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# A longer schemathesis run than the one in `make test` (same fixed seed unless FUZZ_SEED is set).
fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-300} $(PY) -m pytest tests/security/test_fuzz.py -q $(PYTEST_ARGS)

# The benchmark: real gunicorn + qcluster + PostgreSQL (DATABASE_URL) against the local fakes.
bench: $(STAMP)
	$(PY) -m bench run $(BENCH_ARGS)

# A 10-minute soak at 50% of the measured maximum rate: RSS growth per process.
bench-soak: $(STAMP)
	$(PY) -m bench soak $(BENCH_ARGS)

# Recompile the locks after changing requirements.in / requirements-dev.in (pins already in a
# lock are kept; add --upgrade-package NAME to move one).
PIP_COMPILE := $(VENV)/bin/pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --quiet
lock: $(STAMP)
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-dev.txt requirements-dev.in

# Fails when a lock is out of date with its .in file (CI runs it).
lock-check: $(STAMP)
	$(PY) .ci/lock_check.py

clean:
	rm -rf $(VENV) db.sqlite3* staticfiles
