# coffer: the two commands of the quick start are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: all build demo demo-s3 lint test fuzz bench clean install

all: build

build:
	$(CARGO) build --release --locked

# Backs up the sample tree and a sample database into ./demo/repo, lists it,
# dry-run restores it, restores part of it, runs a restore drill, verifies.
demo: build
	./scripts/demo.sh

# Everything the tests need is installed by this target; CI runs exactly this.
# The same demo against a throwaway Garage (S3) server on 127.0.0.1.
demo-s3: build
	./scripts/ensure-garage.sh
	./scripts/demo-s3.sh

# Formatting and clippy, warnings as errors (make test runs it first).
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test: lint
	./scripts/ensure-postgres.sh
	./scripts/ensure-garage.sh
	./scripts/ensure-moto.sh
	PATH="$$HOME/.cargo/bin:$$PATH" $(CARGO) test --locked -- --test-threads=$${TEST_THREADS:-4}
	./scripts/fuzz.sh $${FUZZ_SECONDS:-15}

# Every fuzz target (src/fuzz.rs) for FUZZ_SECONDS each (default 300); make
# test runs each for 15 s. Installs cargo-fuzz when missing.
fuzz:
	./scripts/fuzz.sh $${FUZZ_SECONDS:-300}

# coffer beside restic, borg and rustic on the same data (see docs/BENCHMARKS.md).
# Installs the peers when missing; data, repositories and results.md go to
# ./bench-work (BENCH_ARGS="--dir DIR --scale N --tools ... --cases ... --repeat N").
bench:
	./scripts/ensure-postgres.sh
	./scripts/ensure-peers.sh
	$(CARGO) build --release --locked --bin coffer --example primitives
	PATH="$$HOME/.cargo/bin:$$PATH" python3 scripts/bench.py $(BENCH_ARGS)

# The binary, its manual pages and shell completions under PREFIX (default
# /usr/local; DESTDIR for packaging). BIN is the binary to install (built
# when it is the default and missing).
PREFIX ?= /usr/local
BIN ?= target/release/coffer

target/release/coffer:
	$(CARGO) build --release --locked

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/coffer
	$(BIN) man --dir $(DESTDIR)$(PREFIX)/share/man/man1
	$(BIN) completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/coffer
	$(BIN) completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_coffer
	$(BIN) completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/coffer.fish

clean:
	rm -rf demo
	$(CARGO) clean
