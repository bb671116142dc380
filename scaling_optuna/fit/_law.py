"""The law ε(m) = α·m^β + γ (Hestness et al.) as an object: its parameters, bootstrap draws and intervals.

:func:`fit_law` fits it the way :mod:`scaling_optuna.fit` describes (plateau
rule, form choice, bootstrap); the numerical work is :mod:`._power_law`'s.
The law is what a user reads (its exponent); whether it also predicts is the
predictor's business (:mod:`._predictors`).

Example::

    import numpy as np
    from scaling_optuna.fit._law import fit_law

    law, scores = fit_law(np.array([100.0, 200, 400, 800, 1600]), np.array([0.5, 0.36, 0.27, 0.2, 0.15]),
                          form="power", n_bootstrap=200, rng=np.random.default_rng(0))
    law.alpha, law.beta, law.intervals["beta"], law.text()
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from scaling_optuna.fit import _power_law

__all__ = ["PowerLaw", "fit_law"]


@dataclass(frozen=True)
class PowerLaw:
    """``α·m^β + γ`` (γ = 0 for the ``"power"`` form), held in centred coordinates ``exp(c + β·(log m − log_ref)) + γ``.

    ``draws`` are bootstrap replicates of ``(c, β, γ)`` (shape (B, 3), maybe
    empty) and ``noise`` one log-noise draw each, for a band that holds a new
    measurement; ``interval_method`` says how the draws were made.
    """

    form: str
    c: float
    beta: float
    gamma: float
    log_ref: float
    residual_std: float
    confidence: float = 0.95
    interval_method: str = "none"
    draws: np.ndarray = field(default_factory=lambda: np.empty((0, 3)), repr=False)
    noise: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def alpha(self) -> float:
        return float(np.exp(np.clip(self.c - self.beta * self.log_ref, -_power_law.EXP_CLIP, _power_law.EXP_CLIP)))

    @property
    def bootstrap_params(self) -> np.ndarray:
        """The draws as (alpha, beta, gamma) rows."""
        if self.draws.shape[0] == 0:
            return np.empty((0, 3))
        with np.errstate(over="ignore", under="ignore"):
            alpha = np.exp(np.clip(self.draws[:, 0] - self.draws[:, 1] * self.log_ref, -_power_law.EXP_CLIP, _power_law.EXP_CLIP))
        return np.column_stack([alpha, self.draws[:, 1:]])

    @functools.cached_property
    def intervals(self) -> dict[str, tuple[float, float]]:
        """``alpha``, ``beta``, ``gamma`` → (lower, upper) at ``confidence`` (empty without draws)."""
        if self.draws.shape[0] == 0:
            return {}
        q = (1.0 - self.confidence) / 2.0
        lo, hi = _power_law.quantiles(self.bootstrap_params, q)
        return {name: (float(lo[i]), float(hi[i])) for i, name in enumerate(("alpha", "beta", "gamma"))}

    def curve(self, m: np.ndarray) -> np.ndarray:
        """The law at sizes ``m``."""
        lx = np.log(np.asarray(m, dtype=float)) - self.log_ref
        return _power_law.curve(np.array([[self.c, self.beta, self.gamma]]), lx)[0]

    def edges(self, m: np.ndarray, confidence: float, with_noise: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """Percentiles of the draws' curves at ``m`` (``None`` without draws); ``with_noise``: each draw also
        carries its residual noise, for a band around one measurement."""
        if self.draws.shape[0] == 0:
            return None
        curves = _power_law.curve(self.draws, np.log(np.asarray(m, dtype=float)) - self.log_ref)
        if with_noise:
            with np.errstate(over="ignore"):
                curves = curves * np.exp(self.noise)[:, None]
        return _power_law.quantiles(curves, (1.0 - confidence) / 2.0)

    def floor(self) -> float:
        """The value the law levels off at (γ; for a rising law, +inf)."""
        return math.inf if self.beta > 0 else self.gamma

    def text(self, symbol: str | None = None) -> str:
        """The law in words, e.g. ``ε(m) = 3.1·m^-0.42 + 0.05  (β 95% CI …)``; ``symbol`` names the metric."""
        sym = symbol or ("y" if self.beta > 0 else "ε")
        s = f"{sym}(m) = {self.alpha:.3g}·m^{self.beta:.3g}"
        if self.form == "saturating":
            s += f" + {self.gamma:.3g}"
        iv = self.intervals.get("beta")
        if iv is not None:
            s += f"  (β {self.confidence * 100:g}% CI {iv[0]:.3g}…{iv[1]:.3g})"
        return s


def fit_law(
    m: np.ndarray,
    y: np.ndarray,
    *,
    form: str,
    n_bootstrap: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
    group_devs: list[np.ndarray] | None = None,
) -> tuple[PowerLaw, dict[str, float]]:
    """Fit the law to the sizes ``m`` and values ``y`` (sorted; plateau already removed) and bootstrap it.

    ``form`` is ``"auto"``, ``"saturating"`` or ``"power"``; with ``"auto"``
    and ≥ 5 points each replicate re-chooses its form, so that the intervals
    hold the uncertainty of the choice.  ``group_devs``: per-point
    log-deviations to resample (the top-k trials of a size) instead of the
    residuals.  Returns the law and the scores the form was chosen on.
    """
    log_ref = float(np.mean(np.log(m)))
    lx, ly = np.log(m) - log_ref, np.log(y)
    chosen, scores, params, generator = _choose(form, lx, ly, _power_law.ols_slope(lx, ly) <= 0.0)
    sse = float(np.sum((ly - np.log(_power_law.curve(params[None, :], lx)[0])) ** 2))
    dof = len(m) - (3 if chosen == "saturating" else 2)
    resid_std = math.sqrt(max(sse, 0.0) / dof)
    # γ never above the smallest value (the bounds keep it there up to rounding)
    c, beta, gamma = float(params[0]), float(params[1]), min(float(params[2]), float(np.min(y))) if chosen == "saturating" else 0.0
    law = PowerLaw(chosen, c, beta, gamma, log_ref, resid_std, confidence)
    if n_bootstrap == 0:
        return law, scores
    reselect = generator is not None
    if group_devs is not None:
        ly_star = ly[None, :] + _power_law.draw_group_devs(group_devs, n_bootstrap, rng)
        method = "group-bootstrap"
    else:
        # Resample from the larger (saturating) model when the form is re-chosen per
        # replicate, so that the replicates can disagree with the choice.
        start, gen_dof = (generator, len(m) - 3) if reselect else (params, dof)
        ly_star = _power_law.residual_bootstrap(lx, ly, start, gen_dof, n_bootstrap, rng)
        method = "residual-bootstrap"
    if reselect:
        draws = _power_law.fit_batch_auto(lx, ly_star, start=generator)
        method += ", form re-chosen per replicate"
    else:
        draws = _power_law.fit_batch(chosen, lx, ly_star, start=params)
    noise = resid_std * rng.standard_t(dof, size=n_bootstrap)
    return PowerLaw(chosen, law.c, law.beta, law.gamma, log_ref, resid_std, confidence, method, draws, noise), scores


def _choose(form: str, lx: np.ndarray, ly: np.ndarray, decreasing: bool) -> tuple[str, dict[str, float], np.ndarray, np.ndarray | None]:
    """The form, its scores, its point fit, and the saturating fit replicates are drawn from when each re-chooses."""
    if form != "auto":
        return form, {}, _power_law.fit_point(form, lx, ly)[0], None
    chosen, scores, p_pow, p_sat = _power_law.choose_form(lx, ly, decreasing)
    if p_sat is None:
        return chosen, scores, _power_law.fit_point(chosen, lx, ly)[0], None
    return chosen, scores, (p_sat if chosen == "saturating" else p_pow), p_sat
