"""JSON-safe values, shared by every ``to_dict`` of the package.

``json.dumps`` writes NaN and infinities as bare tokens that strict parsers
(browsers' ``JSON.parse`` among them) reject; reports write NaN as ``null``
and infinities as the strings ``"inf"``/``"-inf"`` instead.
:func:`jsonable` applies that to whole records: dataclasses, mappings,
sequences and NumPy arrays, recursively.

Example::

    >>> json_number(float("inf")), json_number(float("nan")), json_number(3)
    ('inf', None, 3)
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Point:
    ...     size: int
    ...     values: tuple
    >>> jsonable(Point(3, (0.5, float("nan"))))
    {'size': 3, 'values': [0.5, None]}
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping

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


def jsonable(value: Any, *, skip: Iterable[str] = ()) -> Any:
    """``value`` as plain JSON types: dataclasses (their fields, less those in ``skip`` and private ones),
    mappings, sequences and arrays recursively, numbers through :func:`json_number`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass_fields(value, skip)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return json_number(value)
    return value


def _dataclass_fields(value: Any, skip: Iterable[str]) -> dict[str, Any]:
    """A dataclass instance's public fields less ``skip``, each through :func:`jsonable`.

    Kept apart from :func:`jsonable` so that its chain of type checks stays one decision per type.
    """
    names = [f.name for f in dataclasses.fields(value) if not f.name.startswith("_") and f.name not in set(skip)]
    return {name: jsonable(getattr(value, name)) for name in names}
