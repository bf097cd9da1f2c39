# kubesft developer entry points. Every target installs what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv images push test lint crds check-generated demo cluster-up cluster-down control-plane bench dashboard-png clean

help:
	@echo "make test          install everything needed, build the images and run the test suite"
	@echo "make images        build kubesft-operator:<version> and kubesft-trainer:<version>"
	@echo "REGISTRY=... make push   tag both images under REGISTRY and push them"
	@echo "make demo          local cluster + S3 + operator, one real SFTJob to completion"
	@echo "make lint          ruff + mypy"
	@echo "make crds          regenerate crds/ and the chart's copy from the spec models"
	@echo "make cluster-up    start the local control plane, process node and S3 (prints KUBECONFIG)"
	@echo "make cluster-down  stop it"
	@echo "make bench         run the benchmarks in bench/"
	@echo "make dashboard-png redraw docs/training-dashboard.png and docs/operator-dashboard.png from a real run"

# The CPU torch wheel on disk is taken first so nothing pulls a multi-GB CUDA build. The images'
# lock files constrain the rest, so the tests run the versions the images install.
LOCKS := operator/requirements.lock trainer_image/requirements.lock
$(STAMP): pyproject.toml $(LOCKS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check $(addprefix -c ,$(LOCKS)) -e '.[operator,trainer,cli,dev]'
	touch $@

venv: $(STAMP)

control-plane:
	bash hack/install-control-plane.sh

# docker, podman or buildah (installed from Debian when none is there); see hack/images.py.
images:
	$(PYTHON) hack/images.py build

push:
	@test -n "$(REGISTRY)" || { echo "set REGISTRY, e.g. REGISTRY=ghcr.io/you make push"; exit 1; }
	$(PYTHON) hack/images.py push $(REGISTRY)

# The image tests run containers inside the images; where no image tool can run they skip, saying
# why. The images build (mostly downloads and disk) runs while the virtualenv and the control
# plane are made (mostly compiling); its apt packages are installed first, before anything else
# uses apt.
test:
	@$(PYTHON) hack/images.py tool >/dev/null 2>&1 || true
	@log=$${TMPDIR:-/tmp}/kubesft-images-build.log; \
	echo "images: building in the background, log in $$log"; \
	$(PYTHON) hack/images.py build --if-possible >$$log 2>&1 & images=$$!; \
	$(MAKE) --no-print-directory $(STAMP) control-plane || { kill $$images; exit 1; }; \
	wait $$images || { tail -40 $$log; echo "images: the build failed, full log in $$log"; exit 1; }; \
	grep '^images:' $$log; \
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check api operator trainer_image cli testing demo hack tests bench
	$(VENV)/bin/mypy

crds: $(STAMP)
	$(PY) -m kubesft_operator.crd
	$(PY) hack/generate.py

demo: $(STAMP) control-plane
	$(PY) -m demo

cluster-up: $(STAMP) control-plane
	$(PY) -m testing.devcluster up

cluster-down: $(STAMP)
	$(PY) -m testing.devcluster down

bench: $(STAMP) control-plane
	@for b in bench/*/run.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# A real run (local cluster, operator, trainer, Prometheus) drawn with the dashboards' own queries.
dashboard-png: $(STAMP) control-plane
	KUBESFT_DASHBOARD_DIR=$(CURDIR)/docs $(PY) -m pytest tests/e2e/test_chart_install.py -k render_to_png --timeout=2400

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
