VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

FRONTEND := ui/frontend
EDITOR_JS := src/sluice/ui/static/build/editor.js
FRONTEND_SRC := $(shell find $(FRONTEND)/src -name '*.js' -o -name '*.jsx' -o -name '*.css')

.PHONY: run test lint bench clean chromium

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The web UI's front end (the YAML editor and the flow builder), bundled from the npm
# registry (npm ci also brings axe-core, which tests/test_ui_accessibility.py runs in the
# browser, and vitest); rebuilt only when its sources or locked dependencies change.
# package.json pins vite (vitest's) to 8.3.8: 8.4.0 names an optional package the registry
# does not have, which leaves a lock file that `npm ci` refuses.
$(EDITOR_JS): $(FRONTEND)/package.json $(FRONTEND)/package-lock.json $(FRONTEND_SRC)
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent

# The browser the UI tests drive (Debian's Chromium; Playwright never downloads one).
chromium:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-dejavu-core)

# Bento's published Node SDK, which tests/test_api_sdk.py drives against `sluice serve`.
BENTO_SDK := tests/sdk/node_modules/.package-lock.json
$(BENTO_SDK): tests/sdk/package.json tests/sdk/package-lock.json
	npm ci --prefix tests/sdk --no-audit --no-fund --loglevel=error

run: $(STAMP) $(EDITOR_JS)
	$(VENV)/bin/sluice serve

test: $(STAMP) $(EDITOR_JS) chromium $(BENTO_SDK)
	$(VENV)/bin/ruff check .
	cd $(FRONTEND) && npm test --silent
	$(VENV)/bin/pytest -n 3 --dist worksteal -m "not serial"
	$(VENV)/bin/pytest -m serial

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info $(FRONTEND)/node_modules src/sluice/ui/static/build

bench: $(STAMP) $(EDITOR_JS)
	$(PY) bench/engine.py
	$(PY) bench/api.py
	$(PY) bench/delivery.py
	$(PY) bench/broadcast.py
	$(PY) bench/workers.py
	$(PY) bench/latency.py
	$(PY) bench/pipeline.py
	$(PY) bench/ui.py
