"""A fitted curve's band as curves one can draw: what propagates two curves' uncertainty into one answer.

A fit's 95 % band (:meth:`~scaling_optuna.fit.ScalingLawFit.predict`) is read
as a log-normal spread around its mean, its two edges at ±1.96 standard
deviations, each side with its own width: the band's curve at the standard
normal quantile ``z`` is ``mean · exp(z · sd)`` with the upper side's ``sd``
for ``z > 0`` and the lower side's below.  One ``z`` per drawn curve makes
the draw a whole curve, higher or lower everywhere, the way the band's edges
are curves that ``data_needed`` inverts.  Two experiments' fits are drawn
independently: their points share the subsets and the test set, so treating
them as independent leaves their differences wider, never narrower, than the
truth.

Example::

    import numpy as np
    from scaling_optuna.compare.draws import Band, first_reach
    from scaling_optuna.fit import fit_scaling_law

    fit = fit_scaling_law([100, 200, 400, 800, 1600], [0.5, 0.36, 0.27, 0.2, 0.15])
    band = Band.of(fit, np.geomspace(100, 1e6, 100))
    curves = band.draw(np.array([-1.96, 0.0, 1.96]))      # three curves: low edge, mean, high edge
    first_reach(band.sizes, curves, np.log([0.1, 0.1, 0.1]))  # where each reaches test error 0.1
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from scaling_optuna.fit import ScalingLawFit

__all__ = ["Band", "first_reach", "normal_draws", "search_grid"]

Z95 = 1.959963984540054
# How far beyond its largest fitted size a curve is inverted before "never" (a band there is all but the plateau).
SEARCH_REACH = 1e6
_POINTS_PER_DECADE = 24


@dataclasses.dataclass(frozen=True)
class Band:
    """A curve's log mean and the log widths of its band's two sides (per 1 sd) at ``sizes``."""

    sizes: np.ndarray
    log_mean: np.ndarray
    sd_low: np.ndarray
    sd_high: np.ndarray

    @classmethod
    def of(cls, fit: ScalingLawFit, sizes: np.ndarray) -> "Band":
        """``fit``'s band at ``sizes``; a fit without a band (``n_bootstrap=0``, the last-point fallback) has width 0."""
        sizes = np.asarray(sizes, dtype=float)
        pred = fit.predict(sizes)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_mean = np.log(pred.mean)
            low = np.nan_to_num((log_mean - np.log(pred.lower)) / Z95, nan=0.0, posinf=0.0)
            high = np.nan_to_num((np.log(pred.upper) - log_mean) / Z95, nan=0.0, posinf=0.0)
        return cls(sizes, log_mean, np.maximum(low, 0.0), np.maximum(high, 0.0))

    def draw(self, z: np.ndarray) -> np.ndarray:
        """Log values of the band's curves at the normal quantiles ``z``: shape ``(len(z), len(sizes))``."""
        z = np.asarray(z, dtype=float)[:, None]
        return self.log_mean[None, :] + np.where(z > 0, z * self.sd_high[None, :], z * self.sd_low[None, :])


def search_grid(fit: ScalingLawFit, reach: float = SEARCH_REACH) -> np.ndarray:
    """Sizes from ``fit``'s smallest fitted size to ``reach`` × its largest, evenly on a log scale."""
    lo, hi = min(fit.sizes_used), max(fit.sizes_used) * reach
    return np.geomspace(lo, hi, int(math.ceil(math.log10(hi / lo) * _POINTS_PER_DECADE)) + 2)


def first_reach(sizes: np.ndarray, log_curves: np.ndarray, log_levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each falling curve first reaches its level, interpolated on the log scale; ``inf`` where it never does.

    ``log_curves`` is ``(n, len(sizes))``, ``log_levels`` ``(n,)``.  Also
    returns which curves are already at their level at ``sizes[0]``: for
    those the size is at most ``sizes[0]``, since nothing is said of smaller sets.
    """
    reached = log_curves <= log_levels[:, None]
    hit = reached.any(axis=1)
    j = np.argmax(reached, axis=1)
    out = np.full(len(log_levels), np.inf)
    at_start = hit & (j == 0)
    out[at_start] = sizes[0]
    inner = hit & (j > 0)
    rows, k = np.flatnonzero(inner), j[inner]
    before, after = log_curves[rows, k - 1], log_curves[rows, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip(np.nan_to_num((before - log_levels[rows]) / (before - after), nan=1.0), 0.0, 1.0)
    log_m = np.log(sizes)
    out[rows] = np.exp(log_m[k - 1] + share * (log_m[k] - log_m[k - 1]))
    return out, at_start


def normal_draws(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent standard normal samples of ``n``, one per curve of a pair, from ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), rng.standard_normal(n)
