"""How the suite writes a number, for every reader: one function per use, all here.

- `fmt`: full precision (9 significant digits), for failure messages and compare output, where a reader
  may paste the value back; `-` where nothing was recorded.
- `num`: the same for pages; an em dash where nothing was recorded (also a template's undefined value).
- `short`: table-sized, 3 significant digits, whole numbers as integers; pages put the full value in a title.
- `sig`: for prose (the docs page): 3 significant digits, below 0.01 as a power of ten (3.35e-8),
  whole numbers with thousands separators (10,000).
- `sort_value`: what the index's script can parseFloat ("Infinity", not Python's "inf").
"""
from __future__ import annotations

import math
from typing import Any

MISSING = "—"


def _special(x: Any) -> str | None:
    """NaN and infinities as Python writes them, else None."""
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return str(x)
    return None


def fmt(x: float | None) -> str:
    """9 significant digits; `-` for None."""
    if x is None:
        return "-"
    return _special(x) or f"{x:.9g}"


def num(x: Any) -> str:
    """fmt for pages: an em dash where a figure was not recorded (None or a template's undefined)."""
    if x is None or (not isinstance(x, (int, float, str)) and not x):  # jinja2.Undefined is falsy
        return MISSING
    return fmt(x)


def short(x: float | None) -> str:
    """3 significant digits, whole numbers below a million as integers; empty for None."""
    if x is None:
        return ""
    if (special := _special(x)) is not None:
        return special
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.3g}"


def sig(value: Any) -> str:
    """3 significant digits for prose, below 0.01 as a power of ten, whole numbers with separators."""
    if value is None:
        return MISSING
    if isinstance(value, (bool, str)):
        return str(value)
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x.is_integer() and abs(x) < 1e6:
        return f"{int(x):,}"
    text = f"{x:.2e}" if abs(x) < 0.01 else f"{x:.3g}"
    mantissa, _, exponent = text.partition("e")
    if "." in mantissa and exponent:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def sort_value(x: float | None) -> str:
    """A value the index's script can parseFloat; empty for None and NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return "Infinity" if x == math.inf else "-Infinity" if x == -math.inf else repr(x)
