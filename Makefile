# SmallStack dashboard — `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

# Run a second time with the suite's database on a real PostgreSQL server (tests/postgres.py,
# started for the session): the engine's concurrency tests, the API, the Explorer and the
# personal layouts (concurrent saves of one layout).
POSTGRES_TESTS ?= tests/test_engine.py tests/test_async_orm.py tests/test_api.py \
	tests/test_api_contract.py tests/test_explorer_pages.py tests/test_explorer_registry.py \
	tests/test_explorer_hidden_fields.py tests/test_explorer_conflicts.py tests/test_layouts.py

.PHONY: install run test test-postgres lint format bench loadtest clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required; this is " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(PY) manage.py seed_demo --url http://$(HOST):$(PORT)/smallstack/
	DEBUG=$${DEBUG:-1} exec $(BIN)/uvicorn project.asgi:application --host $(HOST) --port $(PORT) --lifespan off

test: install
	$(PY) -m pytest $(PYTEST_ARGS)
	SMALLSTACK_TEST_DATABASE=postgresql $(PY) -m pytest $(POSTGRES_TESTS)

test-postgres: install
	SMALLSTACK_TEST_DATABASE=postgresql $(PY) -m pytest $(POSTGRES_TESTS) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(PY) -m benchmarks

loadtest: install
	$(PY) -m benchmarks.loadtest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
