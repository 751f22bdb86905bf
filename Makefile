# memtrace — the two commands are `make demo` and `make test`.
CARGO ?= cargo
PRELOAD := target/release/libtrace.so
MEMTRACE := target/release/memtrace

.PHONY: all deps build test test-real demo bench fuzz clean

all: build

deps:
	@scripts/install-deps

build: deps
	$(CARGO) build --release --workspace

# Unit tests, CPython golden tests and the end-to-end suite (tests/).
test: build
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

# Runs each fuzz target for FUZZ_SECONDS (default 60).
fuzz: deps
	scripts/fuzz

clean:
	$(CARGO) clean
	rm -rf tests/build demo-out
