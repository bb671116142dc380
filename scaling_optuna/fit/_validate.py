"""Validation of what users pass to the fitting functions: one clear :class:`UserError` per mistake.

Every message names the problem and the fix in one line (the CLI prints it
and exits with status 2).

Example::

    from scaling_optuna.fit._validate import validate_xy

    m, y, order = validate_xy([400, 100, 200], [0.3, 0.5, 0.4])   # sorted by size
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scaling_optuna.errors import UserError

__all__ = [
    "as_float_array",
    "as_positive_array",
    "make_rng",
    "validate_confidence",
    "validate_groups",
    "validate_n_bootstrap",
    "validate_plateau",
    "validate_xy",
]


def as_float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D float array (a scalar becomes one element)."""
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a 1-D sequence of numbers, got {x!r:.80}: pass e.g. [128, 256, 512]") from None
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise UserError(f"{name} must be a 1-D sequence of numbers, got an array of shape {a.shape}: flatten it")
    return a


def as_positive_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D array of positive finite floats."""
    a = as_float_array(x, name)
    bad = ~np.isfinite(a) | (a <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{name} must be positive finite numbers, got {a[i]!r} at position {i}: drop or fix it")
    return a


def validate_xy(sizes: Any, values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sizes and values sorted by size, and the sorting order: at least 3 points, positive, finite, distinct sizes."""
    m = as_float_array(sizes, "sizes")
    y = as_float_array(values, "values")
    if len(m) != len(y):
        raise UserError(
            f"sizes and values have different lengths ({len(m)} vs {len(y)}): pass one value per size"
        )
    if len(m) < 3:
        raise UserError(
            f"need at least 3 (size, value) points to fit a scaling law, got {len(m)}: add more sizes"
        )
    bad = ~np.isfinite(m) | (m <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"sizes must be positive finite numbers, got {m[i]!r} at position {i}: drop or fix that size"
        )
    bad = ~np.isfinite(y) | (y <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"values must be positive finite numbers (the fit is in log space), got {y[i]!r} at "
            f"position {i} (size {m[i]:g}): drop that point or fix the metric"
        )
    uniq, counts = np.unique(m, return_counts=True)
    if (counts > 1).any():
        k = int(np.flatnonzero(counts > 1)[0])
        raise UserError(
            f"sizes contain duplicates ({uniq[k]:g} appears {counts[k]} times): pass one value per size "
            "(e.g. the best trial) and put alternative values in groups="
        )
    order = np.argsort(m, kind="stable")
    return m[order], y[order], order


def validate_plateau(plateau: Any) -> float | None:
    """The best-guess error as a positive float, or None."""
    if plateau is None:
        return None
    try:
        p = float(plateau)
    except (TypeError, ValueError):
        raise UserError(f"plateau must be a positive number (the best-guess error, e.g. 0.9), got {plateau!r}") from None
    if not math.isfinite(p) or p <= 0:
        raise UserError(f"plateau must be a positive finite number (the best-guess error, e.g. 0.9), got {p!r}")
    return p


def validate_n_bootstrap(n: Any) -> int:
    """A non-negative int (booleans and floats refused)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise UserError(f"n_bootstrap must be a non-negative integer (e.g. 1000), got {n!r}")
    return int(n)


def validate_confidence(c: Any) -> float:
    """A level strictly between 0 and 1."""
    try:
        v = float(c)
    except (TypeError, ValueError):
        raise UserError(f"confidence must be a number between 0 and 1 (e.g. 0.95), got {c!r}") from None
    if not (0.0 < v < 1.0):
        raise UserError(f"confidence must be between 0 and 1 exclusive (e.g. 0.95), got {v!r}")
    return v


def make_rng(seed: Any) -> np.random.Generator:
    """NumPy's generator for ``seed`` (None: fresh entropy)."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise UserError(f"seed must be a non-negative integer or None, got {seed!r}: {e}") from None


def validate_groups(groups: Any, n: int, order: np.ndarray) -> list[np.ndarray]:
    """Per-size centred log-deviations (sorted like the sizes)."""
    try:
        glist = list(groups)
    except TypeError:
        raise UserError("groups must be a list (one entry per size) of arrays of values") from None
    if len(glist) != n:
        raise UserError(
            f"groups has {len(glist)} entries but there are {n} sizes: pass one array of values per size"
        )
    devs: list[np.ndarray] = []
    for i, g in enumerate(glist):
        a = as_float_array(g, f"groups[{i}]")
        if a.size == 0:
            raise UserError(f"groups[{i}] is empty: pass at least one value per size")
        if (~np.isfinite(a) | (a <= 0)).any():
            raise UserError(f"groups[{i}] contains non-positive or non-finite values: drop them")
        la = np.log(a)
        # centred, and scaled so that their variance is unbiased for one draw
        devs.append((la - la.mean()) * (math.sqrt(a.size / (a.size - 1)) if a.size > 1 else 1.0))
    if all(d.size < 2 for d in devs):
        raise UserError("groups give no spread to resample (one value per size): pass ≥2 values per size or omit groups")
    return [devs[int(i)] for i in order]
