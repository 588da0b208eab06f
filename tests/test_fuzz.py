"""A fixed slice of the differential fuzzer (tests/fuzz.py): the same seeds on every
run, through every available backend and PyTorch, forward and backward."""

from __future__ import annotations

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
    """The harness itself: a wrong convpool result must be reported with a reproducer."""
    import fuzz as fuzz_module

    real = fuzz_module.run_convpool

    def off_by_a_little(case):  # type: ignore[no-untyped-def]
        y, grads = real(case)
        return y + 0.5, grads

    monkeypatch.setattr(fuzz_module, "run_convpool", off_by_a_little)
    seed = next(s for s in range(100) if draw_case(s).op == "max_pool" and draw_case(s).x.size)
    _, reports = fuzz(range(seed, seed + 1), ("numpy",))
    assert reports and "--replay" in reports[0] and "output differs" in reports[0]
