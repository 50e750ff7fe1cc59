# Two set-up commands: `make demo` and `make test`. TORCH picks the torch requirement
# (default: whatever pip resolves; CI pins the CPU build with TORCH=torch==2.13.0).
TORCH ?= torch
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROMPT ?= a photo of a triangle above a circle

.PHONY: demo test lint format venv clean mutate

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"

demo: venv
	$(BIN)/milr run "$(PROMPT)" --steps 10 --out traces

# Three pytest-xdist workers by default, tests handed out as workers free up; each worker decodes at
# one torch thread (tests/conftest.py). On this project's 2-core machine the suite took 176 s this way;
# one process took 318 s (measured before the benchmark smoke tests moved into the test process).
# TEST_WORKERS=0 runs one process.
TEST_WORKERS ?= 3

test: venv
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

lint: venv
	$(BIN)/ruff check milr tests benchmarks
	$(BIN)/ruff format --check milr tests benchmarks

# Mutation testing of the core modules (benchmarks/mutate.py; minutes of CPU, so not in `test` or CI):
# writes benchmarks/results/mutation.json. MUTATE_ARGS passes options, e.g. MUTATE_ARGS="--cap 10".
mutate: venv
	nice -n 10 $(BIN)/python benchmarks/mutate.py $(MUTATE_ARGS)

format: venv
	$(BIN)/ruff format milr tests benchmarks
	$(BIN)/ruff check --fix milr tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
