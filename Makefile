# Set-up and entry points. Each target installs what it needs into .venv first.
# torch is pinned to the CPU build 2.13.0 and installed before the package, so that
# pip never resolves a multi-GB CUDA build for the torch requirement.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/lipmono demo

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples

test: setup lint
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/speed.py
