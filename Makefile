# lift-asgi: the two commands you need are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck run bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check lift_asgi tests bench examples
	$(BIN)/ruff format --check lift_asgi tests bench examples
	$(BIN)/cfn-lint examples/saas/template.yaml

typecheck: $(STAMP)
	$(BIN)/mypy --strict lift_asgi

test: lint typecheck
	$(BIN)/python -m pytest

run: $(STAMP)
	$(BIN)/python -m examples.saas.dev

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
