# coffer: the two commands of the quick start are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: all build demo test clean

all: build

build:
	$(CARGO) build --release --locked

# Backs up the sample tree and a sample database into ./demo/repo, lists it,
# dry-run restores it, restores part of it, runs a restore drill, verifies.
demo: build
	./scripts/demo.sh

# Everything the tests need is installed by this target; CI runs exactly this.
test:
	./scripts/ensure-postgres.sh
	$(CARGO) test --locked -- --test-threads=$${TEST_THREADS:-4}

clean:
	rm -rf demo
	$(CARGO) clean
