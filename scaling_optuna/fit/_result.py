"""What a fit returns: :class:`ScalingLawFit`, its :class:`Prediction` and :class:`DataNeeded` answers.

A fit holds two objects.  The *law* ``ε(m) = α·m^β + γ`` (Hestness et al.,
:class:`~._law.PowerLaw`) with bootstrap intervals: its exponent is what a
user reads.  And the *predictor* (:mod:`._predictors`) behind
:meth:`ScalingLawFit.predict` and :meth:`ScalingLawFit.data_needed`: the
calibrated ensemble for ``form="auto"``, the law itself for an explicit form
or a rising curve, or the last observed value when every family failed.
``str(fit)`` shows both when they differ, and every answer comes from the
predictor alone: a level the predictor flattens at above the target means
"not reachable with this model", never a finite size.

Example::

    from scaling_optuna.fit import fit_scaling_law

    fit = fit_scaling_law([100, 200, 400, 800, 1600, 3200], [0.52, 0.38, 0.30, 0.245, 0.21, 0.19])
    print(fit)                     # the law, and what predicts
    p = fit.predict([25600])
    p.mean, p.lower, p.upper
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import fields
from typing import Any, Callable

import numpy as np

from scaling_optuna import _checks
from scaling_optuna._json import jsonable
from scaling_optuna.errors import UserError
from scaling_optuna.fit import _noise
from scaling_optuna.fit._law import PowerLaw
from scaling_optuna.fit._predictors import LawPredictor
from scaling_optuna.fit._predictors import Predictor
from scaling_optuna._checks import as_positive_array

__all__ = ["DataNeeded", "Prediction", "ScalingLawFit"]

SEARCH_REACH = 1e12  # data_needed looks this far beyond the largest size, then says "never"
_GRID_PER_DECADE = 24
# The curves whose reach gives DataNeeded.fraction_unreachable: quantile levels of the band.
_REACH_LEVELS = (0.0025, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.9975)


@dataclass(frozen=True, eq=False)
class Prediction:
    """Predicted values at some sizes with a pointwise band.

    ``mean`` is the prediction; ``lower``/``upper`` the band at ``confidence``
    (NaN when the fit has none: ``n_bootstrap=0`` or the last-point fallback).

    Example::

        p = fit.predict([10_000, 100_000])
        print(p.mean, p.lower, p.upper)
        json.dumps(p.to_dict())          # inf as "inf", NaN as None
    """

    sizes: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    include_noise: bool = False
    confidence: float = 0.95

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prediction):
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name), equal_nan=True) for f in fields(self))

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (inf as ``"inf"``, NaN as ``None``)."""
        return jsonable(self)


@dataclass(frozen=True)
class DataNeeded:
    """Training-set size at which the predicted curve reaches a target value.

    ``size`` is the point estimate: ``inf`` exactly when ``reachable`` is
    false, the smallest fitted size when ``already`` (the target is met
    there; nothing is said about smaller sets).  ``lower``/``upper`` is the
    interval (``upper`` is ``inf`` when the band's pessimistic edge never
    reaches the target; NaN without a band, and ``lower`` NaN when
    ``already``).  ``fraction_unreachable`` is the share of the band's curves
    that never reach it: at most one half when ``reachable``, at least one
    half when not.

    Example::

        need = fit.data_needed(0.05)
        if need.reachable:
            print(f"about {need.size:.0f} samples ({need.lower:.0f}-{need.upper:.0f})")
        print(need.message)
    """

    target: float
    size: float
    lower: float
    upper: float
    reachable: bool
    message: str
    fraction_unreachable: float = 0.0
    already: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (inf as ``"inf"``, NaN as ``None``)."""
        return jsonable(self)


@dataclass(frozen=True, eq=False)
class ScalingLawFit:
    """A fitted learning curve: the law ``alpha·m^beta + gamma`` and the predictor behind every answer.

    ``law`` is the :class:`~._law.PowerLaw` (``alpha``, ``beta``, ``gamma``,
    ``intervals``, ``form`` and ``residual_std`` are its); ``predictor`` says
    which curve predicts (``method``, ``band_method``, ``family_weights``,
    ``fallback`` are its).  ``point_noise`` is the noise of the fitted points
    when the caller gave it (``value_sd``): it widens every band.

    Example::

        from scaling_optuna.fit import fit_scaling_law

        fit = fit_scaling_law([100, 200, 400, 800, 1600], [0.5, 0.36, 0.27, 0.2, 0.15])
        fit.beta, fit.intervals["beta"], str(fit), fit.family_weights
        fit.predict([16000]).upper, fit.floor()
    """

    law: PowerLaw
    predictor: Predictor
    sizes_used: tuple[float, ...]
    values_used: tuple[float, ...]
    sizes_excluded: tuple[float, ...] = ()
    values_excluded: tuple[float, ...] = ()
    excluded_reason: str = ""
    n_bootstrap: int = 0
    form_scores: dict[str, float] | None = None
    point_noise: _noise.PointNoise | None = None

    # -- the law ------------------------------------------------------------

    form = property(lambda self: self.law.form)
    alpha = property(lambda self: self.law.alpha)
    beta = property(lambda self: self.law.beta)
    gamma = property(lambda self: self.law.gamma)
    intervals = property(lambda self: self.law.intervals)
    residual_std = property(lambda self: self.law.residual_std)
    confidence = property(lambda self: self.law.confidence)
    interval_method = property(lambda self: self.law.interval_method)
    bootstrap_params = property(lambda self: self.law.bootstrap_params)

    @property
    def increasing(self) -> bool:
        """True for an increasing law (beta > 0, e.g. parameter count vs data)."""
        return self.beta > 0

    # -- the predictor ------------------------------------------------------

    method = property(lambda self: self.predictor.method)
    family_weights = property(lambda self: self.predictor.family_weights)
    fallback = property(lambda self: self.predictor.fallback)

    @property
    def law_predicts(self) -> bool:
        """Whether the law itself makes the predictions (an explicit form, a rising curve, too few points)."""
        return isinstance(self.predictor, LawPredictor)

    @property
    def band_method(self) -> str:
        text = self.predictor.band_method(self.confidence)
        if self.point_noise is not None and not text.startswith("none"):
            text += "; widened by the measured noise of the fitted points"
        return text

    def floor(self) -> float:
        """The level the predicted curve flattens at as the size grows without bound."""
        return self.predictor.floor()

    def predict(self, sizes: Any, *, include_noise: bool = False, test_size: int | None = None) -> Prediction:
        """Predict the metric at ``sizes`` with a pointwise band.

        ``include_noise=False`` (default) gives the band of the *curve*: where
        the mean over many runs lies (wider when the points' own noise was
        given).  ``True`` gives the band for one new *measurement*: widened by
        the noise of a single run (the given point noise, or the scatter of
        the fitted points, :mod:`._noise`) and, with ``test_size`` (the metric
        is an error rate measured on that many test examples), by the
        binomial noise of the test set at the predicted error.

        Example::

            p = fit.predict([2 * max(fit.sizes_used), 10 * max(fit.sizes_used)])
            fit.predict([4000], include_noise=True, test_size=359).lower   # a measured test error
        """
        m = as_positive_array(sizes, "sizes")
        n_test = _noise.check_test_size(test_size)
        if n_test is not None and not include_noise:
            raise UserError("test_size sets the noise of one measurement: pass include_noise=True with it")
        mean = self.predictor.mean(m)
        measurement = self._measurement_var(mean, n_test) if include_noise else None
        edges = self.predictor.edges(m, self.confidence, self._curve_var(m), measurement)
        lower, upper = edges if edges is not None else (np.full(len(m), np.nan), np.full(len(m), np.nan))
        return Prediction(m, mean, lower, upper, include_noise, self.confidence)

    def band_reasons(self, size: float) -> str:
        """Why the curve band at ``size`` is as wide as it is, in words ("" when the fit has no calibrated band).

        Example::

            fit.band_reasons(10 * max(fit.sizes_used))
            # "10× beyond the data; wider than typical for its points' scatter around the fit (4.1%)"
        """
        return self.predictor.reasons(float(size))

    def data_needed(self, target: float) -> DataNeeded:
        """Training-set size at which the predicted curve reaches ``target`` (see :class:`DataNeeded`).

        A falling curve reaches only targets above the level it flattens at; a
        rising one (``increasing``) any target above its start.

        Example::

            need = fit.data_needed(0.05)
            need.size, need.lower, need.upper, need.reachable, need.message
        """
        t = _checks.positive_number(target, "target")
        rising = self.predictor.rising
        point = self._crossing(self.predictor.mean, t)
        low_edge, high_edge = self._edge_functions()
        lower = self._crossing(high_edge if rising else low_edge, t) if low_edge else math.nan
        upper = self._crossing(low_edge if rising else high_edge, t) if low_edge else math.nan
        unreachable = self._fraction_unreachable(t, math.isfinite(point))
        first = min(self.sizes_used)
        if not math.isfinite(point):
            return DataNeeded(t, math.inf, lower, upper, False, self._never_message(t), unreachable)
        if point <= first * (1.0 + 1e-9):
            message = (
                f"target {t:.4g} is already met at the smallest size fitted ({first:.3g}, predicted "
                f"{float(self.predictor.mean(np.array([first]))[0]):.3g}); the fit says nothing of smaller sets"
            )
            return DataNeeded(t, first, math.nan, upper, True, message, unreachable, already=True)
        return DataNeeded(t, point, lower, upper, True, self._reached_message(t, point, lower, upper, unreachable), unreachable)

    # -- helpers ------------------------------------------------------------

    def _curve_var(self, m: np.ndarray) -> np.ndarray:
        return self.point_noise.curve_var(m) if self.point_noise is not None else np.zeros(len(m))

    def _measurement_var(self, mean: np.ndarray, test_size: int | None) -> np.ndarray:
        """Log variance of one measurement around the curve at the predicted ``mean`` (:mod:`._noise`)."""
        values = np.array(self.values_used)
        if self.point_noise is not None:
            run = self.point_noise.run_var(values, test_size)
        else:
            run = _noise.run_log_var(values, self.predictor.residual_var, test_size)
        return run + _noise.binomial_log_var(mean, test_size)

    def _edge_functions(self, confidence: float | None = None) -> tuple[Callable | None, Callable | None]:
        """The band's lower and upper edge as functions of the size (``None, None`` without a band)."""
        level = self.confidence if confidence is None else confidence
        if self.predictor.edges(np.array(self.sizes_used[-1:]), level, np.zeros(1), None) is None:
            return None, None

        def edge(side: int) -> Callable:
            return lambda m: self.predictor.edges(m, level, self._curve_var(m), None)[side]

        return edge(0), edge(1)

    def _crossing(self, curve: Callable[[np.ndarray], np.ndarray], target: float) -> float:
        """The smallest size from the first fitted one on where ``curve`` reaches ``target`` (inf: never).

        A log grid to ``SEARCH_REACH`` × the largest size, refined by bisection.
        """
        reached = (lambda v: v >= target) if self.predictor.rising else (lambda v: v <= target)
        lo_m, hi_m = min(self.sizes_used), max(self.sizes_used) * SEARCH_REACH
        grid = np.geomspace(lo_m, hi_m, int(math.ceil(math.log10(hi_m / lo_m) * _GRID_PER_DECADE)) + 2)
        hits = np.flatnonzero(reached(curve(grid)))
        if hits.size == 0:
            return math.inf
        k = int(hits[0])
        if k == 0:
            return float(grid[0])
        a, b = math.log(grid[k - 1]), math.log(grid[k])
        for _ in range(60):
            mid = 0.5 * (a + b)
            a, b = (a, mid) if reached(curve(np.array([math.exp(mid)])))[0] else (mid, b)
        return math.exp(b)

    def _fraction_unreachable(self, target: float, point_reaches: bool) -> float:
        """The share of the band's quantile curves that never reach ``target`` (on :data:`_REACH_LEVELS`)."""
        if self._edge_functions()[0] is None:
            return 0.0 if point_reaches else 1.0
        reached = [q for q in _REACH_LEVELS if (point_reaches if q == 0.5 else math.isfinite(self._crossing(self._quantile_curve(q), target)))]
        if self.predictor.rising:  # the higher curves rise to the target first
            return round(min(reached), 4) if reached else 1.0
        return round(1.0 - max(reached), 4) if reached else 1.0

    def _quantile_curve(self, q: float) -> Callable:
        """The band's ``q`` quantile curve: its lower edge at confidence 1 − 2q below the median, its upper above."""
        low, high = self._edge_functions(abs(2.0 * q - 1.0))
        return low if q < 0.5 else high

    def _never_message(self, t: float) -> str:
        if self.fallback:
            return f"target {t:.4g} cannot be answered beyond the observed values: {self.fallback}"
        floor = self.floor()
        if t <= floor * (1.0 + 1e-9) and not self.predictor.rising:
            if isinstance(self.predictor, LawPredictor):
                iv = self.intervals.get("gamma")
                shown = f" ({self.confidence:.0%} interval {iv[0]:.3g}–{iv[1]:.3g})" if iv else ""
                return f"target {t:.4g} lies below the irreducible error γ={floor:.3g}{shown}: no amount of data reaches it"
            message = f"target {t:.4g} lies below the level the predicted curve flattens at ({floor:.3g}): no amount of data reaches it with this model"
            return message if abs(self.gamma - floor) <= 1e-3 * floor else message + f" (the law's own floor γ is {self.gamma:.3g})"
        return f"target {t:.4g} is not reached within {SEARCH_REACH:.0e}× the largest size fitted".replace("e+", "e")

    def _reached_message(self, t: float, point: float, lo: float, hi: float, unreachable: float) -> str:
        largest = max(self.sizes_used)
        msg = f"target {t:.4g} is reached at about m = {point:.3g}"
        if math.isfinite(lo) or math.isfinite(hi):
            msg += f" ({self.confidence * 100:g}% interval {lo:.3g}–{hi:.3g})"
        msg += f"; that is within the observed sizes (largest {largest:.3g})" if point <= largest else f", {point / largest:.3g}× the largest size fitted"
        if unreachable > 0:
            msg += f"; about {unreachable:.0%} of the band's curves never reach it"
        return msg

    # -- output -------------------------------------------------------------

    def to_dict(self, *, include_bootstrap: bool = False) -> dict[str, Any]:
        """JSON-serialisable dict of the fit: the law's numbers, the predictor's, and ``summary`` (``str(fit)``).

        ``include_bootstrap=True`` adds the law's (n_bootstrap × 3) draws of alpha, beta, gamma.

        Example::

            json.dumps(fit.to_dict())
        """
        d = {
            "form": self.form, "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
            "intervals": {k: list(v) for k, v in self.intervals.items()}, "confidence": self.confidence,
            "sizes_used": self.sizes_used, "values_used": self.values_used,
            "sizes_excluded": self.sizes_excluded, "values_excluded": self.values_excluded,
            "excluded_reason": self.excluded_reason, "n_bootstrap": self.n_bootstrap,
            "interval_method": self.interval_method, "residual_std": self.residual_std,
            "form_scores": self.form_scores or {}, "family_weights": self.family_weights,
            "method": self.method, "band_method": self.band_method, "fallback": self.fallback,
            "floor": self.floor(), "summary": str(self),
        }
        if include_bootstrap:
            d["bootstrap_params"] = self.bootstrap_params
        return jsonable(d)

    def __str__(self) -> str:
        return self.text()

    def text(self, symbol: str | None = None) -> str:
        """The law in words, then — when something else predicts — what predicts and where it flattens.

        ``symbol`` names the metric (default: ε for a falling curve, y for a rising one).
        """
        s = self.law.text(symbol)
        if self.sizes_excluded:
            s += f"  [{len(self.sizes_excluded)} plateau size(s) excluded]"
        if self.law_predicts:
            return s
        return s + f"\npredicted by {self.method.split(' (')[0]}, flattening at {self.floor():.3g}"
