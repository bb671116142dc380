"""What predicts a fitted curve: the calibrated ensemble, the law itself, or the last observed value.

All three answer the same questions (:class:`Predictor`): the curve's mean at
some sizes, its band, the level it flattens at, and in words how they were
made.  :class:`~._result.ScalingLawFit` asks its predictor and nothing else,
so what it prints as "predicted by" is what predicts.

Example::

    import numpy as np
    from scaling_optuna.fit._predictors import LastPoint

    p = LastPoint(np.array([100.0, 200, 400]), np.array([0.5, 0.4, 0.35]), "every family failed")
    p.mean(np.array([800.0])), p.floor(), p.method
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from scaling_optuna.fit import _noise
from scaling_optuna.fit._band import Band
from scaling_optuna.fit._ensemble import Ensemble
from scaling_optuna.fit._law import PowerLaw

__all__ = ["EnsemblePredictor", "LastPoint", "LawPredictor", "Predictor", "bootstrap_band_text"]


class Predictor(Protocol):
    """What :class:`~._result.ScalingLawFit` predicts with."""

    method: str  # how the mean is made, in one line
    family_weights: dict[str, float]  # which curve families carry it (weights summing to 1)
    fallback: str  # non-empty (the reason) when nothing could be fitted
    rising: bool  # the curve grows with the size (e.g. parameter count against data)
    residual_var: float  # log variance of the fitted points around the mean

    def mean(self, m: np.ndarray) -> np.ndarray: ...

    def edges(
        self, m: np.ndarray, confidence: float, curve_var: np.ndarray, measurement_var: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The band at ``m`` (``None``: none), widened by the log variances of the points' own noise
        (``curve_var``) and, for a band around one new measurement, of that measurement."""

    def floor(self) -> float: ...

    def band_method(self, confidence: float) -> str: ...

    def reasons(self, size: float) -> str: ...


class EnsemblePredictor:
    """The calibrated ensemble of curve families and its band (``band=None``: point estimates only)."""

    fallback = ""
    rising = False

    def __init__(self, ensemble: Ensemble, band: Band | None) -> None:
        self.ensemble, self.band = ensemble, band
        self.method = ensemble.describe()
        order = sorted(zip(ensemble.names, ensemble.weights), key=lambda nw: -nw[1])
        self.family_weights = {n: float(w) for n, w in order}
        self.residual_var = band.noise_std**2 if band is not None else 0.0

    def mean(self, m: np.ndarray) -> np.ndarray:
        return self.ensemble.mean(m)

    def edges(self, m, confidence, curve_var, measurement_var):
        if self.band is None:
            return None
        extra = curve_var if measurement_var is None else curve_var + measurement_var
        return self.band.edges(m, confidence, np.sqrt(extra) if np.any(extra > 0) else None)

    def floor(self) -> float:
        return self.ensemble.floor()

    def band_method(self, confidence: float) -> str:
        return self.band.describe(confidence) if self.band is not None else "none: n_bootstrap=0"

    def reasons(self, size: float) -> str:
        return self.band.reasons(size) if self.band is not None else ""


class LawPredictor:
    """The law ``α·m^β + γ`` predicts, with its bootstrap band (capped at the best-guess error)."""

    fallback = ""

    def __init__(self, law: PowerLaw, why: str, cap: float | None, band_text: str) -> None:
        self.law, self.cap, self._band_text = law, cap, band_text
        formula = "α·m^β + γ" if law.form == "saturating" else "α·m^β"
        self.method = f"the {law.form} law {formula} ({why})"
        self.family_weights = {"pow3" if law.form == "saturating" else "pow2": 1.0}
        self.rising = law.beta > 0
        self.residual_var = law.residual_std**2

    def mean(self, m: np.ndarray) -> np.ndarray:
        return self._capped(self.law.curve(m))

    def edges(self, m, confidence, curve_var, measurement_var):
        edges = self.law.edges(m, confidence, with_noise=measurement_var is not None)
        if edges is None:
            return None
        lower, upper = edges
        # the draws carry the law's residual noise already; the rest of one measurement's noise is added
        extra = curve_var + (np.maximum(measurement_var - self.residual_var, 0.0) if measurement_var is not None else 0.0)
        if np.any(extra > 0):
            lower, upper = _noise.widen(self.mean(m), lower, upper, np.sqrt(extra), _noise.normal_quantile(confidence))
        return self._capped(lower), self._capped(upper)

    def floor(self) -> float:
        return min(self.law.floor(), self.cap) if self.cap is not None else self.law.floor()

    def band_method(self, confidence: float) -> str:
        return self._band_text

    def reasons(self, size: float) -> str:
        return ""

    def _capped(self, values: np.ndarray) -> np.ndarray:
        return np.minimum(values, self.cap) if self.cap is not None else values


class LastPoint:
    """Every family failed: the last observed value stands in, flat, without a band."""

    rising = False
    residual_var = 0.0

    def __init__(self, sizes: np.ndarray, values: np.ndarray, why: str = "") -> None:
        self.sizes, self.values = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
        self.fallback = why or f"every curve family failed to fit the {len(sizes)} points, so the prediction is the last observed value, flat"
        self.method = f"last observed value ({self.fallback})"
        self.family_weights = {"last point": 1.0}

    def mean(self, m: np.ndarray) -> np.ndarray:
        """The value observed at the largest fitted size up to ``m`` (the first one below the data)."""
        at = np.searchsorted(self.sizes, np.atleast_1d(np.asarray(m, dtype=float)), side="right") - 1
        return self.values[np.maximum(at, 0)]

    def edges(self, m, confidence, curve_var, measurement_var):
        return None

    def floor(self) -> float:
        return float(self.values[-1])

    def band_method(self, confidence: float) -> str:
        return "none: no fitted curve to calibrate"

    def reasons(self, size: float) -> str:
        return ""


def bootstrap_band_text(interval_method: str) -> str:
    """How a law's bootstrap band is made, in words."""
    return f"percentile bootstrap of the law ({interval_method}), not calibrated on real curves"
