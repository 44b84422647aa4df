"""How the report writes numbers (a dash for what is missing or not finite) and fills prose templates
from a config without str.format, so config text can reach nothing but the values it is given."""

from __future__ import annotations

import math
import string

DASH = "—"


def finite(x) -> float | int | None:
    """x if it is a finite real number (not a bool), else None: NaN or inf count as missing."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return x if math.isfinite(x) else None


def pct(x: float | None) -> str:
    return DASH if finite(x) is None else f"{100 * x:.1f}%"


def num(x: float | None, digits: int = 3) -> str:
    return DASH if finite(x) is None else f"{x:.{digits}f}"


def count(n: int | None) -> str:
    return DASH if finite(n) is None else f"{n:,}"


def duration(s: float | None) -> str:
    if finite(s) is None:
        return DASH
    if s < 90:
        return f"{s:.0f} s"
    return f"{s / 60:.1f} min" if s < 5400 else f"{s / 3600:.1f} h"


def bad_placeholder(template: str, allowed) -> str | None:
    """Why `template` cannot be filled from `allowed` names ({name} only: no attributes, indexes, conversions
    or format specs), or None where it can."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:  # a lone { or }
        return f"has a lone {{ or }} ({e}); double it for a literal brace"
    for _, name, spec, conversion in parsed:
        if name is not None and (name not in allowed or spec or conversion):
            return f"names {name!r}" if name not in allowed else f"formats {{{name}}}; write {{{name}}} alone"
    return None


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with each {name} replaced by values[name] ({{ and }} are braces); the names were checked
    by bad_placeholder beforehand."""
    return "".join(literal + ("" if name is None else str(values[name]))
                   for literal, name, _, _ in string.Formatter().parse(template))
