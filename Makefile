# One virtual environment, made from requirements.txt (exact pins) and the package itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
# pytest-xdist: one worker per core; a test file stays on one worker so its module fixtures run once
PYTEST_WORKERS ?= auto
XDIST := -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: test test-slow lint demo demo-resnet50 venv clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e . --config-settings editable_mode=compat
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(XDIST) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(XDIST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check mer_keras experiments benchmarks tools tests
	$(VENV)/bin/ruff format --check mer_keras experiments benchmarks tools tests

# the whole flow in about 2 minutes: the tiny backbone, so the frozen features take seconds, not minutes
demo: $(STAMP)
	$(PY) -m experiments.exp2 --n 13 --backbone tiny

# the same with the paper's ResNet-50 (random weights without the VGGFace2 file): about 9 minutes
demo-resnet50: $(STAMP)
	$(PY) -m experiments.exp2 --n 13

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
