# chatforge developer commands. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help run test lint format serve demo clean bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) ## Set up, migrate, load demo data and serve on http://127.0.0.1:8000
	$(BIN)/chatforge demo
	$(BIN)/chatforge serve --host 127.0.0.1 --port 8000

test: lint ## Run the linters and the whole test suite
	$(BIN)/pytest

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

format: $(STAMP) ## Reformat the code
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP) ## Compare chatforge with peer WebSocket servers (BENCH_ARGS=--quick: a smoke run)
	@$(BIN)/python -c "import socketio, flask_socketio, gevent, geventwebsocket" 2>/dev/null \
		|| $(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.compare $(BENCH_ARGS)

clean: ## Remove the environment and caches (keeps ./data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
