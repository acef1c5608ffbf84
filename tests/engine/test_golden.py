"""Behaviour does not change: every output of the golden set (tests/support/golden.py) is
bit-identical to the one recorded in tests/golden/ (issue 17, "How it is checked").

Float rounding differs between torch builds and CPU instruction sets, so where this machine's
torch version or CPU capability differs from the recording's, the outputs are compared within
2/255 (images: two levels; arrays: 2/255 of the recorded array's largest magnitude) instead,
and the message says so. Re-record only for an intended change of behaviour, with the reason in
the commit message: ``python -m tests.support.golden --record`` (docs/architecture.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import golden

#: Model load, six fits, 33 images and two video edits: about 50 s on one core.
pytestmark = pytest.mark.timeout(600)

RECORDED = golden.manifest()
TOLERANCE = 2 / 255


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, golden.Output]:
    outputs = golden.produce(tmp_path_factory.mktemp("golden"))
    return {o.name: o for o in outputs}


def same_machine() -> tuple[bool, str]:
    here = golden.environment()
    there = {k: RECORDED[k] for k in here}
    if here == there:
        return True, ""
    return False, (
        f"recorded on torch {there['torch']} / {there['cpu_capability']}, running on "
        f"torch {here['torch']} / {here['cpu_capability']}: float rounding differs, "
        f"so compared within {TOLERANCE:.4f} (2/255), not bit for bit"
    )


def compare(name: str, got: np.ndarray, want: np.ndarray, exact: bool, why: str) -> str | None:
    """None when ``got`` matches ``want``; otherwise what differs, naming the output."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"{name}: shape/dtype {got.shape} {got.dtype}, recorded {want.shape} {want.dtype}"
    if exact and np.array_equal(got, want):
        return None
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if want.dtype == np.uint8:  # images: levels of 255
        unit, tol = "/255", 2.0
    else:  # maps and fit statistics: relative to the recorded array's largest magnitude
        unit = ""
        tol = TOLERANCE * max(float(np.abs(want).max()), np.finfo(np.float32).tiny)
    if not exact and diff.max() <= tol:
        return None
    changed = int((diff > 0).sum())
    how = "bit-identical" if exact else f"within {tol:g}{unit}"
    return (
        f"{name} is not {how} to tests/golden/{name}: max |Δ| {diff.max():g}{unit}, mean "
        f"{diff.mean():.3g}{unit}, {changed} of {diff.size} values differ "
        f"({RECORDED['files'].get(name, {}).get('case', 'not recorded')}). {why}".rstrip()
        + (
            " If this change of behaviour is intended, re-record (python -m "
            "tests.support.golden --record) and say why in the commit message."
        )
    )


def test_the_set_is_complete(fresh):
    missing = sorted(set(RECORDED["files"]) - set(fresh))
    extra = sorted(set(fresh) - set(RECORDED["files"]))
    assert not missing and not extra, (
        f"the golden set changed: not produced any more {missing}, not recorded {extra}"
    )


@pytest.mark.parametrize("name", sorted(RECORDED["files"]))
def test_output_is_unchanged(fresh, name):
    assert name in fresh, f"{name} was not produced"
    exact, why = same_machine()
    problem = compare(name, fresh[name].array, golden.load(name), exact, why)
    assert problem is None, problem


def test_compare_fails_on_one_level_and_reports_it():
    """The comparison itself can fail: one pixel one level off is not bit-identical."""
    want = np.zeros((4, 4, 3), np.uint8)
    got = want.copy()
    got[1, 2, 0] = 1
    problem = compare("generate/x.png", got, want, True, "")
    assert problem is not None and "max |Δ| 1/255" in problem and "1 of 48" in problem
    assert compare("generate/x.png", got, want, False, "tolerant") is None
    got[0, 0, 0] = 3
    assert "within 2/255" in compare("generate/x.png", got, want, False, "tolerant")
