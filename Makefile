# memtrace — the two commands are `make demo` and `make test`.
CARGO ?= cargo
PRELOAD := target/release/libtrace.so
MEMTRACE := target/release/memtrace

.PHONY: all deps build lint test test-real demo bench bench-history fuzz clean

all: build

deps:
	@scripts/install-deps

build: deps
	$(CARGO) build --release --workspace

# What keeps the code as it is: rustfmt's layout (rustfmt.toml) and no clippy
# warning (the preload's lints are in preload/Cargo.toml). .ci/run runs it.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --release --all-targets -- -D warnings

# Unit tests, CPython golden tests and the end-to-end suite (tests/).
test: build
	@scripts/install-deps --test
	$(CARGO) test --release --workspace

# Real programs and their own test suites under libtrace.so (issue 4).
test-real: build
	@scripts/install-deps --real
	scripts/test-real

demo: build
	scripts/demo

bench: build
	@scripts/install-deps --bench
	scripts/bench
	scripts/bench-history

# The history file's size and cost alone (its own section of docs/BENCHMARKS.md).
bench-history: build
	@scripts/install-deps --bench
	scripts/bench-history

# Runs each fuzz target for FUZZ_SECONDS (default 60).
fuzz: deps
	scripts/fuzz

clean:
	$(CARGO) clean
	rm -rf tests/build demo-out
