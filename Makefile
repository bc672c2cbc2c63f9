# Two commands do all the set-up: `make run` (whole pipeline on the mock world) and `make test`.
SHELL := /bin/bash
export CTI_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME := $(CTI_DATA_DIR)/dagster_home
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy
export GX_ANALYTICS_ENABLED := False
PERSONS ?= 100000
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv/.synced

.PHONY: run test ui bench validate lint clean setup system

$(UV):
	python3 -m pip install --quiet --user 'uv==0.13.9' || python3 -m pip install --quiet 'uv==0.13.9'

$(VENV): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen
	@touch $@

setup: $(VENV)

run: $(VENV)  ## generate the mock world if absent, materialise every asset, print where the reports are
	.venv/bin/cti run --demo-key --persons $(PERSONS)

system: $(VENV)  ## Debian chromium + postgresql for the browser and instance tests (never fatal; see README)
	@bash scripts/setup_system.sh

test: $(VENV) system  ## lint, then the whole test suite
	.venv/bin/ruff check .
	.venv/bin/python -m pytest

ui: $(VENV)  ## Dagster UI on http://127.0.0.1:3000 against the same instance, with the key `make run` uses
	.venv/bin/cti ui --host 127.0.0.1 --port 3000

bench: $(VENV)  ## population-scale benchmark, both programme shapes, staggered-ATT peers; then ingest throughput
	$(UV) sync --frozen --extra bench  # the peers (csdid) are a bench-only extra: never needed by run or test
	@# both benches run and print their figures; the target fails afterwards if either missed a target
	@status=0; .venv/bin/python scripts/bench.py $(BENCH_ARGS) || status=$$?; \
	.venv/bin/python scripts/bench_ingest.py || status=$$((status ? status : $$?)); exit $$status

validate: $(VENV)  ## Monte Carlo validation of the effect estimators at the real programme's size (see README)
	.venv/bin/python scripts/validate.py $(VALIDATE_ARGS)

lint: $(VENV)
	.venv/bin/ruff check .

clean:
	rm -rf .venv data
