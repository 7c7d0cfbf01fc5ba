# Halum Hut payments. The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/payments/requirements.txt | sha1sum | cut -c1-12)

.PHONY: run test venv clean

## run: serve the whole API on http://127.0.0.1:3000 (embedded DynamoDB, demo data, Stripe sandbox)
run: venv
	$(PY) -m local

## test: install what is needed and run the whole suite
test: venv
	$(PY) -m pytest

venv: $(STAMP)

$(STAMP): requirements-dev.txt layers/payments/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

clean:
	rm -rf $(VENV) .aws-sam .tools .pytest_cache .mypy_cache .ruff_cache bench/results.json
