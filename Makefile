# coffer: the two commands of the quick start are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: all build demo test clean

all: build

build:
	$(CARGO) build --release --locked

# Backs up the sample tree into ./demo/repo, lists it, dry-run restores it,
# restores part of it and verifies it.
demo: build
	./scripts/demo.sh

# Everything the tests need is installed by this target; CI runs exactly this.
test:
	$(CARGO) test --locked -- --test-threads=$${TEST_THREADS:-4}

clean:
	rm -rf demo
	$(CARGO) clean
