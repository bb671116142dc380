"""The noise of measured points: how it carries into the fitted curve, and how far one new measurement strays.

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

When the caller knows each point's noise (``value_sd``: the spread of
repeated runs, the test set's binomial noise, the choice among near-equal
trials), :class:`PointNoise` carries it into the *curve* band too: the
calibrated band was made on means over many seeds, so a curve fitted to
noisy points strays further.  Its variance at a size is that of a weighted
straight line through the points in log-log space (weights ``1/varᵢ``)
times a gain², the measured ratio by which the predictor's flexible families
stray more than a line would (``benchmarks/calibrate_fit.py``): larger inside
the data, where they follow single points, than beyond it, where they
extrapolate like the line; the two are blended over the first doubling.

Example::

    import numpy as np
    from scaling_optuna.fit._noise import binomial_log_var, run_log_var

    y = np.array([0.30, 0.21, 0.16, 0.11, 0.09])
    v = run_log_var(y, residual_var=0.002, test_size=359) + binomial_log_var(np.array([0.05]), 359)
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from scaling_optuna.errors import UserError
from scaling_optuna.fit import _calibration

GAINS = (_calibration.NOISE_GAIN_INSIDE, _calibration.NOISE_GAIN_BEYOND)


@dataclass(frozen=True)
class PointNoise:
    """The log variance of each fitted point as an estimate of the curve, and what it makes of the fitted curve."""

    log_m: np.ndarray  # log sizes of the fitted points
    var: np.ndarray  # their log variances (> 0)

    def curve_var(self, m: np.ndarray) -> np.ndarray:
        """Log variance of the fitted curve at sizes ``m`` from the points' noise alone: :meth:`line_var` × gain²."""
        m = np.asarray(m, dtype=float)
        inside, beyond = GAINS
        share = np.clip(1.0 - np.log(m / np.exp(self.log_m.max())) / np.log(2.0), 0.0, 1.0)
        return (beyond + (inside - beyond) * share) ** 2 * self.line_var(m)

    def line_var(self, m: np.ndarray) -> np.ndarray:
        """Log variance at ``m`` of a straight line fitted through the points in log-log space, weighted ``1/varᵢ``."""
        w = 1.0 / self.var
        centre = float(np.sum(w * self.log_m) / np.sum(w))
        spread = float(np.sum(w * (self.log_m - centre) ** 2))
        x = np.log(np.asarray(m, dtype=float)) - centre
        return 1.0 / np.sum(w) + (x * x / spread if spread > 0 else 0.0 * x)

    def run_var(self, values: np.ndarray, test_size: int | None) -> float:
        """The run-to-run log variance of one new measurement: the points' noise net of their test-set part."""
        return float(np.mean(np.maximum(self.var - binomial_log_var(values, test_size), 0.0)))

__all__ = ["PointNoise", "binomial_log_var", "check_test_size", "normal_quantile", "point_sd", "run_log_var", "widen"]


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


def point_sd(
    values: Any,
    *,
    runs: Any = None,
    run_sd: Any = None,
    rival_gap: Any = None,
    test_size: int | None = None,
) -> np.ndarray:
    """The standard error of each point of a learning curve as a measure of its size (the values' units).

    ``values`` are the measured points, sorted by size, each the mean of
    ``runs`` training runs of the chosen configuration (1 without repeats)
    whose standard deviation is ``run_sd`` (NaN where a size had one run).
    ``rival_gap`` is, per size, the log distance between the chosen
    configuration's value and its runner-up's (NaN: none).  Three parts, in
    log space:

    * **seed**: the run-to-run relative variance, pooled over the sizes with
      repeats (weighted by their degrees of freedom), over ``runs``; without
      any repeat, the second-difference estimate of :func:`run_log_var`;
    * **selection**: which configuration wins by validation loss changes from
      study to study; taken as a fair coin between the winner and the
      runner-up, ``gap²/4`` less the gap's own seed noise, pooled over sizes;
    * **test set**: the binomial variance of an error rate on ``test_size`` examples.

    Example::

        >>> sd = point_sd([0.30, 0.20, 0.12], runs=[3, 3, 3], run_sd=[0.02, 0.015, 0.01], test_size=1000)
        >>> bool((sd > 0).all())
        True
    """
    y = np.asarray(values, dtype=float)
    n = np.ones(len(y)) if runs is None else np.maximum(np.asarray(runs, dtype=float), 1.0)
    rel = np.full(len(y), np.nan) if run_sd is None else np.asarray(run_sd, dtype=float) / y
    binomial = binomial_log_var(y, test_size)
    repeated = np.isfinite(rel) & (n >= 2)
    if repeated.any():
        seed = float(np.sum((n[repeated] - 1) * rel[repeated] ** 2) / np.sum(n[repeated] - 1))
    else:
        seed = run_log_var(y, 0.0, test_size)
    gap = np.full(len(y), np.nan) if rival_gap is None else np.asarray(rival_gap, dtype=float)
    known = np.isfinite(gap)
    # the gap carries the seed noise of both means; what is left is how far the rivals truly differ
    selection = max(0.0, float(np.mean(gap[known] ** 2 - 2.0 * seed / n[known]))) / 4.0 if known.any() else 0.0
    return y * np.sqrt(seed / n + selection + binomial)


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
