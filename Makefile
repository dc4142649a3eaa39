# rico's documented commands. Each sets itself up from nothing: virtualenv, Python deps, build.
#   make build   .venv with rico installed + target/release/rico
#   make demo    convert a generated BigEarthNet-shaped tree, read a record back
#   make test    the whole suite: cargo tests and pytest
#   make bench   benchmarks (pytest-benchmark suites and the side-by-side comparison)
#   make bench-report  rico against the real peers (ConfigILM, LitData, TorchGeo) and the
#                      reference-style converter, on the current code: benches/results/*.json,
#                      docs/assets/*.png, and the tables of README.md and docs/benchmarks.md
#   make lint    rustfmt, clippy, rustdoc (warnings denied), rico-core's layers, python/rico's imports (no circle), ruff, and the typed stubs checked against the extension
#   make dist    dist/: abi3 manylinux2014 wheel, portable `rico` binary (glibc >= 2.17), sdist
#   make test-dist  make dist, then the tests of what it made (tests/test_dist.py)
#   make docs    the documentation site (mkdocs, docs/ and mkdocs.yml) into site/, strict

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
CARGO ?= cargo

.PHONY: build demo test test-rust test-python bench bench-report clean lint dist test-dist docs

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
	$(PY) -m pytest -q tests --ignore=tests/test_dist.py

test: build test-rust test-python

bench: build
	$(PY) -m pytest -q benches --benchmark-enable --benchmark-only
	$(PY) benches/compare.py
	$(PY) benches/bench_bilinear.py

# The peers live in their own environment: ConfigILM 0.7.1 pins numpy<2, which .venv's JAX
# refuses; rico's wheel, from the same build as `make build`'s, is installed into it. One
# generated tree of BENCH_PATCHES patches (cached under $$RICO_BENCH_CACHE) serves both
# scripts; about 15 minutes on 2 cores.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_DEPS := $(BENCH_VENV)/.deps-installed
BENCH_PATCHES ?= 2000

$(BENCH_DEPS): requirements-bench.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q -r requirements-bench.txt
	touch $@

bench-report: build $(BENCH_DEPS)
	rm -rf target/bench-wheel
	$(VENV)/bin/maturin build --release --locked -q -i $(PY) -o target/bench-wheel
	$(BENCH_PY) -m pip install -q --force-reinstall --no-deps target/bench-wheel/rico_eo-*.whl
	$(BENCH_PY) benches/peers.py --patches $(BENCH_PATCHES) --chart docs/assets/peers.png
	$(BENCH_PY) benches/compare.py --patches $(BENCH_PATCHES) --bigearthnet --threads 1 2 \
		--repeat 3 --baseline-repeat 1 --chart docs/assets/compare.png
	$(BENCH_PY) benches/torchgeo.py --patches $(BENCH_PATCHES) --workers 2 --repeat 3 \
		--out benches/results/torchgeo.json
	$(PY) tools/render_figures.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) target demo-out dist site

PY_SOURCES := python tests benches examples docs tools

lint: build
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --locked --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --locked
	$(PY) tools/check_layers.py
	$(PY) tools/check_imports.py
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)
	$(PY) -m mypy.stubtest rico._rico

# Documentation site: mkdocs with the Material theme; the API pages come from the docstrings of
# python/rico and, for the compiled part, its stub _rico.pyi (mkdocstrings reads the sources, so
# no build is needed). Strict: any warning fails.
DOCS_DEPS := $(VENV)/.docs-deps-installed

$(DOCS_DEPS): requirements-docs.txt | $(DEPS)
	$(PY) -m pip install -q -r requirements-docs.txt
	touch $@

docs: $(DOCS_DEPS)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# Distribution. zig (from the ziglang wheel) links against glibc 2.17's symbols, so the wheel
# and the binary start on CentOS 7 / RHEL 8 / Ubuntu 20.04 and newer. The zig builds have their
# own target dir so they never replace target/release, which the tests run.
DIST_DEPS := $(VENV)/.dist-deps-installed
ZIG_TARGET_DIR := target/zig
PORTABLE_TARGET := x86_64-unknown-linux-gnu.2.17
VENV_BIN := $(abspath $(VENV)/bin)

$(DIST_DEPS): requirements-dist.txt | $(DEPS)
	$(PY) -m pip install -q -r requirements-dist.txt
	touch $@

dist: $(DIST_DEPS)
	rm -rf dist
	PATH="$(VENV_BIN):$$PATH" CARGO_TARGET_DIR=$(ZIG_TARGET_DIR) $(VENV)/bin/maturin build \
		--release --locked --strip --zig --compatibility manylinux2014 --out dist
	PATH="$(VENV_BIN):$$PATH" CARGO_PROFILE_RELEASE_STRIP=symbols $(CARGO) zigbuild --release \
		--locked -p rico-cli --target $(PORTABLE_TARGET) --target-dir $(ZIG_TARGET_DIR)
	cp $(ZIG_TARGET_DIR)/x86_64-unknown-linux-gnu/release/rico dist/rico
	$(VENV)/bin/maturin sdist --out dist
	ls -l dist

test-dist: dist build
	$(PY) -m pytest -q tests/test_dist.py

# Fuzzing (not part of `make test`): cargo-fuzz on stable Rust via RUSTC_BOOTSTRAP, each target
# for FUZZ_SECONDS. See rust/fuzz/README.md.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= tiff_decode tiff_decode_limits safetensors_header parquet_rows

.PHONY: fuzz
fuzz: $(DEPS)
	$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	$(PY) rust/fuzz/make_corpus.py
	for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir rust/fuzz $$t rust/fuzz/corpus/$$t rust/fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -print_final_stats=1 || exit 1; \
	done
