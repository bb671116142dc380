"""Numbers for people, shared by the text, the plots and the page.

Example::

    >>> count(2910.4), value(0.123456), band(0.1, 0.2, ""), percent(-0.21)
    ('2,910', '0.1235', ' (0.1–0.2, ×2 between edges)', '-21%')
"""

from __future__ import annotations

import math


def count(x: float | None) -> str:
    """An example count: 2,910 / 1.2M / ∞ (``-`` for nothing)."""
    if x is None or not math.isfinite(x):
        return "∞" if x is not None and x > 0 else "-"
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    return f"{int(round(x)):,}"


def value(x: float | None, metric: str = "") -> str:
    """A metric's value to 4 significant digits; parameter counts as :func:`count`."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if metric == "n_params":
        return count(x)
    return f"{x:.4g}"


def band(lower: float, upper: float, metric: str) -> str:
    """`` (lower–upper, ×k between edges)``, or nothing when neither end is finite."""
    if not (math.isfinite(lower) or math.isfinite(upper)):
        return ""
    return f" ({value(lower, metric)}–{value(upper, metric)}{edges(lower, upper, ', ')})"


def edge_ratio(lower: float, upper: float) -> float:
    """``upper / lower``: how many times a band's upper edge is its lower (NaN when that is no finite ratio ≥ 1)."""
    if not (math.isfinite(lower) and math.isfinite(upper)) or lower <= 0 or upper < lower:
        return math.nan
    return upper / lower


def edges(lower: float, upper: float, sep: str = "") -> str:
    """How wide a band is, as the ratio of its edges: ``×3.2 between edges`` (nothing when it has no finite ratio)."""
    ratio = edge_ratio(lower, upper)
    return "" if math.isnan(ratio) else f"{sep}×{ratio:.2g} between edges"


def percent(x: float) -> str:
    """A signed relative error: +12% / -3%."""
    return f"{x:+.0%}"
