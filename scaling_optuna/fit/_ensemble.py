"""The weighted ensemble of curve families that predicts a learning curve's mean.

:func:`fit_ensemble` fits every family of :mod:`._families` that carries
weight (points weighted by ``(m / m_max)^p``: the larger sizes are measured
with less noise and say more about where the curve goes).  A family's weight
is its calibrated prior times ``exp(−log(rms / best rms) / τ)``
(:func:`member_weights`): a family that follows the observed points worse
than the best one loses its say about the unobserved ones.

The prediction is ``mix^(1−g) · plain^g``: ``mix`` the weighted mean of the
families' curves (a family too few points can fit leaves its prior weight to
``plain`` rather than to the families that remain), ``plain`` the plain
least-squares law ``α·m^β + γ`` fitted to every point off the best-guess
plateau, ``g`` calibrated.  With the *floor guard* no family predicts, beyond
the data, below the straight log-log line through the last point at the
fitted points' own slope (an exponential falling to zero did so on neural
curves).  Every constant comes from :mod:`._calibration`, written by
``benchmarks/calibrate_fit.py``, which calls these same functions.

Example::

    import numpy as np
    from scaling_optuna.fit._ensemble import fit_ensemble

    m = np.array([100.0, 200, 400, 800, 1600, 3200])
    y = np.array([0.52, 0.38, 0.30, 0.245, 0.21, 0.19])
    ens = fit_ensemble(m, y)
    ens.mean(np.array([25600.0])), ens.floor(), dict(zip(ens.names, ens.weights))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scaling_optuna.fit import _calibration
from scaling_optuna.fit import _power_law
from scaling_optuna.fit._families import FAMILIES

__all__ = ["CALIBRATED", "Ensemble", "Settings", "fit_ensemble", "fit_members", "fit_plain", "member_weights", "misfit"]

MISFIT_FLOOR = 1e-3  # families that all follow the points to within 0.1 % count as equal


@dataclass(frozen=True)
class Settings:
    """What calibration decides about the point prediction."""

    weights: dict[str, float]
    size_weight_power: float
    robust: float | None
    misfit_tilt: float | None
    plain_weight: float
    floor_guard: bool

    def point_weights(self, m: np.ndarray) -> np.ndarray:
        """``(m / m_max)^p``, the weight of each fitted point."""
        return (m / m[-1]) ** self.size_weight_power


CALIBRATED = Settings(
    weights=dict(_calibration.FAMILY_WEIGHTS),
    size_weight_power=_calibration.SIZE_WEIGHT_POWER,
    robust=_calibration.ROBUST_SCALE,
    misfit_tilt=_calibration.MISFIT_TILT,
    plain_weight=_calibration.PLAIN_WEIGHT,
    floor_guard=_calibration.FLOOR_GUARD,
)


def misfit(rms: np.ndarray) -> np.ndarray:
    """How much worse each family follows the points than the best: ``log(rms / best rms)`` ≥ 0, along the last axis.

    ``rms`` is each family's weighted log residual (``inf`` or NaN: not fitted,
    misfit ``inf``); the best is floored at :data:`MISFIT_FLOOR`.
    """
    rms = np.where(np.isfinite(rms), np.maximum(rms, MISFIT_FLOOR), np.inf)
    best = rms.min(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(rms), np.maximum(np.log(rms / best), 0.0), np.inf)


def member_weights(prior: np.ndarray, misfits: np.ndarray, settings: Settings) -> np.ndarray:
    """Each family's weight in the mix, along the last axis: prior × misfit tilt, normalised (0 where not fitted).

    ``prior`` holds the calibrated weights (0 for a family without a fit),
    ``misfits`` :func:`misfit`'s values.  The calibration script calls this on
    its whole table of tasks at once, the ensemble on one curve.
    """
    w = np.where(np.isfinite(misfits), prior, 0.0)
    if settings.misfit_tilt:
        w = w * np.exp(-np.where(np.isfinite(misfits), misfits, 0.0) / settings.misfit_tilt)
    return w / np.maximum(w.sum(axis=-1, keepdims=True), 1e-300)


@dataclass(frozen=True)
class Ensemble:
    """A fitted ensemble: the families with their weights and the plain law it leans on."""

    names: tuple[str, ...]
    params: tuple[np.ndarray, ...]
    weights: np.ndarray
    m_ref: float  # the largest fitted size
    m_min: float
    n_points: int
    cap: float | None
    settings: Settings
    plain: tuple[np.ndarray, float] | None  # (c, β, γ) and log_ref of the plain law; None: it failed to fit
    floor_slope: float  # the fitted points' log-log slope (≤ 0), for the floor guard
    last_value: float  # the value at the largest fitted size, where the guard's line starts
    plain_share: float  # prior weight of the families too few points could fit, left to the plain law

    def members(self, m: np.ndarray) -> np.ndarray:
        """Each family's curve at ``m``, floored by the guard beyond the data: shape (families, len(m))."""
        m = np.asarray(m, dtype=float)
        curves = np.stack([FAMILIES[n].evaluate(p, m, m_ref=self.m_ref) for n, p in zip(self.names, self.params)])
        if not self.settings.floor_guard:
            return curves
        t = np.maximum(m / self.m_ref, 1.0)  # beyond the data only: inside it the families follow the points
        with np.errstate(over="ignore", under="ignore"):
            return np.maximum(curves, self.last_value * t**self.floor_slope)

    def mix(self, m: np.ndarray) -> np.ndarray:
        """The weighted mean of the families' curves, the plain law standing in for those not fitted."""
        families = self.weights @ self.members(m)
        if self.plain_share == 0 or self.plain is None:
            return families
        return (1.0 - self.plain_share) * families + self.plain_share * self.plain_curve(m)

    def plain_curve(self, m: np.ndarray) -> np.ndarray:
        """The plain least-squares law at ``m`` (only when it fitted)."""
        assert self.plain is not None
        params, log_ref = self.plain
        return _power_law.curve(params[None, :], np.log(np.asarray(m, dtype=float)) - log_ref)[0]

    def mean(self, m: np.ndarray) -> np.ndarray:
        """The prediction ``mix^(1−g)·plain^g``, never above the best-guess ``cap``."""
        mean = self.uncapped_mean(m)
        return np.minimum(mean, self.cap) if self.cap is not None else mean

    def uncapped_mean(self, m: np.ndarray) -> np.ndarray:
        mix = self.mix(m)
        g = self.plain_weight
        if g == 0:
            return mix
        plain = np.maximum(self.plain_curve(m), 1e-300)
        with np.errstate(divide="ignore", over="ignore", under="ignore"):
            return np.exp((1.0 - g) * np.log(np.maximum(mix, 1e-300)) + g * np.log(plain))

    def floor(self) -> float:
        """The value the prediction levels off at as the size grows without bound."""
        level = float(sum(w * FAMILIES[n].asymptote(p) for n, p, w in zip(self.names, self.params, self.weights)))
        plain_floor = max(float(self.plain[0][2]), 0.0) if self.plain is not None else 0.0
        if self.plain is not None and self.plain_share > 0:
            level = (1.0 - self.plain_share) * level + self.plain_share * plain_floor
        if self.plain_weight > 0:
            level = level ** (1.0 - self.plain_weight) * plain_floor**self.plain_weight
        return min(level, self.cap) if self.cap is not None else level

    @property
    def plain_weight(self) -> float:
        return self.settings.plain_weight if self.plain is not None else 0.0

    def describe(self) -> str:
        """How the prediction is made, in one line."""
        weights = sorted(zip(self.names, self.weights), key=lambda nw: -nw[1])
        shown = [f"{n} {w:.2f}" for n, w in weights if w >= 0.005]
        if len(shown) < len(weights):
            shown.append("others under 0.01")
        source = f"calibrated on {_calibration.CALIBRATION_DATASETS} LCDB datasets"
        if self.settings.misfit_tilt:
            source += ", lowered for families that miss the points"
        text = (
            f"weighted ensemble of {', '.join(shown)} (weights {source}; points weighted by "
            f"(m/m_max)^{self.settings.size_weight_power:g})"
        )
        if self.plain_weight > 0:
            text += f", geometric mean with the plain least-squares law at weight {self.plain_weight:g}"
        if self.settings.floor_guard:
            text += "; no family below the log-log line through the last point"
        return text


def fit_members(m: np.ndarray, y: np.ndarray, settings: Settings = CALIBRATED, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Fit every family that carries weight (or those in ``names``) with enough points; failed fits left out.

    Example::

        fit_members(m, y)["pow3"]   # parameters for FAMILIES["pow3"].evaluate(..., m_ref=m[-1])
    """
    names = tuple(n for n, w in settings.weights.items() if w > 0) if names is None else names
    w = settings.point_weights(m)
    out = {}
    for name in names:
        family = FAMILIES[name]
        if len(m) < family.min_points:
            continue
        params, loss = family.fit(m, y, w, robust=settings.robust)
        if math.isfinite(loss) and np.all(np.isfinite(family.evaluate(params, m, m_ref=m[-1]))):
            out[name] = params
    return out


def weighted_rms(m: np.ndarray, y: np.ndarray, name: str, params: np.ndarray, settings: Settings = CALIBRATED) -> float:
    """A fitted family's log residual on the points, with the fit's point weights."""
    w = settings.point_weights(m)
    r = np.log(y) - np.log(np.maximum(FAMILIES[name].evaluate(params, m, m_ref=float(m[-1])), 1e-300))
    return math.sqrt(float(np.sum(w * r * r) / np.sum(w)))


def fit_plain(m: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The plain least-squares law ``α·m^β + γ`` in log space: ``(params, log_ref)``; ``None`` with < 3 points or no finite fit."""
    if len(m) < 3:
        return None
    log_ref = float(np.mean(np.log(m)))
    params, _ = _power_law.fit_point("saturating", np.log(m) - log_ref, np.log(y))
    return (params, log_ref) if np.all(np.isfinite(params)) else None


def fit_ensemble(
    m: np.ndarray,
    y: np.ndarray,
    *,
    cap: float | None = None,
    settings: Settings = CALIBRATED,
    plain: tuple[np.ndarray, float] | None = None,
) -> Ensemble | None:
    """Fit the ensemble to sizes ``m`` (sorted, distinct) and values ``y``; ``None`` if every family failed.

    ``plain`` is the plain law (:func:`fit_plain`) the prediction leans on;
    by default it is fitted to ``m``, ``y``.

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
    # with 3 points only ilog2 fits, and renormalising gave the flattest family all the say
    total = sum(settings.weights.values())
    plain = fit_plain(m, y) if plain is None else plain
    plain_share = max(0.0, 1.0 - float(prior.sum()) / total) if total > 0 and plain is not None else 0.0
    misfits = misfit(np.array([weighted_rms(m, y, n, fitted[n], settings) for n in names]))
    return Ensemble(
        names=names,
        params=tuple(fitted[n] for n in names),
        weights=member_weights(prior, misfits, settings),
        m_ref=float(m[-1]),
        m_min=float(m[0]),
        n_points=len(m),
        cap=cap,
        settings=settings,
        plain=plain,
        floor_slope=min(_power_law.ols_slope(np.log(m), np.log(y)), 0.0),
        last_value=float(y[-1]),
        plain_share=plain_share,
    )
