"""How far one new *measurement* strays from the curve: the noise a band for an observation adds.

The curve band of a fit holds the *mean* curve: LCDB's curves, on which it
was calibrated, are means over many seeds.  One training run, measured once
on a finite test set, scatters around that mean for two reasons:

* the **test set**: an error rate ``p`` measured on ``n`` test examples has
  the binomial standard deviation ``sqrt(p(1 − p)/n)``, in log space
  ``sqrt((1 − p)/(p·n))`` — it grows as the error falls;
* the **run**: initialisation, data order, and for a tuned curve which trial
  the search happened to find best.

:func:`run_log_var` estimates the second from the fitted points themselves,
net of the test-set noise they carry: the larger of the fit's own residual
scatter and the scatter of the points' second differences in log-log space
(``mean((Δ² log y)²) / 6`` for independent noise of equal size; it does not
shrink with the flexibility of the families the way residuals do).
:func:`binomial_log_var` is the first, at the predicted error.

Example::

    import numpy as np
    from scaling_optuna.fit._noise import binomial_log_var, run_log_var

    y = np.array([0.30, 0.21, 0.16, 0.11, 0.09])
    v = run_log_var(y, residual_var=0.002, test_size=359) + binomial_log_var(np.array([0.05]), 359)
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

from scaling_optuna.errors import UserError

__all__ = ["binomial_log_var", "check_test_size", "normal_quantile", "run_log_var", "widen"]


def check_test_size(test_size: Any) -> int | None:
    """``test_size`` as an int (``None`` stays ``None``).

    Raises:
        UserError: not a positive whole number.
    """
    if test_size is None:
        return None
    if isinstance(test_size, bool) or not isinstance(test_size, (int, np.integer)) or test_size < 1:
        raise UserError(f"test_size must be the number of test examples (a positive integer, e.g. 359), got {test_size!r}")
    return int(test_size)


def binomial_log_var(p: np.ndarray, test_size: int | None) -> np.ndarray:
    """Variance of ``log`` of an error rate ``p`` measured on ``test_size`` examples (0 without a size).

    ``p`` is held inside ``[0.5/n, 1 − 0.5/n]``: a predicted error below half a
    test example is measured as 0 or 1 mistakes, and the log noise of that is
    bounded by the one of half a mistake, not infinite.
    """
    p = np.asarray(p, dtype=float)
    if test_size is None:
        return np.zeros_like(p)
    half = 0.5 / test_size
    q = np.clip(p, half, 1.0 - half)
    return (1.0 - q) / (q * test_size)


def run_log_var(values: np.ndarray, residual_var: float, test_size: int | None) -> float:
    """Run-to-run log variance of one measurement, estimated from the fitted ``values`` (sorted by size).

    The larger of ``residual_var`` (the fit's residual log variance) and the
    second-difference estimate, each less the test-set noise the values carry
    (with ``test_size``), never below 0.
    """
    y = np.asarray(values, dtype=float)
    b = binomial_log_var(y, test_size)
    from_residuals = residual_var - float(np.mean(b))
    from_differences = 0.0
    if len(y) >= 3:
        d2 = np.diff(np.log(y), 2)
        carried = b[:-2] + 4.0 * b[1:-1] + b[2:]
        from_differences = float(np.mean(d2 * d2 - carried)) / 6.0
    return max(0.0, from_residuals, from_differences)


def widen(
    mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, extra_sd: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray]:
    """A band widened on each side, in quadrature on the log scale, by ``z`` × ``extra_sd`` (log units)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        low_half = np.hypot(np.log(mean / lower), z * extra_sd)
        high_half = np.hypot(np.log(upper / mean), z * extra_sd)
        return mean * np.exp(-low_half), mean * np.exp(high_half)


def normal_quantile(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.96 at 0.95)."""
    return NormalDist().inv_cdf((1.0 + confidence) / 2.0)
