# One-command entry points. Every target sets up what it needs, idempotently:
# the virtualenv from requirements.lock, the JVM jars from Maven Central, the local services.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
MVN    := mvn -q -B
JAR_GROUPS := spark kafka elasticsearch

.PHONY: help system-run system-test setup jars run test test-fast lint soak bench stack-up stack-down stack-status data clean
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

system-run:  ## Debian packages make run needs (MariaDB, ...), installed with apt when missing
	bash scripts/system-packages.sh run

system-test:  ## ... plus those the tests use (chromium, chromedriver, docker-compose, curl)
	bash scripts/system-packages.sh test

setup: $(VENV)/.installed jars  ## Python virtualenv (.venv, pinned) and JVM jars (.jars)

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

jars: $(foreach g,$(JAR_GROUPS),.jars/$(g)/.resolved)  ## resolve JVM jars from Maven Central into .jars/

.jars/%/.resolved: jvm/%/pom.xml
	rm -rf .jars/$*
	$(MVN) -f jvm/$*/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.jars/$*
	touch $@

# Elasticsearch needs a whole server home, not just a classpath: see the script.
.jars/elasticsearch/.resolved: jvm/elasticsearch/pom.xml jvm/elasticsearch/build-home.sh $(shell find jvm/elasticsearch/src -type f)
	bash jvm/elasticsearch/build-home.sh .jars/elasticsearch
	touch $@

stack-up: system-run setup  ## start Kafka, Elasticsearch and MariaDB (idempotent) and create topics/tables/index
	$(BIN)/fraud stack up

stack-down:  ## stop the local services (data is kept in .state/)
	@if [ -x $(BIN)/fraud ]; then $(BIN)/fraud stack down; else echo "nothing set up"; fi

stack-status:  ## table of services, pids, ports, health, memory, logs
	$(BIN)/fraud stack status

run: stack-up  ## the main job on the embedded local default
	$(BIN)/fraud run

test: system-test setup lint  ## lint, then the whole test suite (starts its own stack on test ports)
	$(BIN)/python -m pytest

test-fast: setup  ## only the tests that need no service (Spark in process, pure logic): a few minutes
	$(BIN)/python -m pytest -m "not services"

soak: system-test setup  ## 30 min at 500 tx/s with 1% poison, two sink outages and a kill -9 (SOAK_MINUTES=5: shorter)
	$(BIN)/python -m pytest -m soak -s tests/test_soak.py

lint: $(VENV)/.installed  ## ruff, the import layers (import-linter) and mypy
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: setup  ## benchmarks (not tests): table, JSON and plots in bench-results/<UTC time>/ (BENCH_ARGS=--quick: short)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

data: $(VENV)/.installed  ## download the handbook dataset (needs internet; CI uses ../shared)
	$(BIN)/fraud data

clean:  ## remove the virtualenv, jars and build output (not .state/)
	rm -rf $(VENV) .jars jvm/*/target *.egg-info
