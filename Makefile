# The README's two commands: `make run` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PY312 := $(shell scripts/find-python 3.12)
PY311 := $(shell scripts/find-python 3.11)
VENV := .venv
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint lint-worker test-gateway test-worker clean browser cjk-font dify-plugin

# The CogVideoX worker's own venv: Python 3.11, so pip takes the CPU torch wheel on disk.
.venv-worker/.installed: worker/requirements.txt worker/requirements-dev.txt
	rm -rf .venv-worker
	$(PY311) -m venv .venv-worker
	.venv-worker/bin/pip install -q -r worker/requirements.txt -r worker/requirements-dev.txt
	touch $@

# Dify's workflow engine (graphon, pinned as Dify pins it) in a side venv: --no-deps leaves out
# its document-extraction extras; tests/dify/requirements.txt lists what it needs to run.
.venv-dify/.installed: tests/dify/requirements.txt
	rm -rf .venv-dify
	$(PY312) -m venv .venv-dify
	.venv-dify/bin/pip install -q --no-deps -r tests/dify/requirements.txt
	touch $@

# The Dify plugin's own environment: exactly what Dify's plugin runtime installs for it (its
# requirements.txt pins the dify_plugin SDK and everything under it), kept apart from the gateway's.
.venv-plugin/.installed: integrations/dify-plugin/requirements.txt
	rm -rf .venv-plugin
	$(PY312) -m venv .venv-plugin
	.venv-plugin/bin/pip install -q -r integrations/dify-plugin/requirements.txt
	touch $@

# The plugin as the .difypkg Dify installs (validated with the SDK's models first).
dify-plugin: .venv-plugin/.installed
	.venv-plugin/bin/python scripts/package_dify_plugin.py --out dist

$(VENV)/.runtime: requirements.txt
	test -x $(VENV)/bin/python || $(PY312) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(VENV)/bin/python -m app serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check app tests bench scripts integrations
	$(VENV)/bin/ruff format --check app tests bench scripts integrations
	$(VENV)/bin/mypy app

lint-worker: .venv-worker/.installed
	.venv-worker/bin/ruff check worker bench/gpu_cogvideox.py
	.venv-worker/bin/ruff format --check worker bench/gpu_cogvideox.py
	.venv-worker/bin/mypy --strict worker bench/gpu_cogvideox.py

# The console's browser tests (tests/console/) drive Debian's chromium package.
browser:
	scripts/install-chromium

# Chinese prompts and subtitles are rendered in tests: a CJK font must exist (installed if not).
cjk-font:
	scripts/ensure-cjk-font

# newman runs the Postman collection (tests/postman), pinned by postman/package-lock.json.
postman/node_modules/.installed: postman/package.json postman/package-lock.json
	npm ci --prefix postman --no-audit --no-fund --loglevel=error
	touch $@

# The gateway suite drives a real worker process too (tests/providers/test_cogvideox.py), the
# Dify plugin in its own environment (tests/dify/test_plugin.py), and tests/deploy builds and
# runs the Docker image and deploy/compose.yaml (the engine: .ci/run; promtool: test-tools).
test-gateway: $(VENV)/.dev .venv-dify/.installed .venv-worker/.installed .venv-plugin/.installed \
		browser cjk-font postman/node_modules/.installed
	scripts/test-tools
	$(VENV)/bin/python -m pytest tests -q

test-worker: .venv-worker/.installed
	.venv-worker/bin/python -m pytest worker/tests -q

test: lint lint-worker test-gateway test-worker

clean:
	rm -rf $(VENV) .venv-worker .venv-dify .venv-plugin dist .mypy_cache .ruff_cache postman/node_modules
