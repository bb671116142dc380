"""The weighted ensemble of curve families that predicts a learning curve, and its calibrated band.

:func:`fit_ensemble` fits every family of :mod:`._families` that carries
weight to the curve (points weighted by ``(m / m_max)^p``: the larger sizes
are measured with less noise and say more about where the curve goes), and
predicts with the weighted mean of the families' curves.  A family's weight
is its calibrated prior, times ``exp(−log(rms / best rms) / τ_fit)`` when a
misfit tilt is calibrated (a family that cannot follow the observed points
loses its say about the unobserved ones), times ``exp(−score / τ)`` when a
within-curve tilt is (``score``: how badly the family predicted the curve's
own sizes above ``m_max / 2`` from the rest).  The weights, ``p``, the loss
and both ``τ`` come from :mod:`._calibration`, derived from the LCDB dev
curves by ``benchmarks/calibrate_fit.py``.

The band is split-conformal: with ``h(m) = max(0, log(m / m_max))`` the log
distance beyond the data, the band's log scale is ::

    s(m)² = (σ·√(3/n))² + spread(m)² + h(m)²·(κ² + (λ·b)²)

where ``σ`` is the ensemble's log residual std, ``spread(m)`` the weighted std
of the families' log predictions at ``m``, and ``b`` the within-curve
backtest error rate (the ensemble refitted without the sizes above
``m_max / 2`` predicts them; log error per unit of log distance).  The band is
``mean·exp(q_lo·s)`` … ``mean·exp(q_hi·s)`` with ``q_lo``, ``q_hi`` the
quantiles of ``(log truth − log mean) / s`` over the calibration curves, and
``κ``, ``λ`` chosen there to make it narrowest.  The upper edge may rise
beyond the data: real curves do rise now and then (LCDB has them), and a
band held monotone by carrying its upper edge forward lost a tenth of its
coverage.  Nothing exceeds the best-guess ``cap`` when one is given.

Example::

    import numpy as np
    from scaling_optuna.fit._ensemble import fit_ensemble

    m = np.array([100.0, 200, 400, 800, 1600, 3200])
    y = np.array([0.52, 0.38, 0.30, 0.245, 0.21, 0.19])
    ens = fit_ensemble(m, y)
    ens.mean(np.array([25600.0])), ens.band(np.array([25600.0]), 0.95)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from scaling_optuna.fit import _calibration
from scaling_optuna.fit import _families
from scaling_optuna.fit import _noise

__all__ = ["CALIBRATED", "SEARCH_REACH", "Ensemble", "Settings", "backtest_errors", "fit_ensemble", "fit_members", "misfits"]

SEARCH_REACH = 1e12  # data_needed looks this far beyond the largest size, then says "never"
_GRID_PER_DECADE = 24
_MISFIT_FLOOR = 1e-3


@dataclass(frozen=True)
class Settings:
    """What calibration decides: family weights, point weights, loss and the band's constants."""

    weights: dict[str, float]
    size_weight_power: float
    robust: float | None
    misfit_tilt: float | None
    tilt: float | None
    drift: float
    backtest_gain: float
    default_backtest_rate: float
    quantile_levels: tuple[float, ...]
    quantiles: tuple[float, ...]

    def band_quantiles(self, confidence: float) -> tuple[float, float]:
        """(q_lo ≤ 0, q_hi ≥ 0) of the normalised score for a two-sided band at ``confidence``.

        Levels beyond the table's ends use its ends (the table spans 0.5 %–99.5 %).
        """
        levels, values = np.asarray(self.quantile_levels), np.asarray(self.quantiles)
        lo = float(np.interp((1.0 - confidence) / 2.0, levels, values))
        hi = float(np.interp((1.0 + confidence) / 2.0, levels, values))
        return min(lo, 0.0), max(hi, 0.0)


CALIBRATED = Settings(
    weights=dict(_calibration.FAMILY_WEIGHTS),
    size_weight_power=_calibration.SIZE_WEIGHT_POWER,
    robust=_calibration.ROBUST_SCALE,
    misfit_tilt=_calibration.MISFIT_TILT,
    tilt=_calibration.BACKTEST_TILT,
    drift=_calibration.DRIFT,
    backtest_gain=_calibration.BACKTEST_GAIN,
    default_backtest_rate=_calibration.DEFAULT_BACKTEST_RATE,
    quantile_levels=tuple(_calibration.SCORE_QUANTILE_LEVELS),
    quantiles=tuple(_calibration.SCORE_QUANTILES),
)


@dataclass(frozen=True)
class Ensemble:
    """A fitted ensemble: the families with their weights, and the pieces of the band's scale."""

    names: tuple[str, ...]
    params: tuple[np.ndarray, ...]
    weights: np.ndarray
    m_ref: float
    m_min: float
    n_points: int
    noise_std: float
    backtest_rate: float
    backtest_measured: bool
    cap: float | None
    settings: Settings = field(repr=False)

    # -- the curve ----------------------------------------------------------

    def members(self, m: np.ndarray) -> np.ndarray:
        """Each family's curve at ``m``: shape (families, len(m))."""
        m = np.asarray(m, dtype=float)
        return np.stack([_families.evaluate(n, p, m, m_ref=self.m_ref) for n, p in zip(self.names, self.params)])

    def mean(self, m: np.ndarray) -> np.ndarray:
        """The prediction: the weighted mean of the families' curves (capped)."""
        return self._capped(self.weights @ self.members(m))

    def floor(self) -> float:
        """The value the prediction levels off at as the size grows without bound."""
        level = float(sum(w * _families.asymptote(n, p) for n, p, w in zip(self.names, self.params, self.weights)))
        return min(level, self.cap) if self.cap is not None else level

    # -- the band -----------------------------------------------------------

    def scale(self, m: np.ndarray) -> np.ndarray:
        """The band's log scale ``s(m)`` (see the module docstring)."""
        m = np.asarray(m, dtype=float)
        curves = np.maximum(self.members(m), 1e-300)
        mean = np.maximum(self.weights @ curves, 1e-300)
        spread2 = self.weights @ (np.log(curves) - np.log(mean)[None, :]) ** 2
        beyond = np.maximum(np.log(m / self.m_ref), 0.0)
        rate2 = self.settings.drift**2 + (self.settings.backtest_gain * self.backtest_rate) ** 2
        curve2 = self.noise_std**2 * min(3.0 / self.n_points, 1.0)
        return np.sqrt(curve2 + spread2 + beyond**2 * rate2)

    def band(self, m: np.ndarray, confidence: float, extra_sd: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) at sizes ``m`` for a two-sided ``confidence``.

        ``extra_sd`` (log units, one per size) widens both sides in quadrature
        by its normal quantile: the noise of one measurement, for a band that
        holds a new measurement rather than the curve (:mod:`._noise`).
        """
        m = np.asarray(m, dtype=float)
        q_lo, q_hi = self.settings.band_quantiles(confidence)
        mean = self.weights @ self.members(m)
        s = self.scale(m)
        low_half, high_half = -q_lo * s, q_hi * s
        if extra_sd is not None:
            z = _noise.normal_quantile(confidence)
            low_half = np.hypot(low_half, z * extra_sd)
            high_half = np.hypot(high_half, z * extra_sd)
        with np.errstate(over="ignore", under="ignore"):
            lower = mean * np.exp(-low_half)
            upper = mean * np.exp(high_half)
        return self._capped(lower), self._capped(upper)

    # -- inverse ------------------------------------------------------------

    def size_for(self, target: float, confidence: float | None = None, side: str = "mean") -> float:
        """Smallest size at which the mean (or the band's ``side`` edge) falls to ``target``; inf if never.

        The curves are non-increasing, so the crossing is found on a log grid
        and refined by bisection.
        """
        # the band's edges are calibrated beyond the data, not before it: search them from the first size
        lo_m = self.m_ref * 1e-6 if side == "mean" else self.m_min
        hi_m = self.m_ref * SEARCH_REACH
        grid = np.geomspace(lo_m, hi_m, _grid_points(hi_m / lo_m))
        values = self._side(grid, confidence, side)
        below = np.flatnonzero(values <= target)
        if below.size == 0:
            return math.inf
        k = int(below[0])
        if k == 0:
            return float(grid[0])
        a, b = math.log(grid[k - 1]), math.log(grid[k])
        for _ in range(60):
            mid = 0.5 * (a + b)
            if self._side(np.array([math.exp(mid)]), confidence, side)[0] <= target:
                b = mid
            else:
                a = mid
        return math.exp(b)

    def _side(self, m: np.ndarray, confidence: float | None, side: str) -> np.ndarray:
        if side == "mean" or confidence is None:
            return self.mean(m)
        lower, upper = self.band(m, confidence)
        return lower if side == "lower" else upper

    def _capped(self, values: np.ndarray) -> np.ndarray:
        return np.minimum(values, self.cap) if self.cap is not None else values


def fit_members(
    m: np.ndarray, y: np.ndarray, settings: Settings = CALIBRATED, names: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Fit every family that carries weight (or those in ``names``) with enough points; failed fits left out.

    Example::

        fit_members(m, y)["pow3"]   # parameters for _families.evaluate(..., m_ref=m[-1])
    """
    names = tuple(n for n, w in settings.weights.items() if w > 0) if names is None else names
    w = (m / m[-1]) ** settings.size_weight_power
    out = {}
    for name in names:
        if len(m) < _families.MIN_POINTS[name]:
            continue
        params, loss = _families.fit_family(name, m, y, w, robust=settings.robust)
        if math.isfinite(loss) and np.all(np.isfinite(_families.evaluate(name, params, m, m_ref=m[-1]))):
            out[name] = params
    return out


def backtest_errors(
    m: np.ndarray, y: np.ndarray, settings: Settings = CALIBRATED, names: tuple[str, ...] | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The within-curve backtest: refit on the sizes up to ``m_max / 2``, predict the rest.

    Returns each family's log errors ``log(prediction / value)`` at the held-out
    sizes, those sizes' log distance beyond the refitted data, and the held-out
    values (all empty when fewer than 3 points would remain).
    """
    keep = m <= m[-1] / 2.0 * (1.0 + 1e-9)
    if keep.sum() < 3 or keep.all():
        return {}, np.empty(0), np.empty(0)
    fitted = fit_members(m[keep], y[keep], settings, names)
    held_m, held_y = m[~keep], y[~keep]
    m_ref = float(m[keep][-1])
    errors = {
        name: np.log(np.maximum(_families.evaluate(name, p, held_m, m_ref=m_ref), 1e-300) / held_y)
        for name, p in fitted.items()
    }
    return errors, np.log(held_m / m_ref), held_y


def fit_ensemble(
    m: np.ndarray, y: np.ndarray, *, cap: float | None = None, settings: Settings = CALIBRATED
) -> Ensemble | None:
    """Fit the ensemble to sizes ``m`` (sorted, distinct) and values ``y``; ``None`` if every family failed.

    Example::

        ens = fit_ensemble(m, y, cap=0.9)
        dict(zip(ens.names, ens.weights))
    """
    fitted = fit_members(m, y, settings)
    if not fitted:
        return None
    names = tuple(fitted)
    prior = np.array([settings.weights[n] for n in names])
    errors, horizons, _ = backtest_errors(m, y, settings, names)
    weights = prior / prior.sum()
    if settings.misfit_tilt:
        # a family that cannot follow the observed points has no say about the unobserved ones
        misfit = misfits(m, y, fitted, settings)
        weights = weights * np.exp(-np.array([misfit[n] for n in names]) / settings.misfit_tilt)
        weights = weights / weights.sum()
    if settings.tilt and errors:
        # families that extrapolated the curve's own last points badly lose weight
        score = np.array([np.mean(np.abs(errors[n])) if n in errors else np.inf for n in names])
        tilt = np.exp(-(score - score[np.isfinite(score)].min()) / settings.tilt) if np.isfinite(score).any() else 1.0
        weights = weights * np.where(np.isfinite(tilt), tilt, 0.0)
        weights = weights / weights.sum()
    rate, measured = _backtest_rate(errors, horizons, dict(zip(names, weights)), settings)
    m_ref = float(m[-1])
    params = tuple(fitted[n] for n in names)
    curves = np.stack([_families.evaluate(n, p, m, m_ref=m_ref) for n, p in zip(names, params)])
    resid = np.log(y) - np.log(np.maximum(weights @ curves, 1e-300))
    point_w = (m / m_ref) ** settings.size_weight_power
    noise = math.sqrt(float(np.sum(point_w * resid**2) / np.sum(point_w)))
    return Ensemble(names, params, weights, m_ref, float(m[0]), len(m), noise, rate, measured, cap, settings)


def misfits(m: np.ndarray, y: np.ndarray, fitted: dict[str, np.ndarray], settings: Settings = CALIBRATED) -> dict[str, float]:
    """How much worse each family follows the points than the best one: ``log(rms / best rms)``, ≥ 0.

    ``rms`` is the family's weighted log residual, with the point weights of the
    fit; the best is floored at 0.1 % so that families that all fit to within
    rounding count as equal.
    """
    w = (m / m[-1]) ** settings.size_weight_power
    rms = {}
    for name, params in fitted.items():
        r = np.log(y) - np.log(np.maximum(_families.evaluate(name, params, m, m_ref=float(m[-1])), 1e-300))
        rms[name] = math.sqrt(float(np.sum(w * r * r) / np.sum(w)))
    best = max(min(rms.values()), _MISFIT_FLOOR)
    return {name: max(0.0, math.log(max(value, _MISFIT_FLOOR) / best)) for name, value in rms.items()}


def _backtest_rate(
    errors: dict[str, np.ndarray], horizons: np.ndarray, weights: dict[str, float], settings: Settings
) -> tuple[float, bool]:
    """Log error of the backtest ensemble per unit of log distance (the calibrated default without one)."""
    present = [n for n in errors if weights.get(n, 0.0) > 0]
    if not present or horizons.size == 0:
        return settings.default_backtest_rate, False
    w = np.array([weights[n] for n in present])
    w = w / w.sum()
    ratio = w @ np.exp(np.stack([errors[n] for n in present]))
    e = np.log(np.maximum(ratio, 1e-300))
    return math.sqrt(float(np.sum(e * e) / np.sum(horizons * horizons))), True


def _grid_points(ratio: float) -> int:
    return int(max(2, min(4000, math.ceil(math.log10(max(ratio, 1.0)) * _GRID_PER_DECADE) + 2)))
