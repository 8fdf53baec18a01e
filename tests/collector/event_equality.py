"""Equality of event documents, floats to rounding: the chunk path's vectorised statistics sum in
another order than the per-frame path, so figures agree to parts in 10^9, not bit for bit."""

import math


def assert_same(a: object, b: object, where: str = "") -> None:
    """``a == b`` recursively through dicts and lists, floats within 1e-9; ``where`` names the spot."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where
