# One command per verb, for people and CI alike. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help install run services test lint format typecheck bench clean

help: ## Show this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[postgres,mongo,dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# Swagger UI and ReDoc for the offline API docs, uPlot for the dashboard, Biome to lint its
# scripts; pinned in package-lock.json. No install scripts: swagger-ui-dist's would send
# analytics. npm ci writes the stamp last.
NODE_STAMP := node_modules/.package-lock.json

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make install: npm is missing (apt-get install npm)" >&2; exit 1; }
	npm ci --ignore-scripts --legacy-peer-deps --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP) $(NODE_STAMP) ## Create .venv with LatLab (editable), every extra and the dev tools; npm ci the browser assets

run: install ## Start LatLab: API on 127.0.0.1:8000, targets on :8008, SQLite in ./latlab.db
	$(BIN)/latlab serve

services: ## Start PostgreSQL and Redis; install influxdb, wrk and nginx if missing
	bash scripts/test-services.sh

lint: install ## ruff (Python) and Biome (the dashboard's scripts and styles): lint and format check
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	node_modules/.bin/biome check --error-on-warnings src/latlab/web/static

format: install ## ruff and Biome: fix what can be fixed and format
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench
	node_modules/.bin/biome check --write src/latlab/web/static

typecheck: install ## mypy --strict over src, tests and bench
	$(BIN)/mypy

test: install services lint typecheck ## Everything: services, lint, types, tests with coverage gate
	$(BIN)/coverage erase
	LATLAB_SCREENSHOTS_DIR=$${LATLAB_SCREENSHOTS_DIR:-build/screenshots} $(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

bench: install services ## Benchmarks: probes, lateness (also with every sink), stats, paging, writer, bots, targets, load, pipeline, workers, load shards, fleet at scale, dashboard paint
	$(BIN)/python bench/probe_latency.py
	$(BIN)/python bench/schedule_lateness.py
	$(BIN)/python bench/live_lateness.py
	$(BIN)/python bench/stats_query.py
	$(BIN)/python bench/writer_sinks.py
	$(BIN)/python bench/paging.py
	$(BIN)/python bench/result_dump.py
	$(BIN)/python bench/bots_fleet.py
	$(BIN)/python bench/bots_restart.py
	$(BIN)/python bench/targets_throughput.py
	$(BIN)/python bench/load_throughput.py
	$(BIN)/python bench/pipeline_throughput.py
	$(BIN)/python bench/fleet_dispatch.py
	$(BIN)/python bench/load_shards.py
	$(BIN)/python bench/fleet_scale.py
	$(BIN)/python bench/dashboard_paint.py

clean: ## Remove caches and coverage data (keeps .venv and latlab.db)
	rm -rf .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage .coverage.*
