# Both targets create .venv on first use: torch==2.13.0 first (the local CPU wheel),
# then the project, so the torch range in pyproject is already satisfied.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(PY) -m pytest -q tests

demo: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(PY) sweeps/q1_data_scaling.py --profile laptop --out runs/demo

clean:
	rm -rf $(VENV) runs mlruns.db mlruns
