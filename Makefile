# The two commands a new user needs: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit faults bench clean lock

# The product with its test extra, and the emulators (sandbox/: a distribution of its own that the
# product's wheel and image never contain).
$(STAMP): pyproject.toml sandbox/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -e ./sandbox
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rotator --log-level warning demo

lint: $(STAMP)
	$(BIN)/ruff check rotator sandbox tests bench
	$(BIN)/ruff format --check rotator sandbox tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint
	$(BIN)/pytest -n auto --cov --cov-report=term:skip-covered

# The fault matrix (tests/faults): every step x fault, then the table of what each reported.
FAULTS_RESULTS ?= build/faults-results.jsonl
faults: $(STAMP)
	@mkdir -p $(dir $(FAULTS_RESULTS)) && rm -f $(FAULTS_RESULTS)
	@FAULTS_RESULTS=$(abspath $(FAULTS_RESULTS)) $(BIN)/pytest -q -p no:cacheprovider -n auto \
		tests/faults; status=$$?; \
		$(BIN)/python -m tests.faults.report $(FAULTS_RESULTS); exit $$status

# requirements.lock: the image's runtime dependencies (pyproject.toml), pinned with their hashes.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

# What a user pays: the CLI as separate processes at 100, 1,000 and 3,000 keys against the
# emulators, the daemon for 25 s; writes bench/results.json. BENCH_ARGS="--quick" for 100 keys.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info sandbox/*.egg-info
