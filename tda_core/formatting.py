"""How numbers that are claims are printed on the board (one place, so every table says it the same way)."""
from __future__ import annotations

import math

__all__ = ["format_p", "format_ci"]


def format_p(p, n_boot: int | None = None) -> str:
    """A p-value as text: "< 0.001" below 0.001 (a bootstrap p of 0 only says "below 1/B", never "0"),
    "n/a" when missing or not finite, otherwise 3 significant digits."""
    if p is None:
        return "n/a"
    p = float(p)
    if not math.isfinite(p):
        return "n/a"
    floor = max(0.001, 1.0 / n_boot) if n_boot else 0.001
    if p < floor:
        return f"< {floor:.3g}"
    return f"{p:.3g}"


def format_ci(lo, hi, digits: int = 3, signed: bool = False) -> str:
    """"[lo, hi]" with `digits` decimals ("" when either bound is missing)."""
    if lo is None or hi is None or not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return ""
    spec = f"{'+' if signed else ''}.{digits}f"
    return f"[{float(lo):{spec}}, {float(hi):{spec}}]"
