# streamsense: every entry point. A fresh machine needs only `make run` and `make test`;
# both set up what they need (Python venv via uv from the lock file, the CDK CLI via npm ci).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# jsii calls Node 20 end-of-life; synth works on it (the machine's Node), as the README says
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export STREAMSENSE_DATA_DIR ?= $(CURDIR)/data
BENCH ?=
STAGE ?= dev
ARGS ?=

.PHONY: help setup setup-node run test test-fast lint format bench synth layers train-fraud deploy data clean

help:
	@echo "make run        replay real data (or the simulator) through the local stack and report"
	@echo "make test       set up and run the whole test suite (unit, integration, infra, e2e)"
	@echo "make lint       ruff + mypy"
	@echo "make bench      every benchmark (BENCH=fraud|recs|cache|abr|bandit for one)"
	@echo "make synth      cdk synth the whole system;  make layers: build the Lambda layers"
	@echo "make deploy     cdk deploy (needs AWS credentials)"
	@echo "make data       download the public data sets into STREAMSENSE_DATA_DIR"

# The venv is rebuilt only when the lock file changes.
$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv
	@PATH="$$HOME/.local/bin:$$PATH" uv sync --frozen --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup-node: node_modules/.installed

run: setup
	$(PY) -m streamsense_local run $(ARGS)

# The layers the infra tests measure against Lambda's 250 MB limit (~30 s: pip downloads the
# cp312 manylinux wheels); rebuilt when the lock file or the code that goes into them changes.
LAYER_INPUTS := uv.lock layers/build.py $(shell find shared functions -name '*.py' -not -path '*/__pycache__/*' 2>/dev/null)
build/layers/sizes.json: $(VENV)/.synced $(LAYER_INPUTS)
	$(PY) -m layers.build

test: setup setup-node build/layers/sizes.json
	$(PY) -m pytest -n 2 --dist loadgroup $(ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" -n 2 $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared local sim bench infra functions

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) -m streamsense_bench $(BENCH)

# A fraud model for the model layer, trained on the handbook's transactions.
train-fraud: setup
	$(PY) -m streamsense.fraud.training $(STREAMSENSE_DATA_DIR)/fraud-handbook/transactions.csv.gz --out build/models/fraud

layers: setup
	$(PY) -m layers.build

synth: setup setup-node
	npx cdk synth --quiet -c stage=$(STAGE) $(ARGS)

# strict_assets: a placeholder (unbuilt layer or function) can never be deployed.
deploy: setup setup-node layers
	npx cdk deploy --all -c stage=$(STAGE) -c strict_assets=true --require-approval broadening $(ARGS)

data: setup
	$(PY) -m streamsense_local.data download --dest "$(STREAMSENSE_DATA_DIR)"

clean:
	rm -rf cdk.out build bench-results reports .pytest_cache .mypy_cache .ruff_cache
