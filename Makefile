# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_OUT ?= demo-report

.PHONY: demo test test-full bench install install-test browser clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# Headless Chromium for the report's browser test; skipped (with a message) where it cannot be installed.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  ( command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    (apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1) ) || \
	  echo "note: chromium not available; the browser test will be skipped"

demo: $(VENV)/.installed
	$(VENV)/bin/fidelitymed demo --out $(DEMO_OUT) --force

test: $(VENV)/.installed-test browser
	$(PY) -m pytest -q

test-full: $(VENV)/.installed-test browser
	$(PY) -m pytest -q --runslow

# Benchmarks are scripts, not tests: each prints its table of timings and ratios against the peers.
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_mediation.py
	$(PY) benchmarks/bench_power.py
	$(PY) benchmarks/bench_study.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build .pytest_cache
