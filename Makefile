# aigateway-operator: one entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ENV_FILE ?= .dev/env

.PHONY: help setup lint typecheck test test-unit test-integration bench demo dev-up dev-down clean lock crds-sync

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-18s %s\n", $$1, $$2}'

# The runtime dependencies install at exactly the versions of deploy/requirements.lock (what
# the image ships), so tests run against what users run, on any machine, on any day. The lock
# carries hashes (the image installs it with --require-hashes); pip would demand hashes for
# every package once a constraint has one, so the constraints are the lock's pins alone.
$(STAMP): pyproject.toml deploy/requirements.lock
	./scripts/setup-system.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	awk '/^[A-Za-z0-9]/ { sub(/[ \t]*\\$$/, ""); print }' deploy/requirements.lock > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt --group dev -e .
	touch $(STAMP)

setup: $(STAMP) ## create .venv, install everything, build (or reuse) the local control plane
	$(BIN)/aigateway-operator dev build

lint: $(STAMP) ## ruff (lint + format check) and import-layer contracts
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict on src/
	$(BIN)/mypy

test: setup lint typecheck ## everything: lint, types, unit + integration + e2e against real components
	./scripts/pytest.sh tests

test-unit: $(STAMP) ## only the fast unit tier
	./scripts/pytest.sh -m unit tests

test-integration: setup ## integration + e2e tiers
	./scripts/pytest.sh -m "integration or e2e" tests

bench: setup ## benchmarks (slow; prints ratios against in-run baselines)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

dev-up: setup ## start the local environment (writes $(ENV_FILE))
	$(BIN)/aigateway-operator dev up --env-file $(ENV_FILE)

dev-down: ## stop the local environment
	@test -x $(BIN)/aigateway-operator && $(BIN)/aigateway-operator dev down --env-file $(ENV_FILE) || true

demo: setup ## the whole product on the local environment (DEMO_ARGS=--keep to keep it up)
	$(BIN)/aigateway-operator demo $(DEMO_ARGS)

# pip-compile (pip-tools) resolves pyproject.toml's runtime dependencies for Python 3.11 and
# pins each with the hashes of all its files; existing pins are kept unless LOCK_ARGS=--upgrade
# (or --upgrade-package NAME). The build backend gets its own lock for the image's wheel build.
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)
lock: $(STAMP) ## rewrite deploy/requirements.lock and deploy/build-requirements.lock (hashed)
	$(PIP_COMPILE) --output-file deploy/requirements.lock pyproject.toml
	$(PIP_COMPILE) --only-build-deps --build-deps-for=wheel \
		--output-file deploy/build-requirements.lock pyproject.toml

CHART_CRDS := deploy/helm/aigateway-operator/files/crds
crds-sync: ## copy crds/ (the single source) into the chart; `make test` checks they are equal
	rm -f $(CHART_CRDS)/*.yaml
	cp crds/*.yaml $(CHART_CRDS)/

clean: dev-down ## remove the venv and caches (the control-plane build cache stays)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
