# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app flask_portcullis.demo

.PHONY: run test lint typecheck install install-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

# The OpenID Connect provider the tests start (tests/oidc_provider) is Node's oidc-provider,
# installed here when npm is on PATH (.ci/run installs Node first); without it those tests skip.
OIDC_PROVIDER := tests/oidc_provider
NPM := $(shell command -v npm 2>/dev/null)

install-dev: $(BIN)/python $(if $(NPM),$(OIDC_PROVIDER)/node_modules/.package-lock.json)
	$(BIN)/python -m pip install --quiet -e '.[dev]'

$(OIDC_PROVIDER)/node_modules/.package-lock.json: $(OIDC_PROVIDER)/package-lock.json
	npm ci --prefix $(OIDC_PROVIDER) --no-audit --no-fund --loglevel=error
	touch $@

# Serve the demo on http://localhost:5000 (passkeys need a host name) with SQLite in ./instance.
# Debug mode because this is a local, plain-HTTP server: cookies are marked
# Secure only outside debug, and not every browser accepts Secure cookies
# over http:// (Chromium does on loopback; Safari does not).
run: install
	$(FLASK) db upgrade
	$(FLASK) run --debug --host 127.0.0.1 --port 5000

lint: install-dev
	$(BIN)/ruff check src tests scripts bench examples
	$(BIN)/ruff format --check src tests scripts bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd examples/notes && ../../$(BIN)/mypy

# The suite, then the example app's own (it uses only the pytest kit's fixtures).
test: lint
	$(BIN)/pytest
	cd examples/notes && ../../$(BIN)/pytest

# Portcullis beside a bare Flask route, a tutorial-style app and Flask-Security-Too
# (installed into bench/.venv-fst), all under gunicorn; writes bench/RESULTS.md. Then
# 1k vs 1M users in PostgreSQL and 1 vs 4 workers: bench/SCALE.md.
# Needs wrk (apt-get install wrk). `bench/run.py --help` for rounds, lengths, --profile.
bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/users_scale.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache $(OIDC_PROVIDER)/node_modules
