# Two entry points: `make test` and `make bench`. Each does all of its own set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch; GPU users install gnnagg into their own environment instead.
TORCH_VERSION ?= 2.13.0
TORCH_SCATTER_VERSION ?= 2.1.2
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: test bench docs lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e ".[test,bench,data,triton,docs]"
	# torch-scatter has no wheels for this torch: it builds against the installed torch
	# (about 8 minutes on 2 cores, then pip's wheel cache makes it fast).
	$(BIN)/python -m pip install -q --no-build-isolation torch-scatter==$(TORCH_SCATTER_VERSION)
	touch $@

test: $(STAMP)
	$(BIN)/ruff check gnnagg tests experiments docs/examples
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/gnnagg-bench run --suite quick

# The HTML pages, warnings as errors (tests/test_docs.py builds them the same way in CI).
docs: $(STAMP)
	$(BIN)/python -m sphinx -b html -W --keep-going -d docs/_build/doctrees docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check gnnagg tests experiments docs/examples

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis docs/_build
