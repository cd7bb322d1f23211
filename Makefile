# Convenience wrappers around scripts/ (the scripts are the source of truth).
#   make test                      fmt, clippy, cargo test, Python API tests
#   make run                       run the daemon with the embedded default config
#   make run ARGS="--config FILE"  run it with a config file
#   make venv                      create/update .venv (Python test dependencies)
#   make pytest                    only the Python API tests (builds the binary first)

ARGS ?=

.PHONY: test run venv pytest ci

test:
	./scripts/test.sh

run:
	./scripts/run.sh $(ARGS)

venv:
	./scripts/setup-venv.sh

pytest: venv
	cargo build --bin scopepilot
	.venv/bin/python -m pytest -q tests/python

ci:
	./.ci/run
