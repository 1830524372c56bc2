# The README's commands. Everything installs itself into .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST  := $(BIN)/python -m pytest

.PHONY: demo test lint unit bench freeze selftest wheel asan-test fuzz clean

$(STAMP): pyproject.toml setup.py meshagent/_build_core.py $(wildcard csrc/*.c csrc/*.h)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Main job: a local mesh with the web service, on the embedded database.
demo: $(STAMP)
	$(BIN)/meshagent demo

# Lint, then the whole suite under each backend of the core.
test: $(STAMP)
	$(BIN)/ruff check .
	MESHAGENT_BACKEND=c $(PYTEST) -q
	MESHAGENT_BACKEND=python $(PYTEST) -q -m 'not netns and not postgres and not browser'

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf build dist wheelhouse .asan .fuzz meshagent/_core*.so meshagent/_core.c
