# Shared rules for building a Python layer (included by layers/<name>/Makefile).
# `sam build` runs `make --makefile layers/<name>/Makefile build-<LayerLogicalId>` in a scratch copy
# of the layer's folder with ARTIFACTS_DIR set (so `sam build PaymentsLayer` works on its own); the
# top-level `make build` also passes ARCH and PYTHON313 through the environment.
#
# Each layer is /opt/python on Lambda: requirements.txt installed as wheels for the target
# platform, any packages of ours, and their bytecode compiled for Python 3.13 as unchecked-hash
# .pyc files. /opt is read-only on Lambda, so without them every cold start would compile the
# whole dependency tree again; unchecked-hash pycs are used whatever the files' timestamps.
#
# A layer's Makefile sets LAYER (its logical id) and may set PACKAGES (folders of ours to copy),
# PIP_FLAGS, NO_BYTECODE (a -x regex of trees that get no bytecode) and LAZY_REEXPORTS (packages
# whose re-export-only __init__.py is made to import on first use: see layers/lazy_reexports.py).

ARCH ?= arm64
PYTHON313 ?= python3.13
PLATFORM_arm64 := manylinux2014_aarch64
PLATFORM_x86_64 := manylinux2014_x86_64
PLATFORM := $(PLATFORM_$(ARCH))
SITE = $(ARTIFACTS_DIR)/python
NO_BYTECODE ?= ^$$
LAZY_REEXPORTS ?=
# This file's folder, wherever make runs (read before anything else is included).
LAYERS_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))/

.PHONY: build-$(LAYER)

build-$(LAYER):
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: build with 'make build'" >&2; exit 2; }
	@test -n "$(PLATFORM)" || { echo "ARCH must be arm64 or x86_64, not '$(ARCH)'" >&2; exit 2; }
	@echo "$(LAYER): $(PLATFORM), CPython 3.13 ($(PYTHON313))"
	rm -rf "$(SITE)"
	"$(PYTHON313)" -m pip install --quiet --disable-pip-version-check --no-compile $(PIP_FLAGS) \
		--platform $(PLATFORM) --implementation cp --python-version 3.13 --abi cp313 \
		--only-binary=:all: --target "$(SITE)" -r requirements.txt
	$(foreach package,$(PACKAGES),cp -R $(package) "$(SITE)/";)
# Drop what Lambda never reads: stale bytecode from local runs, pip's console scripts, and the
# dist-info RECORD files (install manifests for pip; importlib.metadata reads METADATA).
	find "$(SITE)" -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf "$(SITE)/bin"
	rm -f "$(SITE)"/*.dist-info/RECORD
# boto3/botocore come from the Lambda runtime; a copy here would shadow it and add ~25 MB.
	@if ls -d "$(SITE)"/boto3 "$(SITE)"/botocore >/dev/null 2>&1; then \
		echo "boto3/botocore got into $(LAYER) (pulled in by a requirement?): keep them out" >&2; exit 1; fi
	$(if $(strip $(LAZY_REEXPORTS)),"$(PYTHON313)" "$(LAYERS_DIR)lazy_reexports.py" "$(SITE)" $(LAZY_REEXPORTS))
	"$(PYTHON313)" -m compileall -q -j 0 --invalidation-mode unchecked-hash -x '$(NO_BYTECODE)' "$(SITE)"
