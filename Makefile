# Developer entry points: `make test` runs everything CI runs; `make demo` runs the example shop.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: test lint type pytest venv bench clean demo core messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[api,celery,test,lint,docs]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: venv
	$(BIN)/mypy

pytest: venv
	scripts/with-services $(BIN)/python -m pytest $(PYTEST_ARGS)
	scripts/with-services $(BIN)/python -m pytest -c example_project/pytest.ini example_project/tests

demo: venv
	$(BIN)/python scripts/demo $(DEMO_ARGS)

test: lint type pytest

bench: venv
	$(BIN)/python benchmarks/bench_signing.py

core: venv
	$(BIN)/python -m pip install --quiet "tox>=4"
	$(BIN)/tox -e core

messages: venv
	cd django_alipay && ../$(BIN)/django-admin makemessages -l zh_Hans --ignore='emulator/*' --no-obsolete --settings=tests.settings --pythonpath=..
	cd django_alipay/emulator && ../../$(BIN)/django-admin makemessages -l zh_Hans --no-obsolete --settings=tests.settings --pythonpath=../..
	cd django_alipay && ../$(BIN)/django-admin compilemessages --settings=tests.settings --pythonpath=..

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
