.PHONY: run test lab lint

# Set up and run the product on the embedded default (SQLite, embedded Redis, ConnectyCube sandbox).
run:
	scripts/run.sh

# Install what the tests need and run the whole suite (lint included).
test:
	scripts/test.sh

# Bring up the real Asterisk 22 lab by hand (root), to poke at it with a softphone or SIPp.
lab:
	scripts/setup.sh && .venv/bin/python -m tests.lab

lint:
	.venv/bin/ruff check .
