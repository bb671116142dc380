"""JSON-safe numbers, shared by every ``to_dict`` of the package.

``json.dumps`` writes NaN and infinities as bare tokens that strict parsers
(browsers' ``JSON.parse`` among them) reject; reports write NaN as ``null``
and infinities as the strings ``"inf"``/``"-inf"`` instead.

Example::

    >>> json_number(float("inf")), json_number(float("nan")), json_number(3)
    ('inf', None, 3)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_number(value: Any) -> Any:
    """``value`` with NaN as ``None`` and infinities as ``"inf"``/``"-inf"``; other values unchanged."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    x = float(value)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x
