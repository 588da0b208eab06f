# The README's whole set-up: `make demo` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1

.PHONY: install demo test check format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# PyTorch is the test oracle only; 2.13.0 CPU installs from a local wheel here.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[fast,lab,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/convpool demo

check: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

test: check
	# one BLAS/numba thread per worker: two workers on two cores, no oversubscription
	$(ONE_THREAD) $(PY) -m pytest -q -n 2 -p no:cacheprovider
	# the pure-NumPy reference path (no compiled kernels) against the same oracles
	CONVPOOL_PURE_NUMPY=1 $(ONE_THREAD) $(PY) -m pytest -q -n 2 -p no:cacheprovider \
		tests/test_conv_oracle.py tests/test_pool_oracle.py tests/test_gradcheck.py tests/test_modules.py

format: $(STAMP)
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

bench: $(STAMP)
	$(VENV)/bin/convpool bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
