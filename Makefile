# lift-asgi: the two commands you need are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# ministack (the default local DynamoDB engine) pins a botocore that aioboto3 refuses, so it
# gets a virtualenv of its own inside .venv, where lift_asgi.local finds it.
MINISTACK_VERSION := 1.5.33
MINISTACK_STAMP := $(VENV)/ministack/.installed-$(MINISTACK_VERSION)
# The engine the integration tests run on a second time (the default one runs them first).
SECOND_ENGINE ?= moto

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

$(MINISTACK_STAMP): | $(BIN)/python
	rm -rf $(VENV)/ministack
	$(PYTHON) -m venv $(VENV)/ministack
	$(VENV)/ministack/bin/python -m pip install --quiet ministack==$(MINISTACK_VERSION)
	touch $(MINISTACK_STAMP)

install: $(STAMP) $(MINISTACK_STAMP)

lint: install
	$(BIN)/ruff check lift_asgi tests bench examples
	$(BIN)/ruff format --check lift_asgi tests bench examples
	$(BIN)/cfn-lint examples/saas/template.yaml

typecheck: install
	$(BIN)/mypy --strict lift_asgi examples/saas

# The integration tests (every test using the plugin's DynamoDB fixtures) run on the second
# engine first, then the whole suite on the default engine (its summary last). The
# fidelity suite runs both engines itself.
test: lint typecheck test-lambda-pythons
	@echo "integration tests on the $(SECOND_ENGINE) engine"
	LIFT_ASGI_DYNAMODB_ENGINE=$(SECOND_ENGINE) $(BIN)/python -m pytest -q -p no:cacheprovider \
	  -m dynamodb --ignore=tests/fidelity --no-header -o addopts=""
	$(BIN)/python -m pytest

test-lambda-pythons: install
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

run: install
	$(BIN)/python -m examples.saas.dev $(if $(ENGINE),--engine $(ENGINE))

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-py* .mypy_cache .pytest_cache .ruff_cache
