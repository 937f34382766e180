# seawall: the two commands a new user needs.
#   make demo   builds everything (Rust core, libseawall + header, wheel, npm package) and runs the demo
#   make test   runs every test: Rust, C, Python and Node, against installed artifacts
# Both start with scripts/bootstrap.sh, which installs the build and test tools when missing.

SHELL := /bin/bash
export PATH := $(CURDIR)/target/tools/bin:$(PATH)

.PHONY: demo test bootstrap test-rust test-c test-python test-node bench header

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	@scripts/demo.sh

test: bootstrap
	@scripts/test.sh

test-rust: bootstrap
	@scripts/test-rust.sh
test-c: bootstrap
	@scripts/test-c.sh
test-python: bootstrap
	@scripts/test-python.sh
test-node: bootstrap
	@scripts/test-node.sh

bench: bootstrap
	@bench/run.sh
