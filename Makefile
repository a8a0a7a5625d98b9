# The template's commands. `make demo` and `make test` are the README's two commands:
#   make demo   bake a default project into build/demo/ and run it against local mock providers
#               (PORT=5000 and MOCK_PORT=9000 by default)
#   make test   install the test tools into .venv/, then run the template's tests (tests/)
#   make bench  measure the baked app beside reference Flask apps (needs wrk and redis-server)
#   make bench-growth  what each route costs at 1k and at 100k users (needs redis-server)
#   make bench-instructions  a session read's instructions and cache misses beside the floor's,
#               counted by valgrind: the same on any machine (needs valgrind and redis-server)
#   make lint   ruff on the hooks, the template's tests and a freshly baked project
#   make screenshots  retake the READMEs' screenshots in a default bake (needs chromium)
#   make clean  remove build/ and .venv/
# Needs GNU make, python3 (3.11+, with venv) and, for `make test`, redis-server and chromium;
# Node.js 20+ and npm for the OpenID Connect conformance tests (skipped without them).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
COOKIECUTTER := $(VENV)/bin/cookiecutter
RUFF := $(VENV)/bin/ruff
BUILD := build
# The default project_name of cookiecutter.json (flask-social-login).
PROJECT := $(shell $(PYTHON) -c 'import json; print(json.load(open("cookiecutter.json"))["project_name"])')
TEMPLATE_PYPROJECT := {{cookiecutter.project_name}}/pyproject.toml

DEMO_DIR := $(BUILD)/demo
DEMO_VENV := $(DEMO_DIR)/.venv
DEPS_DIR := $(BUILD)/test-deps
LINT_DIR := $(BUILD)/lint
# The test dependencies are (re)installed only when the baked pyproject.toml or
# requirements-test.txt change: the stamp's name carries a checksum of both.
DEPS_SUM := $(shell cat '$(TEMPLATE_PYPROJECT)' requirements-test.txt 2>/dev/null | cksum | cut -d' ' -f1)
DEPS_STAMP := $(VENV)/.test-deps-$(DEPS_SUM)

.PHONY: demo test lint bench bench-growth bench-instructions screenshots clean check-system

# --- make demo ----------------------------------------------------------------------------
# A fresh bake each time; the demo's own venv (build/demo/.venv), its .env (the keys) and its
# instance/ folder (the SQLite database: accounts, linked providers, API tokens) are kept
# between runs, so a restarted demo still knows everyone.
DEMO_KEEP := $(DEMO_DIR)/kept
# The app's and the mock providers' ports: make demo PORT=5001 MOCK_PORT=9001
PORT ?= 5000
MOCK_PORT ?= 9000
demo:
	mkdir -p '$(DEMO_KEEP)'
	for kept in .env instance; do \
		if [ -e '$(DEMO_DIR)/$(PROJECT)/'$$kept ]; then rm -rf '$(DEMO_KEEP)/'$$kept && mv '$(DEMO_DIR)/$(PROJECT)/'$$kept '$(DEMO_KEEP)/'; fi; \
	done
	rm -rf '$(DEMO_DIR)/$(PROJECT)'
	test -x '$(DEMO_VENV)/bin/python' || $(PYTHON) -m venv '$(DEMO_VENV)'
	'$(DEMO_VENV)/bin/python' -m pip --disable-pip-version-check -q install 'cookiecutter>=2.6,<3'
	'$(DEMO_VENV)/bin/cookiecutter' . --no-input -f -o '$(DEMO_DIR)' >'$(DEMO_DIR)/bake.log' || { cat '$(DEMO_DIR)/bake.log'; exit 1; }
	for kept in .env instance; do \
		if [ -e '$(DEMO_KEEP)/'$$kept ]; then rm -rf '$(DEMO_DIR)/$(PROJECT)/'$$kept && mv '$(DEMO_KEEP)/'$$kept '$(DEMO_DIR)/$(PROJECT)/'; fi; \
	done
	'$(DEMO_VENV)/bin/python' -m pip --disable-pip-version-check -q install -e '$(DEMO_DIR)/$(PROJECT)[dev]'
	cd '$(DEMO_DIR)/$(PROJECT)' && exec ../.venv/bin/python -m mock_providers.demo --port '$(PORT)' --mock-port '$(MOCK_PORT)'

# --- make test ----------------------------------------------------------------------------
# Extra pytest arguments: make test PYTEST_ARGS='-k hooks'
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the baked suites run side by side; TEST_WORKERS=0 runs one.
TEST_WORKERS ?= 2
test: check-system $(DEPS_STAMP)
	$(PY) -m pytest tests -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

check-system:
	@missing=''; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v chromium >/dev/null 2>&1 || [ -n "$${CHROMIUM_PATH:-}" ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "make test needs these system packages, which are missing:$$missing"; \
		echo "Install them with:"; \
		echo "    sudo apt-get install -y$$missing"; \
		exit 1; \
	fi; \
	command -v wrk >/dev/null 2>&1 || \
		echo "note: wrk is missing, so the benchmark's smoke test is skipped (sudo apt-get install -y wrk)"; \
	command -v valgrind >/dev/null 2>&1 || \
		echo "note: valgrind is missing, so the floor target's test is skipped (sudo apt-get install -y valgrind)"; \
	node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)' >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || \
		echo "Node.js not found: the OpenID Connect conformance tests will be skipped; install Node 20+ (and npm)"; \
	$(PYTHON) -c 'import socket, sys, os, urllib.parse as u; p = u.urlsplit((os.environ.get("TEST_DATABASE_URL") or "postgresql://127.0.0.1:5432").replace("+psycopg", "")); socket.create_connection((p.hostname or "127.0.0.1", p.port or 5432), 2)' 2>/dev/null || \
		echo "note: PostgreSQL is not reachable (TEST_DATABASE_URL or 127.0.0.1:5432): the PostgreSQL tests are SKIPPED and the suites run on SQLite only"

$(PY):
	$(PYTHON) -m venv $(VENV)

# The baked project's pyproject.toml is the single source of the app's dependencies: bake a
# default project and install it, editable, with its [dev] extras.
$(DEPS_STAMP): | $(PY)
	@echo "Installing the test dependencies into $(VENV)/ ..."
	$(PIP) install -r requirements-test.txt
	rm -rf '$(DEPS_DIR)' && mkdir -p '$(BUILD)'
	$(COOKIECUTTER) . --no-input -f -o '$(DEPS_DIR)' >'$(BUILD)/bake.log' || { cat '$(BUILD)/bake.log'; exit 1; }
	$(PIP) install -e '$(DEPS_DIR)/$(PROJECT)[dev]'
	rm -f $(VENV)/.test-deps-*
	touch '$@'

# --- make bench ---------------------------------------------------------------------------
# The baked app under gunicorn against bare Flask, a one-Redis-GET route and Flask's cookie
# session, driven by wrk, on SQLite and on PostgreSQL when one answers (see the baked
# project's bench/README.md; BENCH_ARGS='--database sqlite' or '--postgresql URL').
# --- make screenshots ---------------------------------------------------------------------
# The READMEs' pictures of the sign-in and account pages, taken by the baked browser test in
# a default bake (real Chromium), with the outline each was taken of; that test fails when a
# page no longer matches its outline, so the pictures stay true.
SHOTS_DIR := $(BUILD)/screenshots
SHOTS := {{cookiecutter.project_name}}/docs/screenshots
screenshots: check-system $(DEPS_STAMP)
	rm -rf '$(SHOTS_DIR)'
	$(COOKIECUTTER) . --no-input -f -o '$(SHOTS_DIR)' >/dev/null
	cd '$(SHOTS_DIR)/$(PROJECT)' && UPDATE_SCREENSHOTS=1 '$(CURDIR)/$(PY)' -m pytest -q -p no:cacheprovider tests/test_github_screenshots.py -k screenshots
	mkdir -p '$(SHOTS)' && cp '$(SHOTS_DIR)/$(PROJECT)'/docs/screenshots/* '$(SHOTS)/'

BENCH_DIR := $(BUILD)/bench
bench: $(DEPS_STAMP)
	@command -v wrk >/dev/null 2>&1 || { echo "wrk is missing: sudo apt-get install -y wrk"; exit 1; }
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is missing: sudo apt-get install -y redis-server"; exit 1; }
	rm -rf '$(BENCH_DIR)'
	$(COOKIECUTTER) . --no-input -f -o '$(BENCH_DIR)' >/dev/null
	cd '$(BENCH_DIR)/$(PROJECT)' && '$(CURDIR)/$(PY)' -m bench.run $(BENCH_ARGS)

# The baked app on a small and a large data set (1,000 and 100,000 users, 1,000 sessions of
# one person), on SQLite and PostgreSQL when one answers: each route's cost at both sizes
# and the ratio (see the baked project's bench/README.md, "Growth"; GROWTH_ARGS='--database
# sqlite' or '--large 300000').
GROWTH_DIR := $(BUILD)/bench-growth
bench-growth: $(DEPS_STAMP)
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is missing: sudo apt-get install -y redis-server"; exit 1; }
	rm -rf '$(GROWTH_DIR)'
	$(COOKIECUTTER) . --no-input -f -o '$(GROWTH_DIR)' >/dev/null
	cd '$(GROWTH_DIR)/$(PROJECT)' && '$(CURDIR)/$(PY)' -m bench.growth $(GROWTH_ARGS)

# A session read and the reference apps, each in a process under valgrind's callgrind: the
# instructions, cache misses and mispredicted branches of a request, which do not depend on
# the machine or its load (see the baked project's bench/README.md, "Instructions";
# INSTRUCTIONS_ARGS='--requests 500').
INSTRUCTIONS_DIR := $(BUILD)/bench-instructions
bench-instructions: $(DEPS_STAMP)
	@command -v valgrind >/dev/null 2>&1 || { echo "valgrind is missing: sudo apt-get install -y valgrind"; exit 1; }
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is missing: sudo apt-get install -y redis-server"; exit 1; }
	rm -rf '$(INSTRUCTIONS_DIR)'
	$(COOKIECUTTER) . --no-input -f -o '$(INSTRUCTIONS_DIR)' >/dev/null
	cd '$(INSTRUCTIONS_DIR)/$(PROJECT)' && '$(CURDIR)/$(PY)' -m bench.instructions $(INSTRUCTIONS_ARGS)

# --- make lint ----------------------------------------------------------------------------
lint: $(DEPS_STAMP)
	$(RUFF) check hooks tests
	$(RUFF) format --check hooks tests
	rm -rf '$(LINT_DIR)' && mkdir -p '$(BUILD)'
	$(COOKIECUTTER) . --no-input -f -o '$(LINT_DIR)' >'$(BUILD)/bake.log' || { cat '$(BUILD)/bake.log'; exit 1; }
	cd '$(LINT_DIR)/$(PROJECT)' && '$(CURDIR)/$(RUFF)' check --no-cache . && '$(CURDIR)/$(RUFF)' format --no-cache --check .

clean:
	rm -rf $(BUILD) $(VENV) .pytest_cache .ruff_cache
	find hooks tests -name __pycache__ -type d -prune -exec rm -rf {} +
