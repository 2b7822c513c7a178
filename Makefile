# recvault's everyday commands. Each creates the virtualenv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test test-all bench faults lint clean

$(BIN)/recvault: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

## run: start Redis (if needed), SeaweedFS, ingest, a worker and the Twilio simulator
run: $(BIN)/recvault
	$(BIN)/recvault up

## test: the fast suite (unit, integration on real Redis + SeaweedFS, end to end)
test: $(BIN)/recvault
	$(BIN)/python -m pytest -q -m "not slow"

## test-all: everything, including the slow scenarios
test-all: $(BIN)/recvault
	$(BIN)/python -m pytest -q

## bench: the benchmarks; writes bench/results/<time>.{md,json}
bench: $(BIN)/recvault
	$(BIN)/python -m bench

## faults: the full fault-injection suite with its table
faults: $(BIN)/recvault
	$(BIN)/python -m tests.faults

clean:
	rm -rf $(VENV) .recvault .pytest_cache
