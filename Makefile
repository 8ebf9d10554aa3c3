# Set-up is part of every target: a fresh clone needs nothing but python3 (3.11+) and make.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean debian-chromium debian-wrk

# Debian packages: chromium (the JupyterLab end-to-end test), wrk (benchmarks only).
# Explicit rules, not a `debian-%` pattern: GNU make never applies a pattern rule to a target
# listed in .PHONY, so such a rule silently installed nothing (tests/unit/test_makefile.py).
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)
apt_install = command -v $(1) >/dev/null || { echo "installing Debian's $(1) (a minute or two, once)"; \
	$(APT) update -q && DEBIAN_FRONTEND=noninteractive $(APT) install -y -q $(1); }
debian-chromium:
	@$(call apt_install,chromium)
debian-wrk:
	@$(call apt_install,wrk)

$(STAMP): pyproject.toml
	@echo "first set-up: a virtual environment in $(VENV) with hubstress and its test tools"
	@echo "(JupyterHub, jupyter_server, JupyterLab, pandas, Dask, ...): a few minutes, once"
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The main job: a 20-user spawn storm against a throwaway real JupyterHub.
demo: $(STAMP)
	$(VENV)/bin/hubstress stress-test --sandbox --count 20 --batch-size 5

# Lint + every test (unit; integration against real sandbox hubs, a real Jupyter server,
# executed notebooks, and JupyterLab in headless Chromium).
test: $(STAMP) debian-chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

# Benchmarks (not part of the tests): Debian's wrk and the bench extra (flask, httpx, locust).
bench: $(STAMP) debian-wrk
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) benchmarks/spawn_storm.py
	$(PY) benchmarks/sessions.py
	$(PY) benchmarks/http_clients.py
	$(PY) benchmarks/batching.py
	$(PY) benchmarks/load_generators.py
	$(PY) benchmarks/dask_scaling.py
	$(PY) benchmarks/capacity.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
