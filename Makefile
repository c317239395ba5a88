# Two set-up commands: `make demo` and `make test`. Both create .venv when it is
# missing, install the pinned requirements and the package (editable), and are
# quick when the venv is already there (a stamp file records the install).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= work_dirs/demo
DEMO_CFG := configs/gsclip/pointnet2_gaf_synthetic.py

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): requirements.txt setup.cfg setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Lint first (setup.cfg's [flake8], 120 columns, and [isort], OpenMMLab's import order), then the whole suite with one torch thread, then the
# numerically sensitive tests (marker `numerics`) again with two: thread count changes how kernels split
# their sums, and so their round-off.
test: lint
	$(PY) -m pytest -q tests
	GSCLIP_TEST_THREADS=2 OMP_NUM_THREADS=2 $(PY) -m pytest -q -m numerics tests

lint: $(STAMP)
	$(PY) -m flake8 gsclip_mm tools configs tests
	$(PY) -m isort --check-only --diff gsclip_mm tools configs tests

demo: $(STAMP)
	$(PY) tools/demo.py --work-dir $(DEMO_DIR)

clean:
	rm -rf work_dirs data/synthetic_sunrgbd
