# taskcast: `make run` starts the whole system locally, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# aws-sam-cli in a virtualenv of its own: its pins clash with the project's.
SAM_VENV ?= .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed

.PHONY: run test lint bench bench-quick clean sam requirements artifacts

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(SAM_STAMP): deploy/sam-requirements.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r deploy/sam-requirements.txt
	touch $(SAM_STAMP)

sam: $(SAM_STAMP)

# The Lambda layer's pinned packages, from pyproject.toml's dependencies and constraints.txt.
requirements: $(STAMP)
	$(BIN)/python -m deploy.requirements

# sam build of template.yaml for this machine and the Lambda-runtime interpreter, built once here so
# that no test pays for them inside its timeout (both are reused while their inputs are unchanged).
artifacts: $(STAMP) $(SAM_STAMP)
	$(BIN)/python -m taskcast.local.artifacts

run: $(STAMP) $(SAM_STAMP)
	$(BIN)/taskcast local

test: $(STAMP) $(SAM_STAMP) artifacts
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache build *.egg-info
