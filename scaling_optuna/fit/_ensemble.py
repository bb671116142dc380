"""The weighted ensemble of curve families that predicts a learning curve, and its calibrated band.

:func:`fit_ensemble` fits every family of :mod:`._families` that carries
weight to the curve (points weighted by ``(m / m_max)^p``: the larger sizes
are measured with less noise and say more about where the curve goes).  A
family's weight is its calibrated prior, times ``exp(−log(rms / best rms) /
τ_fit)`` when a misfit tilt is calibrated (a family that cannot follow the
observed points loses its say about the unobserved ones), times ``exp(−score
/ τ)`` when a within-curve tilt is (``score``: how badly the family predicted
the curve's own sizes above ``m_max / 2`` from the rest).

The prediction is ``mix^(1−g) · plain^g``: ``mix`` the weighted mean of the
families' curves (a family too few points can fit leaves its prior weight to
``plain`` rather than to the families that remain), ``plain`` the plain least-squares law ``α·m^β + γ`` fitted
to every point off the best-guess plateau, ``g`` calibrated.  With the
*floor guard* no family predicts, beyond the data, below the straight
log-log line through the last point at the fitted points' own slope: a
family that promises a faster fall than any power law the points show
carries no weight there (an exponential that falls to zero did this on
neural curves).  The weights, ``p``, the loss, the tilts, ``g`` and the guard
come from :mod:`._calibration`, derived by ``benchmarks/calibrate_fit.py``
from the calibration halves of the LCDB and the neural dev curves.

The band is conformalised quantile regression, its width conditioned on the
curve and its two sides apart.  With ``h(m) = log(m / m_max)`` the log
distance beyond the data, its log scale below and above the mean is ::

    s(m)² = (σ·√(min(1, 3/n)))² + exp(θ · x(m))²      (the second term only for h > 0; θ_low or θ_high)
    x(m) = (1, log h, log(b + 0.01), log(spread/h + 0.01), log(split/h + 0.01), log(σ + 0.001), log n)

where ``σ`` is the log residual std of the prediction on the fitted points,
``b`` the within-curve backtest error rate (the ensemble refitted without
the sizes above ``m_max / 2`` predicts them; log error per unit of log
distance; a calibrated default for a curve too short for it), ``spread`` the
weighted std of the families' log predictions and ``split`` the log distance
between ``mix`` and ``plain``, both at ``10·m_max`` (so ``h = log 10`` there:
curve-level features, and the band widens steadily with ``h``), and ``n``
the number of points.  So
a band is narrow for a curve that is smooth, long, predicted its own last
points well and whose families and plain law agree, and wide otherwise.
``θ_low`` and ``θ_high`` are the 2.5 % and 97.5 % quantiles of the
calibration errors ``log truth − log mean`` modelled this way (pinball loss);
the band is ``mean·exp(−k·s_low)`` … ``mean·exp(k·s_high)``, ``k`` the
conformal multiplier: the quantile at the band's confidence of
``max(−error/s_low, error/s_high)`` over the calibration extrapolations,
taken so that it holds over resampled datasets and tasks.  The upper edge may rise beyond the data:
real curves do rise now and then (LCDB has them).  Nothing exceeds the
best-guess ``cap`` when one is given.

Example::

    import numpy as np
    from scaling_optuna.fit._ensemble import fit_ensemble

    m = np.array([100.0, 200, 400, 800, 1600, 3200])
    y = np.array([0.52, 0.38, 0.30, 0.245, 0.21, 0.19])
    ens = fit_ensemble(m, y)
    ens.mean(np.array([25600.0])), ens.band(np.array([25600.0]), 0.95)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from scaling_optuna.fit import _calibration
from scaling_optuna.fit import _families
from scaling_optuna.fit import _noise
from scaling_optuna.fit import _power_law

__all__ = [
    "BAND_FEATURES", "CALIBRATED", "SEARCH_REACH", "Ensemble", "Settings", "backtest_errors", "fit_ensemble",
    "fit_members", "fit_plain", "misfits", "scale_of",
]

SEARCH_REACH = 1e12  # data_needed looks this far beyond the largest size, then says "never"
_GRID_PER_DECADE = 24
_MISFIT_FLOOR = 1e-3
# The band's features x(m), in the order of Settings.scale_coefs (see the module docstring).
BAND_FEATURES = ("1", "log h", "log(b + 0.01)", "log(spread/h + 0.01)", "log(split/h + 0.01)", "log(σ + 0.001)", "log n")
_PROBE_MULTIPLE = 10.0  # spread and split are read at 10× the largest size, per unit of log distance


@dataclass(frozen=True)
class Settings:
    """What calibration decides: family weights, point weights, loss and the band's constants."""

    weights: dict[str, float]
    size_weight_power: float
    robust: float | None
    misfit_tilt: float | None
    tilt: float | None
    plain_weight: float
    floor_guard: bool
    scale_coefs_low: tuple[float, ...]
    scale_coefs_high: tuple[float, ...]
    feature_medians: tuple[float, ...]
    default_backtest_rate: float
    confidence_levels: tuple[float, ...]
    multipliers: tuple[float, ...]

    def band_multiplier(self, confidence: float) -> float:
        """``k`` for a two-sided band at ``confidence``: the band is ``mean·exp(−k·s_low)`` … ``mean·exp(k·s_high)``.

        Levels beyond the table's ends use its ends (the table spans 50 %–99.5 %).
        """
        return max(float(np.interp(confidence, self.confidence_levels, self.multipliers)), 0.0)


CALIBRATED = Settings(
    weights=dict(_calibration.FAMILY_WEIGHTS),
    size_weight_power=_calibration.SIZE_WEIGHT_POWER,
    robust=_calibration.ROBUST_SCALE,
    misfit_tilt=_calibration.MISFIT_TILT,
    tilt=_calibration.BACKTEST_TILT,
    plain_weight=_calibration.PLAIN_WEIGHT,
    floor_guard=_calibration.FLOOR_GUARD,
    scale_coefs_low=tuple(_calibration.SCALE_COEFS_LOW),
    scale_coefs_high=tuple(_calibration.SCALE_COEFS_HIGH),
    feature_medians=tuple(_calibration.FEATURE_MEDIANS),
    default_backtest_rate=_calibration.DEFAULT_BACKTEST_RATE,
    confidence_levels=tuple(_calibration.CONFIDENCE_LEVELS),
    multipliers=tuple(_calibration.BAND_MULTIPLIERS),
)


@dataclass(frozen=True)
class Ensemble:
    """A fitted ensemble: the families with their weights, the plain law, and the pieces of the band's scale."""

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
    plain: np.ndarray | None = None  # (c, β, γ) of the plain law at log_ref; None: it failed to fit
    plain_log_ref: float = 0.0
    floor_slope: float | None = None  # the fitted points' log-log slope, for the floor guard
    last_value: float = math.nan  # the value at the largest fitted size, where the guard's line starts
    plain_share: float = 0.0  # the prior weight of the families too few points could fit, left to the plain law

    # -- the curve ----------------------------------------------------------

    def members(self, m: np.ndarray) -> np.ndarray:
        """Each family's curve at ``m``, floored by the guard beyond the data: shape (families, len(m))."""
        m = np.asarray(m, dtype=float)
        curves = np.stack([_families.evaluate(n, p, m, m_ref=self.m_ref) for n, p in zip(self.names, self.params)])
        floor = self._guard_floor(m)
        return curves if floor is None else np.maximum(curves, floor[None, :])

    def mix(self, m: np.ndarray) -> np.ndarray:
        """The weighted mean of the families' curves, the plain law standing in for those not fitted (uncapped)."""
        families = self.weights @ self.members(m)
        if self.plain_share == 0 or self.plain is None:
            return families
        return (1.0 - self.plain_share) * families + self.plain_share * self.plain_curve(m)

    def plain_curve(self, m: np.ndarray) -> np.ndarray | None:
        """The plain least-squares law at ``m`` (``None`` if it did not fit)."""
        if self.plain is None:
            return None
        return _power_law.curve(self.plain[None, :], np.log(np.asarray(m, dtype=float)) - self.plain_log_ref)[0]

    def mean(self, m: np.ndarray) -> np.ndarray:
        """The prediction: ``mix^(1−g)·plain^g`` (capped)."""
        return self._capped(self._uncapped_mean(m))

    def floor(self) -> float:
        """The value the prediction levels off at as the size grows without bound."""
        level = float(sum(w * _families.asymptote(n, p) for n, p, w in zip(self.names, self.params, self.weights)))
        if self.plain is not None and self.plain_share > 0:
            level = (1.0 - self.plain_share) * level + self.plain_share * max(float(self.plain[2]), 0.0)
        g = self._plain_weight()
        if g > 0:
            level = level ** (1.0 - g) * max(float(self.plain[2]), 0.0) ** g
        return min(level, self.cap) if self.cap is not None else level

    # -- the band -----------------------------------------------------------

    def band_features(self, m: np.ndarray) -> np.ndarray:
        """``x(m)`` of the band's scale model, shape (len(m), len(BAND_FEATURES)); rows for ``h ≤ 0`` hold ``-inf`` in ``log h``.

        Only ``log h`` depends on ``m``: the rest describe the curve, so that the
        band widens steadily with the distance (its lower edge never rises).
        """
        m = np.asarray(m, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.log(m / self.m_ref)
            log_h = np.where(h > 0, np.log(np.where(h > 0, h, 1.0)), -np.inf)
        return np.column_stack([np.ones_like(m), log_h] + [np.full_like(m, v) for v in self._curve_features])

    @functools.cached_property
    def _curve_features(self) -> tuple[float, ...]:
        """The features of ``x`` after ``log h``: constants of the fitted curve, computed once (``size_for`` asks often)."""
        spread, split = self._disagreement
        per_unit = math.log(_PROBE_MULTIPLE)
        return (
            math.log(self.backtest_rate + 0.01),
            math.log(spread / per_unit + 0.01),
            math.log(split / per_unit + 0.01),
            math.log(self.noise_std + 0.001),
            math.log(self.n_points),
        )

    @functools.cached_property
    def _disagreement(self) -> tuple[float, float]:
        """The families' log spread and the log gap between their mean and the plain law, at ``10·m_max``."""
        size = np.array([self.m_ref * _PROBE_MULTIPLE])
        curves = np.maximum(self.members(size)[:, 0], 1e-300)
        mix = max(float(self.weights @ curves), 1e-300)
        spread = math.sqrt(float(self.weights @ (np.log(curves) - math.log(mix)) ** 2))
        plain = self.plain_curve(size)
        split = abs(math.log(mix) - math.log(max(float(plain[0]), 1e-300))) if plain is not None else 0.0
        return spread, split

    def scale(self, m: np.ndarray, side: str = "low") -> np.ndarray:
        """The band's log scale ``s(m)`` below (``side="low"``) or above (``"high"``) the mean; see the module docstring."""
        m = np.asarray(m, dtype=float)
        return scale_of(self.band_features(m), self.near_var(), self._coefs(side))

    def near_var(self) -> float:
        """The in-range part of the band's log variance, ``σ²·min(1, 3/n)``."""
        return self.noise_std**2 * min(3.0 / self.n_points, 1.0)

    def _coefs(self, side: str) -> np.ndarray:
        return np.asarray(self.settings.scale_coefs_low if side == "low" else self.settings.scale_coefs_high)

    def band_reasons(self, size: float) -> str:
        """Why the band at ``size`` is as wide as it is, in words: the distance, then what widens and narrows it most.

        Each feature's share of the log scale, ``θᵢ·(xᵢ − typical xᵢ)`` (typical:
        the calibration curves' median), ranks what makes this curve's band
        wider or narrower than a typical one at the same distance.
        """
        x = self.band_features(np.array([float(size)]))[0]
        if x[1] == -np.inf:
            return "inside the fitted sizes: the points' own scatter"
        parts = [f"{size / self.m_ref:.3g}× beyond the data"]
        coefs = 0.5 * (self._coefs("low") + self._coefs("high"))
        share = coefs * (x - np.asarray(self.settings.feature_medians))
        words = self._reason_words()
        ranked = sorted((i for i in range(2, len(x)) if words[i]), key=lambda i: share[i])
        if ranked and share[ranked[-1]] > 0.05:
            parts.append(f"wider than typical for {words[ranked[-1]]}")
        if ranked and share[ranked[0]] < -0.05:
            parts.append(f"narrower for {words[ranked[0]]}")
        return "; ".join(parts)

    def _reason_words(self) -> dict[int, str | None]:
        spread, split = self._disagreement
        per_doubling = math.expm1(self.backtest_rate * math.log(2.0))
        return {
            2: f"its own backtest's error ({per_doubling:.0%} per doubling)" if self.backtest_measured else None,
            3: f"its curve families' disagreement ({math.expm1(spread):.0%} at 10×)",
            4: f"the gap between its families and the plain power law ({math.expm1(split):.0%} at 10×)"
            if self.plain is not None else None,
            5: f"its points' scatter around the fit ({math.expm1(self.noise_std):.1%})",
            # n is in the model to condition the others (few points measure them poorly), not a reason by itself
            6: None,
        }

    def band(self, m: np.ndarray, confidence: float, extra_sd: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) at sizes ``m`` for a two-sided ``confidence``.

        ``extra_sd`` (log units, one per size) widens both sides in quadrature
        by its normal quantile: the noise of one measurement, for a band that
        holds a new measurement rather than the curve (:mod:`._noise`).
        """
        m = np.asarray(m, dtype=float)
        k = self.settings.band_multiplier(confidence)
        mean = self._uncapped_mean(m)
        x, near = self.band_features(m), self.near_var()
        low_half, high_half = k * scale_of(x, near, self._coefs("low")), k * scale_of(x, near, self._coefs("high"))
        if extra_sd is not None:
            z = _noise.normal_quantile(confidence)
            low_half = np.hypot(low_half, z * extra_sd)
            high_half = np.hypot(high_half, z * extra_sd)
        with np.errstate(over="ignore", under="ignore"):
            lower = mean * np.exp(-low_half)
            upper = mean * np.exp(high_half)
        return self._capped(lower), self._capped(upper)

    def _uncapped_mean(self, m: np.ndarray) -> np.ndarray:
        mix = self.mix(m)
        g = self._plain_weight()
        if g == 0:
            return mix
        plain = np.maximum(self.plain_curve(m), 1e-300)
        with np.errstate(divide="ignore", over="ignore", under="ignore"):
            return np.exp((1.0 - g) * np.log(np.maximum(mix, 1e-300)) + g * np.log(plain))

    def _plain_weight(self) -> float:
        return self.settings.plain_weight if self.plain is not None else 0.0

    def _guard_floor(self, m: np.ndarray) -> np.ndarray | None:
        if not self.settings.floor_guard or self.floor_slope is None:
            return None
        t = np.maximum(m / self.m_ref, 1.0)  # beyond the data only: inside it the families follow the points
        with np.errstate(over="ignore", under="ignore"):
            return self.last_value * t**self.floor_slope

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


def scale_of(x: np.ndarray, near_var: float, coefs: np.ndarray) -> np.ndarray:
    """``sqrt(near_var + exp(θ·x)²)``, the second term only where ``x`` is beyond the data (``log h`` finite)."""
    beyond = x[:, 1] > -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        far = np.where(beyond, np.exp(np.clip(np.where(beyond[:, None], x, 0.0) @ coefs, -700.0, 700.0)), 0.0)
    return np.sqrt(near_var + far**2)


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


def fit_plain(m: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The plain least-squares law ``α·m^β + γ`` in log space: ``(params, log_ref)`` for ``_power_law.curve``.

    ``None`` with fewer than 3 points or a fit that is not finite.
    """
    if len(m) < 3:
        return None
    log_ref = float(np.mean(np.log(m)))
    params, _ = _power_law.fit_point("saturating", np.log(m) - log_ref, np.log(y))
    if not np.all(np.isfinite(params)):
        return None
    return params, log_ref


def fit_ensemble(
    m: np.ndarray,
    y: np.ndarray,
    *,
    cap: float | None = None,
    settings: Settings = CALIBRATED,
    plain: tuple[np.ndarray, float] | None = None,
) -> Ensemble | None:
    """Fit the ensemble to sizes ``m`` (sorted, distinct) and values ``y``; ``None`` if every family failed.

    ``plain`` is the plain law (:func:`fit_plain`) the prediction leans on
    with the calibrated weight ``g``; by default it is fitted to ``m``, ``y``.

    Example::

        ens = fit_ensemble(m, y, cap=0.9)
        dict(zip(ens.names, ens.weights))
    """
    fitted = fit_members(m, y, settings)
    if not fitted:
        return None
    names = tuple(fitted)
    prior = np.array([settings.weights[n] for n in names])
    # a family that too few points cannot fit leaves its weight to the plain law, not to the families that remain:
    # with 3 points only pow2 and ilog2 fit, and renormalising gave the flattest of them nearly all the say
    total = sum(settings.weights.values())
    plain_share = max(0.0, 1.0 - float(prior.sum()) / total) if total > 0 else 0.0
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
    plain = fit_plain(m, y) if plain is None else plain
    slope = min(_power_law.ols_slope(np.log(m), np.log(y)), 0.0)
    ens = Ensemble(
        names, tuple(fitted[n] for n in names), weights, float(m[-1]), float(m[0]), len(m), 0.0, rate, measured, cap,
        settings, plain=None if plain is None else plain[0], plain_log_ref=0.0 if plain is None else plain[1],
        floor_slope=slope, last_value=float(y[-1]), plain_share=plain_share if plain is not None else 0.0,
    )
    resid = np.log(y) - np.log(np.maximum(ens._uncapped_mean(m), 1e-300))
    point_w = (m / m[-1]) ** settings.size_weight_power
    noise = math.sqrt(float(np.sum(point_w * resid**2) / np.sum(point_w)))
    return dataclasses.replace(ens, noise_std=noise)


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
