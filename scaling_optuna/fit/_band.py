"""The calibrated band around an ensemble's prediction: conformalised quantile regression.

Its two sides are modelled apart.  With ``h(m) = log(m / m_max)`` the log
distance beyond the data, the band's log scale below and above the mean is ::

    s(m)² = σ²·min(1, 3/n) + exp(θ · x(m))²      (the second term only for h > 0; θ_low or θ_high)
    x(m) = (1, log h, log(b + 0.01), log(spread/h + 0.01), log(split/h + 0.01), log(σ + 0.001), log n)

``σ`` is the log residual std of the prediction on the fitted points, ``b``
the within-curve backtest error rate (the families refitted without the
sizes above ``m_max / 2`` predict them; log error per unit of log distance;
a calibrated default for a curve too short for it), ``spread`` the weighted
std of the families' log predictions and ``split`` the log distance between
their mean and the plain law, both at ``10·m_max`` (so ``h = log 10`` there:
curve-level features, and the band widens steadily with ``h``), ``n`` the
number of points.  A band is narrow for a curve that is smooth, long,
predicted its own last points well and whose families agree, wide otherwise.
``θ`` are the 2.5 % and 97.5 % quantile models of the calibration errors
(pinball loss); the band is ``mean·exp(−k·s_low)`` … ``mean·exp(k·s_high)``
with ``k`` the conformal multiplier at the band's confidence, taken so that
it holds over resampled datasets and tasks (``benchmarks/calibrate_fit.py``).
The upper edge may rise beyond the data: real curves now and then do.

Example::

    import numpy as np
    from scaling_optuna.fit._band import fit_band
    from scaling_optuna.fit._ensemble import fit_ensemble

    m = np.array([100.0, 200, 400, 800, 1600, 3200])
    y = np.array([0.52, 0.38, 0.30, 0.245, 0.21, 0.19])
    band = fit_band(fit_ensemble(m, y), m, y)
    band.edges(np.array([32000.0]), 0.95), band.reasons(32000.0)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from scaling_optuna.fit import _calibration
from scaling_optuna.fit import _noise
from scaling_optuna.fit._ensemble import Ensemble
from scaling_optuna.fit._ensemble import fit_members
from scaling_optuna.fit._families import FAMILIES

__all__ = ["CALIBRATED_BAND", "FEATURES", "Band", "BandSettings", "backtest_errors", "fit_band", "scale_of"]

FEATURES = ("1", "log h", "log(b + 0.01)", "log(spread/h + 0.01)", "log(split/h + 0.01)", "log(σ + 0.001)", "log n")
_PROBE_MULTIPLE = 10.0  # spread and split are read at 10× the largest size, per unit of log distance


@dataclass(frozen=True)
class BandSettings:
    """What calibration decides about the band: the two scale models and the conformal multipliers."""

    coefs_low: tuple[float, ...]
    coefs_high: tuple[float, ...]
    feature_medians: tuple[float, ...]  # a typical calibration curve's features, what ``reasons`` compares with
    default_backtest_rate: float
    confidence_levels: tuple[float, ...]
    multipliers: tuple[float, ...]

    def multiplier(self, confidence: float) -> float:
        """``k`` at ``confidence`` (levels beyond the table's 50 %–99.5 % use its ends)."""
        return max(float(np.interp(confidence, self.confidence_levels, self.multipliers)), 0.0)


CALIBRATED_BAND = BandSettings(
    coefs_low=tuple(_calibration.SCALE_COEFS_LOW),
    coefs_high=tuple(_calibration.SCALE_COEFS_HIGH),
    feature_medians=tuple(_calibration.FEATURE_MEDIANS),
    default_backtest_rate=_calibration.DEFAULT_BACKTEST_RATE,
    confidence_levels=tuple(_calibration.CONFIDENCE_LEVELS),
    multipliers=tuple(_calibration.BAND_MULTIPLIERS),
)


@dataclass(frozen=True)
class Band:
    """The calibrated band of one fitted :class:`~._ensemble.Ensemble`."""

    ensemble: Ensemble
    noise_std: float  # σ
    backtest_rate: float  # b
    backtest_measured: bool  # False: the curve was too short, b is the calibrated default
    settings: BandSettings = CALIBRATED_BAND

    def features(self, m: np.ndarray) -> np.ndarray:
        """``x(m)``, shape (len(m), len(FEATURES)); ``log h`` is ``-inf`` inside the data.

        Only ``log h`` depends on ``m``, so the band widens steadily with the
        distance (its lower edge never rises).
        """
        m = np.asarray(m, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.log(m / self.ensemble.m_ref)
            log_h = np.where(h > 0, np.log(np.where(h > 0, h, 1.0)), -np.inf)
        return np.column_stack([np.ones_like(m), log_h] + [np.full_like(m, v) for v in self._curve_features])

    def near_var(self) -> float:
        """The in-range part of the log variance, ``σ²·min(1, 3/n)``."""
        return self.noise_std**2 * min(3.0 / self.ensemble.n_points, 1.0)

    def scale(self, m: np.ndarray, side: str) -> np.ndarray:
        """``s(m)`` below (``side="low"``) or above (``"high"``) the mean."""
        return scale_of(self.features(m), self.near_var(), self._coefs(side))

    def edges(self, m: np.ndarray, confidence: float, extra_sd: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) at sizes ``m`` for a two-sided ``confidence`` (capped at the best-guess error).

        ``extra_sd`` (log units, one per size) widens both sides in quadrature
        by its normal quantile: noise that the calibration curves, means over
        many seeds, did not have (:mod:`._noise`).
        """
        m = np.asarray(m, dtype=float)
        k = self.settings.multiplier(confidence)
        low, high = k * self.scale(m, "low"), k * self.scale(m, "high")
        if extra_sd is not None:
            z = _noise.normal_quantile(confidence)
            low, high = np.hypot(low, z * extra_sd), np.hypot(high, z * extra_sd)
        mean = self.ensemble.uncapped_mean(m)
        cap = math.inf if self.ensemble.cap is None else self.ensemble.cap
        with np.errstate(over="ignore", under="ignore"):
            return np.minimum(mean * np.exp(-low), cap), np.minimum(mean * np.exp(high), cap)

    def reasons(self, size: float) -> str:
        """Why the band at ``size`` is as wide as it is: the distance, then what widens and narrows it most.

        Each feature's share of the log scale, ``θᵢ·(xᵢ − typical xᵢ)`` (typical:
        the calibration curves' median), ranks what makes this band wider or
        narrower than a typical one at the same distance.
        """
        x = self.features(np.array([float(size)]))[0]
        if x[1] == -np.inf:
            return "inside the fitted sizes: the points' own scatter"
        parts = [f"{size / self.ensemble.m_ref:.3g}× beyond the data"]
        share = 0.5 * (self._coefs("low") + self._coefs("high")) * (x - np.asarray(self.settings.feature_medians))
        words = self._reason_words()
        ranked = sorted(words, key=lambda i: share[i])
        if ranked and share[ranked[-1]] > 0.05:
            parts.append(f"wider than typical for {words[ranked[-1]]}")
        if ranked and share[ranked[0]] < -0.05:
            parts.append(f"narrower for {words[ranked[0]]}")
        return "; ".join(parts)

    def describe(self, confidence: float) -> str:
        """How the band is made, in one line."""
        backtest = "this curve's backtest" if self.backtest_measured else "a typical backtest error (too few points for one)"
        return (
            f"conformalised quantile regression: its width follows the distance beyond the data, {backtest}, "
            "the families' disagreement with each other and with the plain law, the points' scatter and their "
            f"number, scaled so that {confidence:.0%} bands held the truth on {confidence:.0%} of "
            f"{_calibration.CALIBRATION_CURVES} extrapolations of {_calibration.CALIBRATION_DATASETS} LCDB datasets "
            f"and {_calibration.CALIBRATION_NEURAL_CURVES} neural curves, datasets and tasks resampled"
        )

    def _coefs(self, side: str) -> np.ndarray:
        return np.asarray(self.settings.coefs_low if side == "low" else self.settings.coefs_high)

    @functools.cached_property
    def _curve_features(self) -> tuple[float, ...]:
        """The features after ``log h``: constants of the fitted curve, computed once (inverting the band asks often)."""
        spread, split = self._disagreement
        per_unit = math.log(_PROBE_MULTIPLE)
        return (
            math.log(self.backtest_rate + 0.01),
            math.log(spread / per_unit + 0.01),
            math.log(split / per_unit + 0.01),
            math.log(self.noise_std + 0.001),
            math.log(self.ensemble.n_points),
        )

    @functools.cached_property
    def _disagreement(self) -> tuple[float, float]:
        """The families' log spread, and the log gap between their mean and the plain law, at ``10·m_max``."""
        ens = self.ensemble
        size = np.array([ens.m_ref * _PROBE_MULTIPLE])
        curves = np.maximum(ens.members(size)[:, 0], 1e-300)
        mix = max(float(ens.weights @ curves), 1e-300)
        spread = math.sqrt(float(ens.weights @ (np.log(curves) - math.log(mix)) ** 2))
        if ens.plain is None:
            return spread, 0.0
        return spread, abs(math.log(mix) - math.log(max(float(ens.plain_curve(size)[0]), 1e-300)))

    def _reason_words(self) -> dict[int, str]:
        """Words for the features that make a reason (``n`` only conditions the others)."""
        spread, split = self._disagreement
        words = {
            3: f"its curve families' disagreement ({math.expm1(spread):.0%} at 10×)",
            5: f"its points' scatter around the fit ({math.expm1(self.noise_std):.1%})",
        }
        if self.backtest_measured:
            words[2] = f"its own backtest's error ({math.expm1(self.backtest_rate * math.log(2.0)):.0%} per doubling)"
        if self.ensemble.plain is not None:
            words[4] = f"the gap between its families and the plain power law ({math.expm1(split):.0%} at 10×)"
        return words


def scale_of(x: np.ndarray, near_var: float | np.ndarray, coefs: np.ndarray) -> np.ndarray:
    """``sqrt(near_var + exp(θ·x)²)``, the second term only where ``x`` is beyond the data (``log h`` finite)."""
    beyond = x[:, 1] > -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        far = np.where(beyond, np.exp(np.clip(np.where(beyond[:, None], x, 0.0) @ coefs, -700.0, 700.0)), 0.0)
    return np.sqrt(near_var + far**2)


def backtest_errors(m: np.ndarray, y: np.ndarray, ensemble: Ensemble) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The within-curve backtest: the ensemble's families refitted on the sizes up to ``m_max / 2`` predict the rest.

    Returns each family's log errors ``log(prediction / value)`` at the held-out
    sizes and their log distance beyond the refitted data (empty when fewer
    than 3 points would remain).
    """
    keep = m <= m[-1] / 2.0 * (1.0 + 1e-9)
    if keep.sum() < 3 or keep.all():
        return {}, np.empty(0)
    fitted = fit_members(m[keep], y[keep], ensemble.settings, ensemble.names)
    m_ref = float(m[keep][-1])
    held_m, held_y = m[~keep], y[~keep]
    errors = {
        n: np.log(np.maximum(FAMILIES[n].evaluate(p, held_m, m_ref=m_ref), 1e-300) / held_y) for n, p in fitted.items()
    }
    return errors, np.log(held_m / m_ref)


def fit_band(ensemble: Ensemble, m: np.ndarray, y: np.ndarray, settings: BandSettings = CALIBRATED_BAND) -> Band:
    """The band of ``ensemble`` fitted to sizes ``m`` and values ``y``: its scatter and its own backtest."""
    resid = np.log(y) - np.log(np.maximum(ensemble.uncapped_mean(m), 1e-300))
    w = ensemble.settings.point_weights(m)
    noise = math.sqrt(float(np.sum(w * resid**2) / np.sum(w)))
    errors, horizons = backtest_errors(m, y, ensemble)
    weights = dict(zip(ensemble.names, ensemble.weights))
    present = [n for n in errors if weights.get(n, 0.0) > 0]
    if not present or horizons.size == 0:
        return Band(ensemble, noise, settings.default_backtest_rate, False, settings)
    share = np.array([weights[n] for n in present])
    ratio = (share / share.sum()) @ np.exp(np.stack([errors[n] for n in present]))
    e = np.log(np.maximum(ratio, 1e-300))
    return Band(ensemble, noise, math.sqrt(float(np.sum(e * e) / np.sum(horizons * horizons))), True, settings)
