# Keymaster: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format install migrate demo clean fuzz bench bench-soak screenshots lock lock-check

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

# The Python client as a package of its own (issue 24), in a clean venv outside the repository:
# its wheel built and installed, mypy --strict, its own tests from clients/python alone (the stub
# server, no Django) against the installed wheel, and the `keymaster` command. Tool pins come
# from the requirements files. Another interpreter: make client-check CLIENT_PYTHON=python3.13
CLIENT_VENV ?= /tmp/kmc-venv
CLIENT_PYTHON ?= $(PYTHON)
.PHONY: client-check
client-check:
	rm -rf $(CLIENT_VENV)
	$(CLIENT_PYTHON) -m venv $(CLIENT_VENV)
	grep -ohE '^(build|mypy|pytest|standardwebhooks)==[^ ;\\]+' requirements*.txt | sort -u \
	  | xargs $(CLIENT_VENV)/bin/pip install --quiet
	$(CLIENT_VENV)/bin/python -m build --wheel --outdir $(CLIENT_VENV)/dist clients/python
	rm -rf clients/python/build clients/python/src/*.egg-info
	$(CLIENT_VENV)/bin/pip install --quiet $(CLIENT_VENV)/dist/keymaster_client-*.whl
	cd clients/python && $(CLIENT_VENV)/bin/python -m mypy --strict src
	cd clients/python && $(CLIENT_VENV)/bin/python -m pytest -q -p no:randomly
	$(CLIENT_VENV)/bin/keymaster --version

# The README's screenshots, taken by the browser tests (Debian's chromium) and copied over.
README_SCREENSHOTS := console-notification-1280 console-notification-390 console-users-1280 \
	console-settings-errors-390 account-1280 account-390
screenshots: $(STAMP)
	$(PY) -m pytest tests/e2e -q -p no:randomly $(PYTEST_ARGS)
	mkdir -p docs/screenshots
	for name in $(README_SCREENSHOTS); do cp artifacts/screenshots/$$name.png docs/screenshots/; done

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
