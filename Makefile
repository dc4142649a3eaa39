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
	$(PY) benches/bench_bilinear.py

clean:
	rm -rf $(VENV) target demo-out

# Fuzzing (not part of `make test`): cargo-fuzz on stable Rust via RUSTC_BOOTSTRAP, each target
# for FUZZ_SECONDS. See rust/fuzz/README.md.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= tiff_decode safetensors_header

.PHONY: fuzz
fuzz: $(DEPS)
	$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	$(PY) rust/fuzz/make_corpus.py
	for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir rust/fuzz $$t rust/fuzz/corpus/$$t rust/fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -print_final_stats=1 || exit 1; \
	done
