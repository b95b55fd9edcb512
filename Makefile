# Two commands: `make run` (app + worker on the embedded default) and `make test` (whole suite).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
# Find a working Python 3.12 (pyenv shims exist but fail when 3.12 is not selected).
PYTHON312 := $(shell for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	if $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then echo $$p; break; fi; done)

.PHONY: run test lint bench venv chromium

$(VENV)/.installed: requirements.txt
	@if [ -z "$(PYTHON312)" ]; then echo "Python 3.12 is required (Django 6.1 needs it) but python3.12 was not found." >&2; exit 1; fi
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian chromium for the browser tests..."; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

run: venv
	$(PY) manage.py migrate --noinput
	@echo "ALwrity Persona: http://127.0.0.1:8000/  (worker and job sweeper running alongside; Ctrl-C stops all)"
	@trap 'kill 0' EXIT INT TERM; \
		$(PY) manage.py db_worker --queue-name '*' & \
		$(PY) manage.py sweep_jobs --loop 60 & \
		$(PY) manage.py runserver 127.0.0.1:8000

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv chromium lint
	$(VENV)/bin/pytest -q
	DATABASE_URL=$(PG_TEST_URL) $(VENV)/bin/pytest -q

bench: venv
	$(PY) bench/run_all.py
