# lift-asgi: the two commands you need are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck run bench clean test-lambda-pythons

# Other CPython versions found on this machine (pyenv): the Lambda handler's tests also
# run on them, since Mangum's event-loop handling differs across 3.11-3.13.
OTHER_PYTHONS ?= $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3 $(HOME)/.pyenv/versions/3.13*/bin/python3)

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

test: lint typecheck test-lambda-pythons
	$(BIN)/python -m pytest

test-lambda-pythons: $(STAMP)
	@for py in $(OTHER_PYTHONS); do \
	  version=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  venv=.venv-py$$version; \
	  if [ ! -f $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ]; then \
	    echo "installing a Python $$version venv for the Lambda handler tests ($$venv)"; \
	    $$py -m venv $$venv && $$venv/bin/python -m pip install --quiet -e '.[testing,fastapi]' \
	      > $$venv.log 2>&1 && touch $$venv/.installed || { cat $$venv.log; exit 1; }; \
	  fi; \
	  echo "Lambda handler tests on Python $$version"; \
	  $$venv/bin/python -m pytest -q -p no:cacheprovider tests/test_aws_handler.py || exit 1; \
	done

run: $(STAMP)
	$(BIN)/python -m examples.saas.dev

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-py* .mypy_cache .pytest_cache .ruff_cache
