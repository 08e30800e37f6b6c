# `make run` and `make test` are all a newcomer needs; see README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Errors only: no pip notices, no build backend's banners.
PIP_INSTALL := $(PY) -m pip install --quiet --quiet --disable-pip-version-check
# Exactly the locked versions, each checked against its hash, and only wheels (no code of a
# downloaded source runs at install). requirements/*.txt are written by `make lock`.
LOCKED := --require-hashes --only-binary :all: --requirement
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock'

.PHONY: install install-dev run demo test lint audit messages bench lock lock-upgrade clean

$(PY):
	@echo "Creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

# What running needs (requirements/runtime.txt), then the project itself without resolving anything.
$(RUNTIME_STAMP): requirements/runtime.txt pyproject.toml | $(PY)
	@echo "Installing Frontdesk's locked dependencies into $(VENV)"
	@$(PIP_INSTALL) $(LOCKED) requirements/runtime.txt
	@$(PIP_INSTALL) --no-deps --no-build-isolation --editable .
	@touch $@

# Adds the test and lint tools (requirements/dev.txt holds the runtime's pins too).
$(DEV_STAMP): requirements/dev.txt $(RUNTIME_STAMP)
	@echo "Installing the locked test and lint tools into $(VENV)"
	@$(PIP_INSTALL) $(LOCKED) requirements/dev.txt
	@touch $@

install: $(RUNTIME_STAMP)
	@$(PY) -c "from bot.i18n import compile_catalogs; compile_catalogs()"

install-dev: $(DEV_STAMP) install

# Only what running needs (no test or lint tools); at start it prints the next steps.
run: install
	@$(PY) -m bot

# The demo coffee shop's knowledge (English, Russian, Uzbek), persona and name; also while `make run` runs.
demo: install
	@$(PY) -m bot demo

# Installs PostgreSQL, Redis and Chromium from Debian when missing, starts throwaway servers, audits
# the locked versions, runs ruff, mypy and the whole suite on SQLite and PostgreSQL, then stops the servers.
test: install-dev
	bash tests/run.sh

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

# Known vulnerabilities in the locked versions (a warning, not a failure, when the service is unreachable).
audit: install-dev
	$(PY) tests/audit_lock.py requirements/dev.txt

# Re-extract translatable strings and merge them into the en/ru/uz catalogs.
messages: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k N_ -k __ -k N_plural:1,2 --no-location --omit-header -o locales/messages.pot .
	$(VENV)/bin/pybabel update -i locales/messages.pot -d locales --no-fuzzy-matching --width 100

bench: install-dev
	bash bench/run.sh

# After changing the dependencies in pyproject.toml: re-lock, keeping every other pin where it is.
# `make lock-upgrade` moves everything to the newest releases that pyproject.toml allows.
lock: install-dev
	$(UV_COMPILE) $(LOCK_ARGS) pyproject.toml requirements/install-tools.in -o requirements/runtime.txt
	$(UV_COMPILE) $(LOCK_ARGS) --extra dev pyproject.toml requirements/install-tools.in \
		--constraint requirements/runtime.txt -o requirements/dev.txt

lock-upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
