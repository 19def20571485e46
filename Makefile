# Developer entry points. `make setup` installs/starts everything (see
# scripts/setup.sh); the other targets source .local/env (DATABASE_URL,
# REDIS_URL) and use the project virtualenv.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PY := .venv/bin/python
# Prefix for recipe lines that need DATABASE_URL / REDIS_URL.
ENV := set -a && . ./.local/env && set +a &&

# Settings module: base for the server-ish targets, test for test/lint.
# An explicit DJANGO_SETTINGS_MODULE (environment or command line) wins.
migrate demo bench: export DJANGO_SETTINGS_MODULE ?= isp.settings.base
test lint: export DJANGO_SETTINGS_MODULE ?= isp.settings.test

# Extra arguments for scripts/run_gates.py, e.g. make test ARGS="--gate api"
ARGS ?=

BENCH_DIR := bench-results/$(shell date +%Y%m%d-%H%M%S)
# $(call bench,<management command> [args]): run one benchmark and keep its
# output in $(BENCH_DIR)/<command>.txt. A benchmark that fails is listed in
# $(BENCH_DIR)/failed.txt and the next one still runs; the target fails at the end.
bench = $(ENV) $(PY) manage.py $(1) 2>&1 | tee $(BENCH_DIR)/$(firstword $(1)).txt \
	|| echo $(firstword $(1)) >> $(BENCH_DIR)/failed.txt

.PHONY: help setup migrate demo test lint lint-checks mutation bench clean-local

help:
	@echo "make setup        install/start postgres, redis, .venv (idempotent)"
	@echo "make migrate      migrate shared, tenant and template schemas"
	@echo "make demo         migrate, seed demo tenant 'acme', run dev server on 127.0.0.1:$${PORT:-8000}"
	@echo "make test         run the gated test suites (ARGS=... passed through)"
	@echo "make lint         ruff + makemigrations --check"
	@echo "make mutation     mutation score of billing/domain and the PII crypto (ARGS=... passed through)"
	@echo "make bench        run benchmarks; output in bench-results/"
	@echo "make clean-local  stop project-local postgres/redis and remove .local/"

setup:
	@bash scripts/setup.sh

migrate: setup
	$(ENV) $(PY) manage.py platform_migrate
	$(ENV) $(PY) manage.py collectstatic --noinput -v0

demo: migrate
	@echo "demo: simulated routers (snmpsim) on 127.0.1.1-3:16100 and an OLT on 127.0.1.101:16100, FreeRADIUS on 127.0.0.1:$${RADIUS_AUTH_PORT:-18112}/$${RADIUS_ACCT_PORT:-18113}; logs in .local/"
	$(ENV) { $(PY) -m network.snmp.agents --demo --routers 3 --olts 1 --port 16100 > .local/snmp-demo.log 2>&1 & SNMP_PID=$$!; \
	  $(PY) manage.py radius_server --auth-port $${RADIUS_AUTH_PORT:-18112} \
	    --acct-port $${RADIUS_ACCT_PORT:-18113} > .local/radius-demo.log 2>&1 & RADIUS_PID=$$!; \
	  trap 'kill $$SNMP_PID $$RADIUS_PID $${POLL_PID:-} 2>/dev/null' EXIT; \
	  sleep 3; $(PY) manage.py demo_seed --port $${PORT:-8000}; \
	  ( while sleep 60; do $(PY) manage.py poll_devices --tenant acme --no-progress >> .local/poll-demo.log 2>&1; done ) & POLL_PID=$$!; \
	  DJANGO_DEBUG=1 $(PY) manage.py runserver 127.0.0.1:$${PORT:-8000}; }

test: setup
	@$(MAKE) --no-print-directory lint-checks
	$(ENV) $(PY) scripts/run_gates.py $(ARGS)

lint: setup
	@$(MAKE) --no-print-directory lint-checks

lint-checks:
	.venv/bin/ruff check .
	$(ENV) DJANGO_SETTINGS_MODULE=isp.settings.test $(PY) manage.py makemigrations --check --dry-run

# Not part of `make test` (it takes minutes). Needs no database: scripts/mutation.py says why.
mutation: setup
	$(PY) scripts/mutation.py $(ARGS)

# One line per benchmark; append new ones below.
bench: setup migrate
	@mkdir -p $(BENCH_DIR)
	$(call bench,bench_tenants)
	$(call bench,bench_pii)
	$(call bench,bench_billing --customers 10000 --workers 2)
	$(call bench,bench_radius --subscribers 1000 --in-flight 200)
	$(call bench,bench_provisioning --subscriptions 1000 --workers 2)
	$(call bench,bench_polling --devices 1000 --agents 2)
	@# the report: a table and a chart per benchmark; it fails when one failed or gave no figures
	$(PY) scripts/bench_report.py $(BENCH_DIR) || { echo "bench: see $(BENCH_DIR)/report.md"; exit 1; }
	@echo "bench: results in $(BENCH_DIR)/, report in $(BENCH_DIR)/report.md"

clean-local:
	@if [ -d .local ]; then bash scripts/setup.sh stop-local; fi
	rm -rf .local
