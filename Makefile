# `make run` and `make test` are all a newcomer needs; see README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint messages bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)
	$(PY) -c "from bot.i18n import compile_catalogs; compile_catalogs()"

run: install
	$(PY) -m bot

# Installs PostgreSQL, Redis and Chromium from Debian when missing, starts throwaway servers, runs
# ruff, mypy and the whole suite on SQLite and PostgreSQL, then stops the servers.
test: install
	bash tests/run.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

# Re-extract translatable strings and merge them into the en/ru/uz catalogs.
messages: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k N_ -k __ --no-location --omit-header -o locales/messages.pot .
	$(VENV)/bin/pybabel update -i locales/messages.pot -d locales --no-fuzzy-matching --width 100

bench: install
	bash bench/run.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
