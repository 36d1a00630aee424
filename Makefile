VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Bento's published Node SDK, which tests/test_api_sdk.py drives against `sluice serve`.
BENTO_SDK := tests/sdk/node_modules/.package-lock.json
$(BENTO_SDK): tests/sdk/package.json tests/sdk/package-lock.json
	npm ci --prefix tests/sdk --no-audit --no-fund --loglevel=error

run: $(STAMP)
	$(VENV)/bin/sluice serve

test: $(STAMP) $(BENTO_SDK)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info

bench: $(STAMP)
	$(PY) bench/engine.py
	$(PY) bench/workers.py
