# rico's documented commands. Each sets itself up from nothing: virtualenv, Python deps, build.
#   make build   .venv with rico installed + target/release/rico
#   make demo    convert a generated BigEarthNet-shaped tree, read a record back
#   make test    the whole suite: cargo tests and pytest
#   make bench   benchmarks (pytest-benchmark suites and the side-by-side comparison)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
CARGO ?= cargo

.PHONY: build demo test test-rust test-python bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEPS): requirements-dev.txt | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

build: $(DEPS)
	$(CARGO) build --release --locked -p rico-cli
	$(VENV)/bin/maturin develop --release --locked -q

demo: build
	$(PY) examples/demo.py

test-rust:
	$(CARGO) test --release --locked --workspace --exclude rico-py -q

test-python: build
	$(PY) -m pytest -q tests

test: build test-rust test-python

bench: build
	$(PY) -m pytest -q benches --benchmark-enable --benchmark-only
	$(PY) benches/compare.py

clean:
	rm -rf $(VENV) target demo-out
