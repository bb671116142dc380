"""What a fit returns: :class:`ScalingLawFit`, its :class:`Prediction` and :class:`DataNeeded` answers.

A fit carries two things.  The *law* ``ε(m) = α·m^β + γ`` (Hestness et al.)
with bootstrap intervals: its exponent is what a user reads.  And the
*predictor* behind :meth:`ScalingLawFit.predict` and
:meth:`ScalingLawFit.data_needed`: the calibrated ensemble of curve families
for ``form="auto"``, the law itself for an explicit form or a curve that
rises, or (said in ``fallback``) the last observed value when every family
failed.  ``method`` and ``band_method`` say in one line which it was.

Example::

    fit = fit_scaling_law([100, 200, 400, 800, 1600, 3200], [0.52, 0.38, 0.30, 0.245, 0.21, 0.19])
    print(fit)                     # the law, with β's interval
    print(fit.method)              # weighted ensemble of ...
    p = fit.predict([25600])
    p.mean, p.lower, p.upper
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from scaling_optuna._json import json_number
from scaling_optuna.errors import UserError
from scaling_optuna.fit import _noise
from scaling_optuna.fit import _power_law
from scaling_optuna.fit._ensemble import SEARCH_REACH
from scaling_optuna.fit._ensemble import Ensemble
from scaling_optuna.fit._validate import as_positive_array

__all__ = ["DataNeeded", "Prediction", "ScalingLawFit"]


@dataclass(frozen=True)
class Prediction:
    """Predicted values at some sizes with a pointwise band.

    ``mean`` is the prediction; ``lower``/``upper`` the band at ``confidence``
    (NaN when the fit has none: ``n_bootstrap=0`` or the last-point fallback).

    Example::

        p = fit.predict([10_000, 100_000])
        print(p.mean, p.lower, p.upper)
    """

    sizes: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    include_noise: bool = False
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (inf as ``"inf"``, NaN as ``None``).

        Example::

            json.dumps(fit.predict([1e5]).to_dict())
        """
        return {
            "sizes": [json_number(float(v)) for v in self.sizes],
            "mean": [json_number(float(v)) for v in self.mean],
            "lower": [json_number(float(v)) for v in self.lower],
            "upper": [json_number(float(v)) for v in self.upper],
            "include_noise": bool(self.include_noise),
            "confidence": float(self.confidence),
        }


@dataclass(frozen=True)
class DataNeeded:
    """Training-set size at which the predicted curve reaches a target value.

    ``size`` is the point estimate (``inf`` when unreachable), ``lower``/
    ``upper`` the interval (``upper`` may be ``inf``: the band's pessimistic
    edge may never reach the target).

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (inf as ``"inf"``, NaN as ``None``).

        Example::

            json.dumps(fit.data_needed(0.05).to_dict())
        """
        return {
            "target": json_number(float(self.target)),
            "size": json_number(float(self.size)),
            "lower": json_number(float(self.lower)),
            "upper": json_number(float(self.upper)),
            "reachable": bool(self.reachable),
            "message": self.message,
            "fraction_unreachable": float(self.fraction_unreachable),
        }


@dataclass(frozen=True)
class ScalingLawFit:
    """A fitted learning curve: the law ``alpha·m^beta + gamma`` and the predictor behind ``predict``.

    ``gamma`` is 0.0 for the ``"power"`` form.  ``intervals`` maps
    ``"alpha"``, ``"beta"``, ``"gamma"`` to ``(lower, upper)`` at
    ``confidence`` (empty without bootstrap).  ``residual_std`` is the law's
    log-space residual standard deviation (``sqrt(SSE/(n − p))``).
    ``form_scores`` holds what ``form="auto"`` decided the law's form on.
    ``family_weights`` says which curve families carried the predictions
    (weights summing to 1), ``method`` and ``band_method`` say in a line how the
    prediction and its band were made, and ``fallback`` is non-empty (the
    reason) when every family failed and the last observed value stands in.

    Example::

        fit = fit_scaling_law([100, 200, 400, 800, 1600], [0.5, 0.36, 0.27, 0.2, 0.15])
        fit.beta, fit.intervals["beta"], str(fit), fit.family_weights
        fit.predict([16000]).upper
    """

    form: str
    alpha: float
    beta: float
    gamma: float
    intervals: dict[str, tuple[float, float]]
    sizes_used: tuple[float, ...]
    values_used: tuple[float, ...]
    sizes_excluded: tuple[float, ...]
    values_excluded: tuple[float, ...]
    excluded_reason: str
    n_bootstrap: int
    residual_std: float
    form_scores: dict[str, float]
    confidence: float = 0.95
    interval_method: str = "residual-bootstrap"
    family_weights: dict[str, float] = field(default_factory=dict)
    method: str = ""
    band_method: str = ""
    fallback: str = ""
    # Private state: the law in centred coordinates (c, beta, gamma) with
    # f(m) = exp(c + beta·(log m − log_ref)) + gamma, its bootstrap draws and
    # per-draw log-noise; the ensemble when it predicts; whether it has a band.
    _log_ref: float = field(default=0.0, repr=False, compare=False)
    _c: float = field(default=0.0, repr=False, compare=False)
    _draws: np.ndarray = field(default_factory=lambda: np.empty((0, 3)), repr=False, compare=False)
    _noise: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    _ensemble: Ensemble | None = field(default=None, repr=False, compare=False)
    _ensemble_band: bool = field(default=False, repr=False, compare=False)
    _cap: float | None = field(default=None, repr=False, compare=False)

    # -- derived ------------------------------------------------------------

    @property
    def bootstrap_params(self) -> np.ndarray:
        """The law's bootstrap draws as an array of shape (n_bootstrap, 3): alpha, beta, gamma.

        Example::

            alphas, betas, gammas = fit.bootstrap_params.T
        """
        d = self._draws
        if d.shape[0] == 0:
            return np.empty((0, 3))
        with np.errstate(over="ignore", under="ignore"):
            alpha = np.exp(np.clip(d[:, 0] - d[:, 1] * self._log_ref, -_power_law.EXP_CLIP, _power_law.EXP_CLIP))
        return np.column_stack([alpha, d[:, 1], d[:, 2]])

    @property
    def increasing(self) -> bool:
        """True for an increasing law (beta > 0, e.g. parameter count vs data)."""
        return self.beta > 0

    # -- queries ------------------------------------------------------------

    def predict(self, sizes: Any, *, include_noise: bool = False, test_size: int | None = None) -> Prediction:
        """Predict the metric at ``sizes`` with a pointwise band.

        ``include_noise=False`` (default) gives the band of the *curve*: where
        the mean over many runs lies.  ``True`` gives the band for one new
        *measurement*: the curve band widened by the noise of a single run,
        estimated from the scatter of the fitted points (:mod:`._noise`), and,
        with ``test_size`` (the metric is an error rate measured on that many
        test examples), by the binomial noise of the test set at the
        predicted error.

        Example::

            p = fit.predict([2 * max(fit.sizes_used), 10 * max(fit.sizes_used)])
            p.mean, p.lower, p.upper
            fit.predict([4000], include_noise=True, test_size=359).lower   # a measured test error
        """
        m = as_positive_array(sizes, "sizes")
        n_test = _noise.check_test_size(test_size)
        if n_test is not None and not include_noise:
            raise UserError("test_size sets the noise of one measurement: pass include_noise=True with it")
        nan = np.full(len(m), np.nan)
        if self._ensemble is not None:
            mean = self._ensemble.mean(m)
            if not self._ensemble_band:
                return Prediction(m, mean, nan, nan.copy(), include_noise, self.confidence)
            extra = None
            if include_noise:
                extra = np.sqrt(self._measurement_var(mean, self._ensemble.noise_std**2, n_test))
            lower, upper = self._ensemble.band(m, self.confidence, extra)
            return Prediction(m, mean, lower, upper, include_noise, self.confidence)
        if self.fallback:
            return Prediction(m, np.full(len(m), self.values_used[-1]), nan, nan.copy(), include_noise, self.confidence)
        lq = np.log(m) - self._log_ref
        mean = self._capped(_power_law.curve(np.array([[self._c, self.beta, self.gamma]]), lq)[0])
        if self._draws.shape[0] == 0:
            return Prediction(m, mean, nan, nan.copy(), include_noise, self.confidence)
        curves = _power_law.curve(self._draws, lq)
        if include_noise:
            with np.errstate(over="ignore"):
                curves = curves * np.exp(self._noise)[:, None]
        q = (1.0 - self.confidence) / 2.0
        lower, upper = _power_law.quantiles(curves, q)
        if include_noise:
            # the draws carry the law's residual noise already; the rest of one measurement's noise is added
            rest = np.maximum(self._measurement_var(mean, self.residual_std**2, n_test) - self.residual_std**2, 0.0)
            lower, upper = _noise.widen(mean, lower, upper, np.sqrt(rest), _noise.normal_quantile(self.confidence))
        return Prediction(m, mean, self._capped(lower), self._capped(upper), include_noise, self.confidence)

    def band_reasons(self, size: float) -> str:
        """Why the curve band at ``size`` is as wide as it is, in words ("" when the fit has no calibrated band).

        The calibrated band's width follows the curve: how far ``size`` lies
        beyond the data, how well the curve predicted its own last points, how
        much its families and the plain power law disagree, how much its points
        scatter and how many there are.  This names the distance and the
        feature that widens the band most, and the one that narrows it most,
        against a typical calibration curve.

        Example::

            fit.band_reasons(10 * max(fit.sizes_used))
            # "10× beyond the data; wider than typical for its points' scatter around the fit (4.1%)"
        """
        if self._ensemble is None or not self._ensemble_band:
            return ""
        return self._ensemble.band_reasons(float(size))

    def _measurement_var(self, mean: np.ndarray, residual_var: float, test_size: int | None) -> np.ndarray:
        """Log variance of one measurement around the curve at the predicted ``mean`` (:mod:`._noise`)."""
        run = _noise.run_log_var(np.array(self.values_used), residual_var, test_size)
        return run + _noise.binomial_log_var(mean, test_size)

    def _capped(self, values: np.ndarray) -> np.ndarray:
        """No prediction above the best-guess error (``plateau``) when it was given."""
        return np.minimum(values, self._cap) if self._cap is not None else values

    def data_needed(self, target: float) -> DataNeeded:
        """Training-set size at which the predicted curve reaches ``target``.

        For a decreasing curve the target is reachable only if it lies above
        the level the curve flattens at; for an increasing law any positive
        target is reachable.

        Example::

            need = fit.data_needed(0.05)
            need.size, need.lower, need.upper, need.reachable, need.message
        """
        t = _validate_target(target)
        if self._ensemble is not None:
            return self._data_needed_ensemble(t)
        if self.fallback:
            return self._data_needed_fallback(t)
        return self._data_needed_law(t)

    def _data_needed_ensemble(self, t: float) -> DataNeeded:
        ens = self._ensemble
        assert ens is not None
        point = ens.size_for(t)
        lo = hi = math.nan
        if self._ensemble_band:
            lo = ens.size_for(t, self.confidence, "lower")
            hi = ens.size_for(t, self.confidence, "upper")
        if not math.isfinite(point):
            floor = ens.floor()
            if t <= floor * (1.0 + 1e-9):
                msg = (
                    f"target {t:.4g} lies below the error the predicted curve levels off at ({floor:.3g}; "
                    f"the law's irreducible error γ={self.gamma:.3g}): no amount of data reaches it"
                )
            else:
                msg = f"target {t:.4g} is not reached within {_search_reach_text()} the largest size fitted"
            return DataNeeded(t, math.inf, lo, hi, False, msg, 0.0)
        return DataNeeded(t, point, lo, hi, True, self._reached_message(t, point, lo, hi, 0.0), 0.0)

    def _data_needed_fallback(self, t: float) -> DataNeeded:
        sizes, values = np.array(self.sizes_used), np.array(self.values_used)
        reached = np.flatnonzero(values <= t)
        if reached.size:
            size = float(sizes[reached[0]])
            msg = f"target {t:.4g} is reached at the observed size {size:.3g} (no prediction: {self.fallback})"
            return DataNeeded(t, size, math.nan, math.nan, True, msg, 0.0)
        msg = f"target {t:.4g} cannot be answered: {self.fallback}"
        return DataNeeded(t, math.inf, math.nan, math.nan, False, msg, 1.0)

    def _data_needed_law(self, t: float) -> DataNeeded:
        point = _power_law.size_for_target(np.array([[self._c, self.beta, self.gamma]]), t, self._log_ref)[0]
        reachable = bool(np.isfinite(point))
        conf = f"{self.confidence * 100:g}%"
        if self._draws.shape[0]:
            draws = _power_law.size_for_target(self._draws, t, self._log_ref)
            frac_unreach = float(np.mean(~np.isfinite(draws)))
            q = (1.0 - self.confidence) / 2.0
            lo, hi = (float(v[0]) for v in _power_law.quantiles(draws[:, None], q))
        else:
            frac_unreach, lo, hi = (0.0 if reachable else 1.0), math.nan, math.nan
        if not reachable:
            if self.beta < 0 and t <= self.gamma:
                g_iv = self.intervals.get("gamma")
                iv = f" ({conf} interval {g_iv[0]:.3g}–{g_iv[1]:.3g})" if g_iv else ""
                msg = (
                    f"target {t:.4g} lies below the irreducible error γ={self.gamma:.3g}{iv}: "
                    "no amount of data reaches it"
                )
            else:
                msg = f"target {t:.4g} is never reached: the fitted curve is flat (β={self.beta:.3g})"
            return DataNeeded(t, math.inf, lo, hi, False, msg, frac_unreach)
        return DataNeeded(t, float(point), lo, hi, True, self._reached_message(t, float(point), lo, hi, frac_unreach), frac_unreach)

    def _reached_message(self, t: float, point: float, lo: float, hi: float, frac_unreach: float) -> str:
        largest = max(self.sizes_used)
        msg = f"target {t:.4g} is reached at about m = {point:.3g}"
        if np.isfinite(lo) or np.isfinite(hi):
            msg += f" ({self.confidence * 100:g}% interval {lo:.3g}–{hi:.3g})"
        if point <= largest:
            msg += f"; that is within the observed sizes (largest {largest:.3g})"
        else:
            msg += f", {point / largest:.3g}× the largest size fitted"
        if frac_unreach > 0:
            msg += f"; in {100 * frac_unreach:.2g}% of bootstrap fits it is never reached"
        return msg

    # -- output -------------------------------------------------------------

    def to_dict(self, *, include_bootstrap: bool = False) -> dict[str, Any]:
        """JSON-serialisable dict of the fit (inf as ``"inf"``, NaN as ``None``).

        ``include_bootstrap=True`` adds the (n_bootstrap × 3) draws of
        alpha, beta, gamma as a list of lists.

        Example::

            json.dumps(fit.to_dict())
        """
        d: dict[str, Any] = {
            "form": self.form,
            "alpha": json_number(self.alpha),
            "beta": json_number(self.beta),
            "gamma": json_number(self.gamma),
            "intervals": {k: [json_number(a), json_number(b)] for k, (a, b) in self.intervals.items()},
            "confidence": float(self.confidence),
            "sizes_used": [json_number(v) for v in self.sizes_used],
            "values_used": [json_number(v) for v in self.values_used],
            "sizes_excluded": [json_number(v) for v in self.sizes_excluded],
            "values_excluded": [json_number(v) for v in self.values_excluded],
            "excluded_reason": self.excluded_reason,
            "n_bootstrap": int(self.n_bootstrap),
            "interval_method": self.interval_method,
            "residual_std": json_number(self.residual_std),
            "form_scores": {k: json_number(v) for k, v in self.form_scores.items()},
            "family_weights": {k: json_number(v) for k, v in self.family_weights.items()},
            "method": self.method,
            "band_method": self.band_method,
            "fallback": self.fallback,
            "summary": str(self),
        }
        if include_bootstrap:
            d["bootstrap_params"] = [[json_number(x) for x in row] for row in self.bootstrap_params]
        return d

    def __str__(self) -> str:
        return self.law()

    def law(self, symbol: str | None = None) -> str:
        """The fitted law in words, e.g. ``L(m) = 3.1·m^-0.42 + 0.05  (β 95% CI …)``.

        ``symbol`` names the metric (default: ε for a falling curve, y for a rising one).
        """
        sym = symbol or ("y" if self.beta > 0 else "ε")
        s = f"{sym}(m) = {self.alpha:.3g}·m^{self.beta:.3g}"
        if self.form == "saturating":
            s += f" + {self.gamma:.3g}"
        iv = self.intervals.get("beta")
        if iv is not None:
            s += f"  (β {self.confidence * 100:g}% CI {iv[0]:.3g}…{iv[1]:.3g})"
        if self.sizes_excluded:
            s += f"  [{len(self.sizes_excluded)} plateau size(s) excluded]"
        return s


def _validate_target(target: Any) -> float:
    try:
        t = float(target)
    except (TypeError, ValueError):
        raise UserError(f"target must be a finite positive number, got {target!r}: pass e.g. 0.05") from None
    if not math.isfinite(t) or t <= 0:
        raise UserError(f"target must be a finite positive number, got {t!r}: pass e.g. 0.05")
    return t


def _search_reach_text() -> str:
    return f"{SEARCH_REACH:.0e}×".replace("e+", "e")
