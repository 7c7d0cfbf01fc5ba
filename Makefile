# Halum Hut payments. The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -e -o pipefail -c
PYTHON ?= python3
# pip (in .tools and for 3.13) runs as root in CI containers; its warning about that is noise here.
export PIP_ROOT_USER_ACTION := ignore
VENV := .venv
PY := $(VENV)/bin/python
# One venv, installed in two steps: what serving needs (`make run`: requirements-run.txt, which
# takes the layers' requirements), then the test and lint tools (requirements-dev.txt, which takes
# requirements-run.txt). Each stamp is named after the contents of its files, so a change to any of
# them installs again.
LAYER_REQUIREMENTS := $(wildcard layers/*/requirements.txt)
RUN_REQUIREMENTS := requirements-run.txt $(LAYER_REQUIREMENTS)
DEV_REQUIREMENTS := requirements-dev.txt $(RUN_REQUIREMENTS)
RUN_STAMP := $(VENV)/.installed-run-$(shell cat $(RUN_REQUIREMENTS) | sha1sum | cut -c1-12)
DEV_STAMP := $(VENV)/.installed-dev-$(shell cat $(DEV_REQUIREMENTS) | sha1sum | cut -c1-12)

# Deployment tools live in their own venv: aws-sam-cli pins boto3 and pydantic, which must not
# meet the app's. Newest releases that install together (checked with `pip check`).
TOOLS := .tools
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
TOOLS_STAMP := $(TOOLS)/.installed-sam-$(SAM_CLI_VERSION)-cfn-lint-$(CFN_LINT_VERSION)
SAM := $(TOOLS)/bin/sam
CFN_LINT := $(TOOLS)/bin/cfn-lint
# checkov (IaC scanner) pins its own large dependency tree: a venv of its own too.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(TOOLS)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
CHECKOV := $(CHECKOV_VENV)/bin/checkov
# make deploy ENV=dev|prod (samconfig.toml environments)
ENV ?= dev

# CPython 3.13 (the functions' runtime). Only `python3.13` is put on sam's PATH, as a tiny
# wrapper in this folder, so nothing else the interpreter's bin/ holds shadows the user's tools.
# (A wrapper, not a symlink: a symlink under .tools/ would make it find .tools/pyvenv.cfg.)
PY313_DIR := $(TOOLS)/python3.13
PY313 := $(PY313_DIR)/python3.13

# Stands in for the boto3 that Lambda's Python runtime provides (the layer ships none).
LAMBDA_BOTO3_VERSION := 1.44.8
LAMBDA_RUNTIME := $(TOOLS)/lambda-runtime
LAMBDA_RUNTIME_STAMP := $(LAMBDA_RUNTIME)/.installed-boto3-$(LAMBDA_BOTO3_VERSION)

# `make build`: the deployable build, for ARCH (the template's Architecture; arm64 is what we deploy).
ARCH ?= arm64
BUILD_DIR := .aws-sam/build
# The build the tests load and run: for this machine's architecture, in a folder of its own (sam
# keeps build.toml next to the build folder, so the two builds never share a build graph).
HOST_ARCH := $(shell uname -m | sed -e 's/^aarch64$$/arm64/')
TEST_BUILD_DIR := .aws-sam/test-$(HOST_ARCH)/build
BUILD_INPUTS := template.yaml samconfig.toml \
	$(shell find functions layers -type f -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null | sort)
# Named after the list of inputs too, so a deleted file also triggers a rebuild.
TEST_BUILD_STAMP := $(TEST_BUILD_DIR)/.built-$(shell echo $(BUILD_INPUTS) | sha1sum | cut -c1-12)

# $(call sam_build,<architecture>,<build dir>): sam build with no Docker. The layer's Makefile
# learns the architecture and interpreter from ARCH and PYTHON313 (sam passes only ARTIFACTS_DIR to a
# makefile build and inherits the rest of its environment); it finds layers/layer.mk by itself.
# USE_CONTAINER=1 builds in SAM's build containers instead (Docker, no local CPython 3.13 needed):
# ARCH reaches the layers' build as a container variable; the container has its own python3.13.
define sam_build
	@case "$(1)" in arm64|x86_64) ;; *) echo "ARCH must be arm64 or x86_64, not '$(1)'" >&2; exit 2;; esac
	SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(PY313_DIR):$$PATH" ARCH=$(1) PYTHON313="$(CURDIR)/$(PY313)" \
		$(SAM) build --template-file template.yaml --build-dir $(2) --cache-dir $(dir $(2))cache \
		--cached --parallel --parameter-overrides Architecture=$(1) \
		$(if $(USE_CONTAINER),--use-container --container-env-var ARCH=$(1))
	@# Each function's content hash (code, layers, configuration with ENV's parameters) as its
	@# AutoPublishCodeSha256: a new version goes live whenever anything it runs changes.
	$(TOOLS)/bin/python scripts/stamp_versions.py $(2)/template.yaml --config-env $(ENV) Architecture=$(1)
endef

.PHONY: run test simulate mutants cosmic-ray venv venv-run tools python313 lint build build-test-artifacts lambda-runtime clean browser checkov deploy smoke token reconcile bench openapi schemas events sam-local-db sam-local-tables invoke start-api

## run: serve the whole API on http://127.0.0.1:$PORT (3000 by default; embedded DynamoDB, demo data, Stripe sandbox)
## (installs only what serving needs; the demo data lives in memory: stop and run again to reset it)
run: venv-run
	$(PY) -m local

## test: install what is needed, build the functions for this machine, and run the whole suite
## (pytest, then the simulation's random seeds; both run, and either failing fails the target)
test: venv build-test-artifacts browser
	@status=0; $(PY) -m pytest || status=$$?; \
	$(MAKE) --no-print-directory simulate || status=$$?; \
	exit $$status

# The simulation's seeds: the default takes about two minutes on two cores.
SEEDS ?= 200
SIM_JOBS ?= 2
## simulate: deterministic simulation of the payment lifecycle (SEEDS=100000 soaks; SEED=n replays one, TRACE=1 prints it)
# `tools`: each seed judges the functions' AWS calls against their roles in the template as SAM's own
# translator makes it (tests/support/sam.py runs it with .tools/bin/python).
simulate: venv tools
	PYTHONPATH=tests $(PY) -m simulation $(if $(SEED),--seed $(SEED) $(if $(TRACE),--trace),--seeds $(SEEDS) --jobs $(SIM_JOBS))

# Mutation testing of the money code (docs/mutation-testing.md): cosmic-ray in a venv of its own (its
# dependencies are nothing the layer or the tests need); the killers it drives run in .venv.
COSMIC_RAY_VERSION := 8.7.0
COSMIC_RAY_VENV := $(TOOLS)/cosmic-ray
COSMIC_RAY_STAMP := $(COSMIC_RAY_VENV)/.installed-$(COSMIC_RAY_VERSION)
## mutants: mutation campaign over the money code, killed by the simulation then the tests (under an hour;
## MUTANTS_ARGS="--sample all", "--survivors", "--only 'layers/*money.py*'", "--seeds 200", "--list" ...)
mutants: venv tools cosmic-ray
	PYTHONPATH=tests $(COSMIC_RAY_VENV)/bin/python -m mutation $(MUTANTS_ARGS)

cosmic-ray: $(COSMIC_RAY_STAMP)

$(COSMIC_RAY_STAMP):
	test -x $(COSMIC_RAY_VENV)/bin/python || $(PYTHON) -m venv $(COSMIC_RAY_VENV)
	$(COSMIC_RAY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check cosmic-ray==$(COSMIC_RAY_VERSION)
	rm -f $(COSMIC_RAY_VENV)/.installed-* && touch $@

## token: print a demo Authorization header for USER_ID (1 by default), signed with JWT_SECRET or the
## local default; silent otherwise, so `H=$(make token)` captures the header alone
# Standard library only: nothing to install.
token:
	@$(PYTHON) -m local.tokens $(or $(USER_ID),1)

## reconcile: run one reconciliation sweep on the running `make run` server (the one on $PORT, 3000 by default)
reconcile: venv-run
	$(PY) -m local.reconcile

## events: regenerate events/ from local/make_events.py (add a case there, then run this)
events: venv-run
	$(PY) -m local.make_events

## schemas: regenerate schemas/records/ (the data contract's JSON Schemas) from halum_payments/records.py
schemas: venv-run
	$(PY) -m local.schemas

## openapi: regenerate openapi.json from the functions' resolvers (a unit test fails when it is stale)
openapi: venv-run
	$(PY) -m local.openapi

## bench: cold start, warm overhead, round trips, RSS and layer sizes of the built functions -> bench/results.json
bench: venv-run build-test-artifacts
	$(PY) bench/run.py $(BENCH_ARGS)

# Debian's Chromium for the browser test (installed if missing; see the script)
browser:
	@scripts/ensure-chromium

## venv-run: .venv with what `make run` needs; venv: .venv with everything (tests, simulation, linters)
venv-run: $(RUN_STAMP)
venv: $(DEV_STAMP)

define pip_install
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(1)
endef

$(RUN_STAMP): $(RUN_REQUIREMENTS)
	$(call pip_install,requirements-run.txt)
	rm -f $(VENV)/.installed-run-* && touch $@

# requirements-dev.txt takes requirements-run.txt: this install is also the run's.
$(DEV_STAMP): $(DEV_REQUIREMENTS)
	$(call pip_install,requirements-dev.txt)
	rm -f $(VENV)/.installed-* && touch $@ $(RUN_STAMP)

## tools: aws-sam-cli and cfn-lint in .tools/ (their own venv)
tools: $(TOOLS_STAMP)

$(TOOLS_STAMP):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check \
		aws-sam-cli==$(SAM_CLI_VERSION) cfn-lint==$(CFN_LINT_VERSION)
	$(TOOLS)/bin/python -m pip check
	rm -f $(TOOLS)/.installed-* && touch $@

checkov: $(CHECKOV_STAMP)

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	rm -f $(CHECKOV_VENV)/.installed-* && touch $@

## deploy: build for arm64 and deploy the samconfig.toml environment ENV (dev or prod); the build is
## stamped with ENV's parameters, so deploy what `make deploy` built, with the same ENV
# (The environments set Architecture=arm64: deploy refuses a build made for anything else.)
deploy: build
	@test "$$(cat $(BUILD_DIR)/.architecture)" = arm64 || { echo "deploy needs the arm64 build: make deploy ARCH=arm64" >&2; exit 2; }
	SAM_CLI_TELEMETRY=0 $(SAM) deploy --config-env $(ENV) --template-file $(BUILD_DIR)/template.yaml

## smoke: check a deployed stack, changing nothing: make smoke URL=<ApiUrl> TOKEN=<access token> [STRIPE_WEBHOOK_URL=<StripeWebhookUrl>]
smoke:
	@test -n "$(URL)" -a -n "$(TOKEN)" || { echo "usage: make smoke URL=<the stack's ApiUrl> TOKEN=<an access token> [STRIPE_WEBHOOK_URL=<its StripeWebhookUrl>]" >&2; exit 2; }
	@SMOKE_TOKEN="$(TOKEN)" $(PYTHON) scripts/smoke.py --api-url "$(URL)" $(if $(STRIPE_WEBHOOK_URL),--stripe-webhook-url "$(STRIPE_WEBHOOK_URL)")

# ---------------------------------------------------------------- sam local (needs Docker)
# The functions run in SAM CLI's containers on the Docker network SAM_LOCAL_NETWORK, where DynamoDB
# Local answers as halum-dynamodb:8000 (env.json points the functions there); the host reaches it
# on DYNAMODB_LOCAL. Build first for your machine: `make build ARCH=x86_64` (or arm64).
SAM_LOCAL_NETWORK ?= halum-local
DYNAMODB_LOCAL ?= http://localhost:8000
DYNAMODB_LOCAL_IMAGE ?= amazon/dynamodb-local

## sam-local-db: DynamoDB Local on the sam local Docker network, with the template's tables and the seed
sam-local-db: venv-run
	docker network inspect $(SAM_LOCAL_NETWORK) >/dev/null 2>&1 || docker network create $(SAM_LOCAL_NETWORK)
	docker inspect halum-dynamodb >/dev/null 2>&1 || docker run -d --name halum-dynamodb \
		--network $(SAM_LOCAL_NETWORK) -p 8000:8000 $(DYNAMODB_LOCAL_IMAGE) -jar DynamoDBLocal.jar -sharedDb -inMemory
	@for i in $$(seq 30); do curl -s -o /dev/null $(DYNAMODB_LOCAL) && break; sleep 1; done
	$(MAKE) sam-local-tables

## sam-local-tables: create the tables and load the seed in any DynamoDB (DYNAMODB_LOCAL=http://host:port)
sam-local-tables: venv-run
	$(PY) scripts/sam_local_tables.py $(DYNAMODB_LOCAL) $(SEED_FILE)

# The build `make build` made, and the architecture it made it for: sam local must run that build on
# that architecture. Given on the command line, as samconfig.toml's global parameter_overrides
# (Architecture=arm64) apply to every sam command and would run arm64 images over an x86_64 build.
BUILT_ARCH = $(shell cat $(BUILD_DIR)/.architecture 2>/dev/null)
SAM_LOCAL_BUILD = --template-file $(BUILD_DIR)/template.yaml --parameter-overrides Architecture=$(BUILT_ARCH)
NEEDS_BUILD = { echo "no build in $(BUILD_DIR): make build ARCH=x86_64 (or ARCH=arm64 on an arm machine) first" >&2; exit 2; }

## invoke: sam local invoke FUNCTION=<LogicalId> EVENT=events/<dir>/<case>.json, the event re-signed now
invoke: venv-run tools
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=ListPaymentsFunction EVENT=events/list_payments/ok.json" >&2; exit 2; }
	@test -n "$(BUILT_ARCH)" || $(NEEDS_BUILD)
	@mkdir -p .aws-sam/events
	$(PY) scripts/prepare_event.py $(EVENT) > .aws-sam/events/invoke.json
	SAM_CLI_TELEMETRY=0 $(SAM) local invoke $(FUNCTION) $(SAM_LOCAL_BUILD) --event .aws-sam/events/invoke.json \
		--env-vars env.json --docker-network $(SAM_LOCAL_NETWORK)

## start-api: sam local start-api on http://127.0.0.1:3001 with env.json (DynamoDB Local from sam-local-db)
start-api: tools
	@test -n "$(BUILT_ARCH)" || $(NEEDS_BUILD)
	SAM_CLI_TELEMETRY=0 $(SAM) local start-api $(SAM_LOCAL_BUILD) --port 3001 --env-vars env.json \
		--docker-network $(SAM_LOCAL_NETWORK)

# Re-resolved on every use (cheap), so a newly installed or removed 3.13 is noticed.
python313:
	@mkdir -p $(PY313_DIR)
	@found="$$(scripts/find-python3.13)"; \
	printf '#!/bin/sh\nexec "%s" "$$@"\n' "$$found" > $(PY313).tmp; chmod +x $(PY313).tmp; \
	if cmp -s $(PY313).tmp $(PY313); then rm $(PY313).tmp; else mv -f $(PY313).tmp $(PY313); fi; \
	echo "python3.13: $$found"

## lint: ruff, mypy, cfn-lint, sam validate --lint and checkov (all run; fails if any fails)
lint: venv tools checkov
	@failed=; \
	run() { echo "+ $$*"; "$$@" || failed="$$failed $$1"; }; \
	run $(VENV)/bin/ruff check .; \
	run $(VENV)/bin/mypy; \
	run $(CFN_LINT) --include-checks I -- template.yaml; \
	run env SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --template-file template.yaml; \
	run $(CHECKOV) --quiet --compact --skip-download --framework cloudformation -f template.yaml; \
	if [ -n "$$failed" ]; then echo "lint failed:$$failed" >&2; exit 1; fi

## build: sam build into .aws-sam/build for ARCH (arm64, the default, or x86_64); no Docker needed
build: tools $(if $(USE_CONTAINER),,python313)
	$(call sam_build,$(ARCH),$(BUILD_DIR))
	@echo $(ARCH) > $(BUILD_DIR)/.architecture  # what a deploy must pass as Architecture
	@for layer in PaymentsLayer StripeLayer JwksLayer; do scripts/layer-size $(BUILD_DIR)/$$layer; done

## build-test-artifacts: the build for this machine that tests/build runs, plus the runtime's boto3
build-test-artifacts: $(TEST_BUILD_STAMP) lambda-runtime

$(TEST_BUILD_STAMP): $(TOOLS_STAMP) $(BUILD_INPUTS) | python313
	$(call sam_build,$(HOST_ARCH),$(TEST_BUILD_DIR))
	touch $@

lambda-runtime: $(LAMBDA_RUNTIME_STAMP)

$(LAMBDA_RUNTIME_STAMP): | python313
	rm -rf $(LAMBDA_RUNTIME)
	$(PY313) -m pip install --quiet --disable-pip-version-check --target $(LAMBDA_RUNTIME) \
		boto3==$(LAMBDA_BOTO3_VERSION)
	touch $@

clean:
	rm -rf $(VENV) .aws-sam .tools .mutants .pytest_cache .mypy_cache .ruff_cache bench/results.json
