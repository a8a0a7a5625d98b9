# The template's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD := build
DEMO_DIR := $(BUILD)/demo
DEMO_PROJECT := $(DEMO_DIR)/flask-social-login
DEPS_DIR := $(BUILD)/test-deps
DEPS_STAMP := $(VENV)/.deps-$(shell cat '{{cookiecutter.project_name}}/pyproject.toml' requirements-test.txt | sha256sum | cut -c1-16)

.PHONY: demo test lint clean check-system

demo: $(VENV)/bin/cookiecutter
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/cookiecutter . --no-input -f -o $(DEMO_DIR)
	$(PYTHON) -m venv $(DEMO_DIR)/.venv
	$(DEMO_DIR)/.venv/bin/pip install -q --upgrade pip
	$(DEMO_DIR)/.venv/bin/pip install -q -e '$(DEMO_PROJECT)'
	cd $(DEMO_PROJECT) && exec ../.venv/bin/python -m mock_providers.demo

$(VENV)/bin/cookiecutter:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-test.txt

# The baked project's pyproject.toml is the single source of its dependencies:
# bake one and install it (editable) with its [dev] extras.
$(DEPS_STAMP): $(VENV)/bin/cookiecutter
	rm -rf $(DEPS_DIR)
	$(VENV)/bin/cookiecutter . --no-input -f -o $(DEPS_DIR)
	$(VENV)/bin/pip install -q -e '$(DEPS_DIR)/flask-social-login[dev]'
	rm -f $(VENV)/.deps-*
	touch $@

check-system:
	@command -v redis-server >/dev/null || { echo "redis-server is missing: sudo apt-get install -y redis-server"; exit 1; }
	@command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || { echo "Chromium is missing: sudo apt-get install -y chromium"; exit 1; }

test: check-system $(DEPS_STAMP)
	$(PY) -m pytest tests -q -p no:cacheprovider

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check --no-cache hooks tests
	$(VENV)/bin/ruff format --no-cache --check hooks tests
	$(VENV)/bin/ruff check --no-cache $(DEPS_DIR)/flask-social-login
	$(VENV)/bin/ruff format --no-cache --check $(DEPS_DIR)/flask-social-login

clean:
	rm -rf $(BUILD) $(VENV)
