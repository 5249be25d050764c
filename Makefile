# CNAI platform. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= kind
STAMP := $(VENV)/.installed

.PHONY: help venv lint test plan bench up destroy smoke helm render upstream upstream-check image-feast image-spark clean

help:
	@echo "make test                 create .venv, install, lint (ruff), run the offline test suite"
	@echo "make lint                 ruff: lint and import order (pyproject.toml)"
	@echo "make render STACK=kind    helm template every release with the plan's values; validate, sum requests, list images"
	@echo "make upstream             fetch the pinned charts and CRDs into .cache/upstream (for forks without ../shared)"
	@echo "make plan STACK=kind      offline plan of stacks/Pulumi.STACK.yaml (no cluster, no CLI)"
	@echo "make bench                requested CPU/memory, deploy waves and plan cost per stack"
	@echo "make up STACK=kind        real deploy with the Pulumi CLI (checks pulumi/kind/docker first)"
	@echo "make smoke STACK=kind     smoke tests against the deployed cluster"
	@echo "make destroy STACK=kind   tear the stack down"
	@echo "make image-feast REGISTRY=ghcr.io/acme [PUSH=1]  Feast server with s3fs/gcsfs (cnai:layers.feast.image)"
	@echo "make image-spark REGISTRY=ghcr.io/acme [PUSH=1]  Spark with the Iceberg runtime (cnai:layers.spark.image)"

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint helm
	$(PY) -m pytest tests --ignore=tests/smoke -q

HELM_BIN := .cache/bin/helm
$(HELM_BIN): versions.yaml | $(STAMP)
	$(PY) -m tools.helm_bin >/dev/null

helm: $(HELM_BIN)

render: $(STAMP) $(HELM_BIN)
	$(PY) -m tools.render $(STACK) $(if $(CHARTS),--charts $(CHARTS)) --images .cache/images-$(STACK).txt

upstream: $(STAMP) $(HELM_BIN)
	$(PY) -m tools.upstream fetch $(if $(CHARTS),--charts $(CHARTS))
	CNAI_UPSTREAM=.cache/upstream $(PY) -m tools.upstream check

plan: $(STAMP)
	$(PY) -m tools.plan $(STACK)

bench: $(STAMP)
	$(PY) -m tools.bench

upstream-check: $(STAMP)
	$(PY) -m tools.upstream check

up: $(STAMP)
	@$(PY) -m tools.plan $(STACK) >/dev/null || { echo "stack config $(STACK) is invalid (see above)"; exit 2; }
	@command -v pulumi >/dev/null || { echo "pulumi CLI not found: install $$($(PY) -c 'from modules.shared.versions import VERSIONS; print(VERSIONS.tools["pulumi"])') from https://www.pulumi.com/docs/install/"; exit 1; }
	@if grep -q 'environment: kind' stacks/Pulumi.$(STACK).yaml; then \
	  command -v docker >/dev/null || { echo "docker not found: kind needs Docker (https://docs.docker.com/engine/install/)"; exit 1; }; \
	  docker info >/dev/null 2>&1 || { echo "docker daemon not reachable: start Docker"; exit 1; }; \
	  command -v kind >/dev/null || { echo "kind not found: install kind $$($(PY) -c 'from modules.shared.versions import VERSIONS; print(VERSIONS.tools["kind"])') (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"; exit 1; }; \
	fi
	pulumi stack select --create $(STACK)
	pulumi up --stack $(STACK)

destroy:
	pulumi destroy --stack $(STACK)

smoke: $(STAMP)
	SMOKE_STACK=$(STACK) $(PY) -m pytest tests/smoke -v -rs

FEAST_BASE = $(shell $(PY) -c 'from modules.shared.versions import VERSIONS; print(VERSIONS.images["feast-feature-server"])' 2>/dev/null)
image-feast: $(STAMP)
	@test -n "$(REGISTRY)" || { echo "set REGISTRY, e.g. make image-feast REGISTRY=ghcr.io/acme"; exit 2; }
	docker build images/feast --build-arg FEAST_IMAGE=$(FEAST_BASE) -t $(REGISTRY)/feast-feature-server:$(lastword $(subst :, ,$(FEAST_BASE)))-fsspec
	$(if $(PUSH),docker push $(REGISTRY)/feast-feature-server:$(lastword $(subst :, ,$(FEAST_BASE)))-fsspec)
	@echo "set cnai:layers.feast.image: $(REGISTRY)/feast-feature-server:$(lastword $(subst :, ,$(FEAST_BASE)))-fsspec"

SPARK_BASE = $(shell $(PY) -c 'from modules.shared.versions import VERSIONS; print(VERSIONS.images["spark"])' 2>/dev/null)
ICEBERG_VERSION = $(shell $(PY) -c 'from modules.shared.versions import VERSIONS; print(VERSIONS.components["iceberg"])' 2>/dev/null)
SPARK_TAG = $(lastword $(subst :, ,$(firstword $(subst @, ,$(SPARK_BASE)))))-iceberg$(ICEBERG_VERSION)
image-spark: $(STAMP)
	@test -n "$(REGISTRY)" || { echo "set REGISTRY, e.g. make image-spark REGISTRY=ghcr.io/acme"; exit 2; }
	docker build images/spark --build-arg SPARK_IMAGE=$(SPARK_BASE) --build-arg ICEBERG_VERSION=$(ICEBERG_VERSION) -t $(REGISTRY)/spark:$(SPARK_TAG)
	$(if $(PUSH),docker push $(REGISTRY)/spark:$(SPARK_TAG))
	@echo "set cnai:layers.spark.image: $(REGISTRY)/spark:$(SPARK_TAG)"

clean:
	rm -rf $(VENV) .pytest_cache
