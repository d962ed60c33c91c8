# Developer entry points: `make test` runs everything CI runs; `make quick` the suite without its slow tests;
# `make demo` runs the example shop.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: test quick lint type pytest lowest venv bench bench-deps bench-signing bench-reconciliation bench-ingestion \
	bench-refunds bench-fanout loadtest chaos clean demo core messages fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test,lint,docs,dsa]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# ruff, then the layering contracts of pyproject.toml's [tool.importlinter] (docs/architecture.md).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

type: venv
	$(BIN)/mypy

# The suite in two runs: the tests not marked slow spread over the cores (as `make quick`), then the slow ones
# (real workers, servers, browsers, packaging) one at a time, as they always ran. Exit code 5 is "no test
# selected", when PYTEST_ARGS names tests of one kind only.
pytest: venv
	scripts/with-services $(BIN)/python -m pytest -m "not slow" -n $(WORKERS) $(PYTEST_ARGS) || [ $$? -eq 5 ]
	scripts/with-services $(BIN)/python -m pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]
	# DSA once more through the fallback library, as a shop whose cryptography has no DSA runs it.
	DJANGO_ALIPAY_DSA_BACKEND=pycryptodome scripts/with-services $(BIN)/python -m pytest -p no:cacheprovider \
		-q tests/protocol
	scripts/with-services $(BIN)/python -m pytest -c example_project/pytest.ini example_project/tests

# The suite without the tests marked slow (packaging, browser, real Celery workers, schemathesis), for the
# edit-and-run loop: no lint, no type check, no second DSA run, no lowest versions. `make test` runs it all.
# Spread over the cores by pytest-xdist: each worker has its own test database and Redis database
# (tests/conftest.py). `make quick WORKERS=0` runs it in one process; WORKERS=4 suits a 2-core machine whose
# tests mostly wait.
WORKERS ?= auto
quick: venv
	scripts/with-services $(BIN)/python -m pytest -m "not slow" -n $(WORKERS) $(PYTEST_ARGS)

# The suite against the lowest version of every runtime requirement that pyproject.toml allows
# (scripts/lowest-constraints), in its own virtualenv; the packaging tests install the newest, so they are
# left to `make pytest`.
LOWEST_VENV ?= .venv-lowest
LOWEST_STAMP := $(LOWEST_VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

$(LOWEST_STAMP): pyproject.toml
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) scripts/lowest-constraints > $(LOWEST_VENV)/constraints.txt
	$(LOWEST_VENV)/bin/python -m pip install --quiet -c $(LOWEST_VENV)/constraints.txt -e ".[test,docs,dsa]"
	$(LOWEST_VENV)/bin/python -m pip check
	touch $(LOWEST_STAMP)

lowest: $(LOWEST_STAMP)
	scripts/with-services $(LOWEST_VENV)/bin/python -m pytest -p no:cacheprovider --ignore=tests/packaging \
		-m "not slow" -n $(WORKERS) $(PYTEST_ARGS) || [ $$? -eq 5 ]
	scripts/with-services $(LOWEST_VENV)/bin/python -m pytest -p no:cacheprovider --ignore=tests/packaging \
		-m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

demo: venv
	$(BIN)/python scripts/demo $(DEMO_ARGS)

test: lint type pytest lowest

bench: bench-signing

bench-deps: venv
	$(BIN)/python -m pip install --quiet -e ".[bench]"

bench-signing: bench-deps
	$(BIN)/python benchmarks/bench_signing.py

bench-reconciliation: venv
	scripts/with-services $(BIN)/python benchmarks/bench_reconciliation.py $(BENCH_ARGS)

bench-ingestion: bench-deps
	scripts/with-services $(BIN)/python benchmarks/bench_ingestion.py $(BENCH_ARGS)

bench-refunds: bench-deps
	scripts/with-services $(BIN)/python benchmarks/bench_refunds.py $(BENCH_ARGS)

bench-fanout: venv
	scripts/with-services $(BIN)/python benchmarks/bench_fanout.py $(BENCH_ARGS)

# Locust against the example shop under gunicorn, PostgreSQL, Redis and a Celery worker; writes
# artifacts/loadtest/report.md. LOADTEST_ARGS="--duration 10 --spike 3" for a short run.
loadtest: bench-deps
	scripts/with-services $(BIN)/python benchmarks/loadtest/run.py $(LOADTEST_ARGS)

# Faults on the example shop (gateway faults, Redis and PostgreSQL restarts, a worker SIGKILLed mid-refund, a
# slow gateway) with an audit of the money after each; writes artifacts/chaos/report.md, exits 1 when an audit
# fails. About 6 minutes; CHAOS_ARGS=--quick for about 4. Not part of `make test`.
chaos: bench-deps
	scripts/with-services $(BIN)/python benchmarks/chaos/run.py $(CHAOS_ARGS)

FUZZ_RUNS ?= 200000
ifndef FUZZ_DIR
FUZZ_DIR := $(shell mktemp -u -d /tmp/alipay-fuzz.XXXXXX)
endif

fuzz: venv
	$(BIN)/python -m pip install --quiet "atheris>=2.3"
	mkdir -p $(FUZZ_DIR)/notifications $(FUZZ_DIR)/envelope $(FUZZ_DIR)/crashes
	$(BIN)/python fuzz/fuzz_notifications.py $(FUZZ_DIR)/notifications fuzz/corpus/notifications \
		-atheris_runs=$(FUZZ_RUNS) -artifact_prefix=$(FUZZ_DIR)/crashes/
	$(BIN)/python fuzz/fuzz_envelope.py $(FUZZ_DIR)/envelope fuzz/corpus/envelope \
		-atheris_runs=$(FUZZ_RUNS) -artifact_prefix=$(FUZZ_DIR)/crashes/

core: venv
	$(BIN)/python -m pip install --quiet "tox>=4"
	$(BIN)/tox -e core

messages: venv
	cd django_alipay && ../$(BIN)/django-admin makemessages -l zh_Hans --ignore='emulator/*' --no-obsolete --settings=tests.settings --pythonpath=..
	cd django_alipay/emulator && ../../$(BIN)/django-admin makemessages -l zh_Hans --no-obsolete --settings=tests.settings --pythonpath=../..
	cd django_alipay && ../$(BIN)/django-admin compilemessages --settings=tests.settings --pythonpath=..

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
