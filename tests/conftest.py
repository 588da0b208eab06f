import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

# the per-backend fixture below is function-scoped and only switches a process-wide
# setting, the same for every example of a test: safe to share between examples
_shared = {"suppress_health_check": [HealthCheck.function_scoped_fixture]}
settings.register_profile("ci", max_examples=300, derandomize=True, deadline=None, print_blob=True, **_shared)
settings.register_profile("dev", max_examples=40, deadline=None, **_shared)
settings.register_profile("thorough", max_examples=2000, deadline=None, **_shared)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The oracle tests run once per available backend, through the public switch
# (convpool.backend): the compiled kernels and the NumPy reference must both agree with
# PyTorch.  Test ids end in [numpy] / [compiled].
PER_BACKEND = {
    "test_maxplus",
    "test_conv_oracle",
    "test_pool_oracle",
    "test_gradcheck",
    "test_modules",
    "test_conv_transpose",
    "test_conv_transpose_paths",
    "test_fold",
    "test_unpool",
    "test_padding_layers",
    "test_fractional",
    "test_upsample",
    "test_batch_norm",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    name = metafunc.module.__name__.rsplit(".", 1)[-1]
    if name in PER_BACKEND or name.startswith("test_regressions_"):
        import convpool

        metafunc.parametrize("per_backend", convpool.available_backends(), indirect=True)


@pytest.fixture(autouse=True)
def per_backend(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Within a per-backend test module: the test runs on backend ``request.param``."""
    name = getattr(request, "param", None)
    if name is None:
        yield None
        return
    import convpool

    with convpool.backend(name):
        yield name
