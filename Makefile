# The two commands of the README: `make demo` and `make test`. Both create .venv when missing and
# install exactly the versions (and file hashes) of requirements.lock / requirements-test.lock.
# `make lock` refreshes the lock files; `make test-latest` runs the suite on the newest releases
# that pyproject.toml allows, in .venv-latest (see docs/installing.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo-report
LOCK := requirements.lock
TEST_LOCK := requirements-test.lock
LATEST := .venv-latest
LOCK_VENV := .venv-lock
UV_VERSION := 0.13.8
# The lock is for CPython 3.11 on x86-64 Linux (manylinux_2_28 wheels or newer).
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28

# pip with its own defaults only: no pip.conf and no PIP_* variables, which on a given machine may
# add local indexes or find-links. Together with --require-hashes a fresh machine installs the very
# files the lock names, or fails.
pip = PIP_CONFIG_FILE=/dev/null $(1) -m pip --isolated --disable-pip-version-check
# uv resolves against its default index only (no uv.toml, no UV_* index variables).
uv = env -u UV_INDEX -u UV_INDEX_URL -u UV_DEFAULT_INDEX -u UV_EXTRA_INDEX_URL -u UV_FIND_LINKS \
	$(LOCK_VENV)/bin/uv pip compile --no-config --quiet --generate-hashes $(LOCK_TARGET) \
	--custom-compile-command "make lock"

.PHONY: demo test test-full test-latest bench install install-test browser lock clean

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import sys; sys.version_info[:2] == (3, 11) or print("note: the lock files are for Python 3.11; this is " + sys.version.split()[0] + " (set PYTHON=python3.11, or use make test-latest)")'
	$(call pip,$(PY)) install --quiet --require-hashes -r $(LOCK)
	$(call pip,$(PY)) install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed $(TEST_LOCK)
	$(call pip,$(PY)) install --quiet --require-hashes -r $(TEST_LOCK)
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

# FIDELITYMED_LOCK: tests/test_lockfile.py then checks that the environment is the lock's.
test: $(VENV)/.installed-test browser
	FIDELITYMED_LOCK=$(TEST_LOCK) $(PY) -m pytest -q

test-full: $(VENV)/.installed-test browser
	FIDELITYMED_LOCK=$(TEST_LOCK) $(PY) -m pytest -q --runslow

# The newest releases within pyproject.toml's ranges (re-resolved on every call), not the lock.
test-latest: browser
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(call pip,$(LATEST)/bin/python) install --quiet --upgrade pip
	$(call pip,$(LATEST)/bin/python) install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	$(LATEST)/bin/python -m pip list --format=freeze --exclude-editable > $(LATEST)/versions.txt
	$(LATEST)/bin/python -m pytest -q

# Refresh both lock files to the newest releases within pyproject.toml's ranges. The test lock is
# constrained by the runtime lock, so both pin the same runtime versions.
lock:
	test -x $(LOCK_VENV)/bin/uv || ( $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(call pip,$(LOCK_VENV)/bin/python) install --quiet uv==$(UV_VERSION) )
	$(uv) --upgrade pyproject.toml requirements-build.in -o $(LOCK)
	$(uv) --upgrade --extra test pyproject.toml requirements-build.in -c $(LOCK) -o $(TEST_LOCK)
	@echo "locked: $$(grep -c '^[a-z0-9]' $(LOCK)) packages in $(LOCK), $$(grep -c '^[a-z0-9]' $(TEST_LOCK)) in $(TEST_LOCK)"

# Benchmarks are scripts, not tests: each prints its table of timings and ratios against the peers.
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_mediation.py
	$(PY) benchmarks/bench_power.py
	$(PY) benchmarks/bench_study.py

clean:
	rm -rf $(VENV) $(LATEST) $(LOCK_VENV) $(DEMO_OUT) build .pytest_cache
