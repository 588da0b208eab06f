"""A fixed slice of the differential fuzzer (tests/fuzz.py): the same seeds on every
run, through every available backend and PyTorch, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest

import convpool
from fuzz import draw_case, fuzz

CHUNK = 40


@pytest.mark.parametrize("start", range(0, 320, CHUNK))
def test_fuzz_slice_agrees_with_torch(start: int) -> None:
    count, reports = fuzz(range(start, start + CHUNK), convpool.available_backends())
    assert count == CHUNK
    assert not reports, "\n".join(reports)


def test_fuzz_cases_are_reproducible() -> None:
    a, b = draw_case(123), draw_case(123)
    assert a.describe() == b.describe()
    assert (a.x.tobytes(), a.args) == (b.x.tobytes(), b.args)


def test_fuzz_reports_a_planted_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself: a wrong convpool result must be reported."""
    import fuzz as fuzz_module

    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    args = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1), "ceil_mode": False}
    case = fuzz_module.Case(0, "max_pool", 2, np.float64, x, args)
    assert fuzz_module.check(case, ("numpy",)) == []
    real = fuzz_module.run_convpool

    def off_by_a_little(case):  # type: ignore[no-untyped-def]
        y, grads = real(case)
        return y + 1e-6, grads

    monkeypatch.setattr(fuzz_module, "run_convpool", off_by_a_little)
    problems = fuzz_module.check(case, ("numpy",))
    assert problems and "output differs" in problems[0]


def test_fuzz_slice_with_every_far_padding_trimmed() -> None:
    """The same seeds with the trim's slack at zero, so that every convolution whose padding
    exceeds its input runs as a trimmed sub-problem (at the default slack only far larger
    padding does, which the drawn sizes rarely reach)."""
    with convpool.config.tuning(conv_trim_slack=0):
        count, reports = fuzz(range(0, 2000), convpool.available_backends())
    assert count == 2000
    assert not reports, "\n".join(reports)
