# mlcase: two commands set up a fresh machine.
#   make demo   creates .venv, installs, runs the demo case end to end, prints the report's path
#   make test   installs the dev extras (and Debian's chromium for the browser test), runs the suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
RUNTIME := $(VENV)/.installed
BENCH  := $(VENV)/.installed-bench
DEMO   ?= examples/telco-churn
# the suite runs on this many pytest-xdist workers, a test file per worker (its module fixtures are
# built once): 13 min on 2 cores, against 21.5 min in one process that left the second core idle
TEST_WORKERS ?= 2

.PHONY: demo test install system-deps lint bench clean-demo help

help:
	@echo "make demo   - set up .venv and run the demo case ($(DEMO)) end to end"
	@echo "make test   - set up .venv (dev extras, chromium) and run the whole test suite"
	@echo "make bench  - run the benchmarks in benchmarks/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# constraints.txt pins the versions CI tested; pyproject.toml keeps the lower bounds.
# `make demo` installs what mlcase needs to run; `make test` adds the dev extras (pytest, playwright ...)
$(RUNTIME): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $@

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@ $(RUNTIME)

install: $(STAMP)

# the benchmarks add the bench extras (FLAML, which benchmarks/bakeoff_quality.py runs in this venv)
$(BENCH): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $@ $(STAMP) $(RUNTIME)

# Debian's chromium for the report's browser test (Playwright drives it; no browser download)
system-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

demo: $(RUNTIME)
	$(BIN)/mlcase run $(DEMO)

test: install system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=20

lint: install
	$(BIN)/ruff check src tests benchmarks

bench: $(BENCH)
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean-demo:
	rm -rf $(DEMO)/mlflow.db $(DEMO)/mlartifacts $(DEMO)/.mlcase $(DEMO)/report $(DEMO)/predictions.db* \
	  $(DEMO)/datasheet.md $(DEMO)/model_card.* $(DEMO)/leaderboard.*
