"""Checks of what users pass, shared by every room: one clear :class:`UserError` per mistake, naming the parameter.

Each function takes the value and the *caller's* name for it, so that
``fit_log_log_line(n_draws=-1)`` says ``n_draws``, not a name that function
does not have.  Numbers in messages are written plainly (``nan``, not
``np.float64(nan)``).  The learning-curve checks (``validate_xy`` and the
rest) are those of :mod:`scaling_optuna.fit`.

Example::

    >>> count(3, "n_bootstrap")
    3
    >>> error_target(0.05, "target")
    0.05
    >>> plain(float("nan")), plain(0.25), plain("x")
    ('nan', '0.25', "'x'")
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scaling_optuna.errors import UserError

__all__ = [
    "as_float_array", "as_positive_array", "choice", "count", "error_target", "fraction", "make_rng", "plain",
    "positive_number", "validate_groups", "validate_plateau", "validate_value_sd", "validate_xy", "whole_number",
]


def plain(value: Any) -> str:
    """``value`` as a user reads it: numbers in ``%g`` style (NumPy scalars too), anything else as ``repr``."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def count(value: Any, name: str, *, minimum: int = 0, example: int = 1000) -> int:
    """A whole number ≥ ``minimum`` (booleans and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        least = "non-negative" if minimum == 0 else ("positive" if minimum == 1 else f"≥ {minimum}")
        raise UserError(f"{name} must be a {least} integer (e.g. {example}), got {plain(value)}")
    return int(value)


def whole_number(value: Any, name: str) -> int:
    """A positive whole number given as an int or an integral float (``4000.0``), as sizes are."""
    if _is_number(value) and math.isfinite(value) and value > 0 and float(value).is_integer():
        return int(value)
    raise UserError(f"{name} must be positive whole numbers (counts of examples), got {plain(value)}: pass e.g. 4000")


def positive_number(value: Any, name: str, *, example: str = "0.05") -> float:
    """A finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise UserError(f"{name} must be a positive finite number (e.g. {example}), got {plain(value)}")
    return float(value)


def fraction(value: Any, name: str, *, example: str = "0.95") -> float:
    """A number strictly between 0 and 1 (a confidence level, a share)."""
    if not _is_number(value) or not 0.0 < value < 1.0:
        raise UserError(f"{name} must be a number strictly between 0 and 1 (e.g. {example}), got {plain(value)}")
    return float(value)


def error_target(value: Any, name: str, *, majority_error: float | None = None) -> float:
    """A target test error in (0, 1), and below the error of always guessing the majority class when known.

    A value at or above that error is an accuracy typed as an error (0.98 for 98 %) more often than not.
    """
    if not _is_number(value):
        raise UserError(f"{name} must be a test error such as 0.05, got {plain(value)}")
    if not 0.0 < value < 1.0:  # NaN included
        raise UserError(f"{name} {plain(value)} is not a test error strictly between 0 and 1: pass e.g. 0.05 for 5%")
    if majority_error is not None and value >= majority_error:
        raise UserError(
            f"{name} {plain(value)} is not below the test error of always guessing the most common class "
            f"({majority_error:.3g}), which needs no data; if you meant an accuracy of {value:.0%}, "
            f"pass the error {1.0 - value:.3g}"
        )
    return float(value)


def choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    """One of ``options``."""
    if value not in options:
        raise UserError(f"{name} must be one of {', '.join(options)}, got {plain(value)}")
    return value


# -- learning curves --------------------------------------------------------


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
        raise UserError(f"{name} must be positive finite numbers, got {plain(a[i])} at position {i}: drop or fix it")
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
            f"sizes must be positive finite numbers, got {plain(m[i])} at position {i}: drop or fix that size"
        )
    bad = ~np.isfinite(y) | (y <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"values must be positive finite numbers (the fit is in log space), got {plain(y[i])} at "
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


def validate_plateau(plateau: Any, values: np.ndarray, falling: bool) -> float | None:
    """The best-guess error as a positive float (or None); for a falling curve it must lie above its lowest value."""
    if plateau is None:
        return None
    p = positive_number(plateau, "plateau", example="0.9, the error of guessing")
    if falling and p <= float(np.min(values)):
        raise UserError(
            f"plateau {p:g} lies at or below every value (the lowest is {float(np.min(values)):.3g}): it is the error "
            "of guessing without data (e.g. 0.9 for 10 balanced classes), which the curve falls from; pass that or leave it out"
        )
    return p


def validate_value_sd(value_sd: Any, values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Each value's standard error as a log variance (sorted like the sizes); a zero or NaN one borrows the median."""
    sd = as_float_array(value_sd, "value_sd")
    if len(sd) != len(values):
        raise UserError(f"value_sd has {len(sd)} entries but there are {len(values)} values: pass one standard error per value")
    sd = sd[order]
    bad = np.isinf(sd) | (sd < 0)
    if bad.any():
        raise UserError(f"value_sd must be non-negative finite numbers (NaN: unknown), got {plain(sd[bad][0])}")
    log_var = (sd / values) ** 2
    known = np.isfinite(log_var) & (log_var > 0)
    if not known.any():
        raise UserError("value_sd gives no positive standard error: pass the spread of repeated runs, or leave it out")
    return np.where(known, log_var, float(np.median(log_var[known])))


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
