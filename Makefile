# Two commands: `make demo` and `make test`. Each creates/refreshes the venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= out/demo

.PHONY: test test-fast demo venv system-deps lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,view,interop,dev]'
	touch $(STAMP)

venv: $(STAMP)

# Best effort: Debian packages for the real Aseba peer (tests skip with a reason without them).
system-deps:
	@bash scripts/install_system_deps.sh

# Everything. Tiers by folder: tests/unit (in-process), tests/system (subprocesses, kills,
# full disks, a browser) in parallel on the machine's cores (pytest-xdist); then
# tests/peer and every other asebaplayground test alone: they time the robot's
# 10 Hz refresh, which a busy CPU next to them delays.
test: $(STAMP) system-deps lint
	$(PY) -m pytest -q -n auto -m "not peer and not playground"
	$(PY) -m pytest -q -m "peer or playground"

# The unit tier only, in under a minute on 2 cores: property tests at a quarter of
# their examples (tests/budget.py), the real Aseba peer left to `make test`.
test-fast: $(STAMP)
	ROBOT_SSL_TEST_TIER=fast $(PY) -m pytest -q -n auto tests/unit -m "not playground"

demo: $(STAMP)
	$(VENV)/bin/robot-ssl demo --out $(DEMO_DIR)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture
	$(PY) scripts/check_contracts_doc.py
	$(PY) -m benchmarks.readme_table --check

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) -m benchmarks all
	$(PY) -m benchmarks.readme_table

clean:
	rm -rf $(VENV) out .pytest_cache
