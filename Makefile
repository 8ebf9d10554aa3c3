# Set-up is part of every target: a fresh clone needs nothing but python3 (3.11+) and make.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The main job: a 20-user spawn storm against a throwaway real JupyterHub.
demo: $(STAMP)
	$(VENV)/bin/hubstress stress-test --sandbox --count 20 --batch-size 5

# Lint + every test (unit, and integration against real sandbox hubs).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

# Benchmarks (not part of the tests): need Debian's wrk and the bench extra (flask, httpx).
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) benchmarks/spawn_storm.py
	$(PY) benchmarks/http_clients.py
	$(PY) benchmarks/batching.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
