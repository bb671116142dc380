"""Checks of what users pass, shared by every room: one clear :class:`UserError` per mistake, naming the parameter.

Each function takes the value and the *caller's* name for it, so that
``fit_log_log_line(n_draws=-1)`` says ``n_draws``, not a name that function
does not have.  Numbers in messages are written plainly (``nan``, not
``np.float64(nan)``).

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

__all__ = ["choice", "count", "error_target", "fraction", "plain", "positive_number", "whole_number"]


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
