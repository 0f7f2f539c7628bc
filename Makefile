# aigateway-operator: one entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ENV_FILE ?= .dev/env
# The local environment is a development tool of this checkout (tools/devenv/), not part of
# the installed product: it runs as a module from the repository root.
DEVENV := $(BIN)/python -m tools.devenv

.PHONY: help setup lint typecheck test test-unit test-integration bench demo dev-up dev-down clean lock crds-sync

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-18s %s\n", $$1, $$2}'

# The runtime dependencies install at exactly the versions of deploy/requirements.lock (what
# the image ships), so tests run against what users run, on any machine, on any day. The lock
# carries hashes (the image installs it with --require-hashes); pip would demand hashes for
# every package once a constraint has one, so the constraints are the lock's pins alone.
$(STAMP): pyproject.toml deploy/requirements.lock src/aigateway_operator/__init__.py scripts/setup-system.sh
	./scripts/setup-system.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	awk '/^[A-Za-z0-9]/ { sub(/[ \t]*\\$$/, ""); print }' deploy/requirements.lock > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt --group dev -e .
	touch $(STAMP)

setup: $(STAMP) ## create .venv, install everything, build (or reuse) the control plane and node
	$(DEVENV) build

lint: $(STAMP) ## ruff (lint + format check) and import-layer contracts
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict on src/ (the product) and tools/ (the dev environment)
	$(BIN)/mypy
	$(BIN)/mypy tools

test: setup lint typecheck ## everything: lint, types, unit + integration + e2e against real components
	./scripts/pytest.sh tests

test-unit: $(STAMP) ## only the fast unit tier
	./scripts/pytest.sh -m unit tests

test-integration: setup ## integration + e2e tiers
	./scripts/pytest.sh -m "integration or e2e" tests

bench: setup ## benchmarks (slow; prints ratios against in-run baselines)
	@for b in bench/bench_*.py; do echo "== $$b"; PYTHONPATH=$(CURDIR) $(BIN)/python $$b || exit 1; done

dev-up: setup ## start the local environment with a node (writes $(ENV_FILE))
	$(DEVENV) up --env-file $(ENV_FILE)

dev-down: ## stop the local environment
	@test -x $(BIN)/python && $(DEVENV) down --env-file $(ENV_FILE) || true

demo: setup ## the chart's pods on the local node, end to end (DEMO_ARGS=--keep to keep it up)
	$(DEVENV) demo $(DEMO_ARGS)

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
