"""Fit the learning-curve power law ε(m) ≈ α·m^β + γ and extrapolate it.

Following Hestness et al. (2017), "Deep Learning Scaling is Predictable,
Empirically": the best model's test error on nested training subsets of size
``m`` follows a power law ``α·m^β`` (β < 0) that levels off at an irreducible
error ``γ``; at the smallest sizes it sits on a flat "best guess" plateau.
:func:`fit_scaling_law` fits that law robustly, recognises and drops the
plateau, bootstraps intervals, and answers "what does 2× or 10× more data buy"
(:meth:`ScalingLawFit.predict`) and "how much data does a target error need"
(:meth:`ScalingLawFit.data_needed`).

Example::

    from scaling_optuna.scaling_law import fit_scaling_law

    sizes = [128, 256, 512, 1024, 2048, 4096, 8192]
    errors = [0.90, 0.90, 0.52, 0.38, 0.29, 0.23, 0.19]
    fit = fit_scaling_law(sizes, errors, plateau=0.9)
    print(fit)                       # ε(m) = ...·m^-0.5 + ...  (β 95% CI ...)
    print(fit.sizes_excluded)        # (128.0, 256.0): the best-guess plateau
    print(fit.predict([16384, 81920]).mean)
    print(fit.data_needed(0.12).message)

Design decisions (the rules the code follows):

* **Fitting** is done in log space: minimise ``Σ (log y − log f(m))²``.  The
  ``"power"`` form ``α·m^β`` is then ordinary least squares of ``log y`` on
  ``log m`` (β may have either sign, so increasing laws such as parameter count
  vs. data are supported).  The ``"saturating"`` form ``α·m^β + γ`` is fitted
  with ``-4 ≤ β ≤ -1e-4`` and ``0 ≤ γ ≤ min(y)``, starting from a grid over
  (β, γ) with log α solved in closed form for each grid point, refined by a
  bounded Levenberg–Marquardt (vectorised over bootstrap replicates) and, for
  the point estimate, by :func:`scipy.optimize.least_squares`.
* **Plateau rule** (only for decreasing curves; the excluded points are always
  a leading run; at least 3 points — 4 for ``form="saturating"`` — remain,
  and the remaining points must still decrease overall).  Candidates are the
  longer of two leading runs:

  - with ``plateau=P``: the leading points whose value is ≥ ``0.95·P``
    (within 5 % of the best-guess error, or above it);
  - always: the leading points whose log-drop below the first value is less
    than 10 % of the curve's total log-drop (``log y₀ − log min y``), if there
    are at least two of them.

  A straight log-log line is fitted to the points after the candidate run and
  extrapolated back.  A candidate point is confirmed as plateau if it lies
  below that line by more than ``max(2.5·s, 0.05)`` in log units (``s`` the
  line's residual std: a start that is flat only by noise is kept); with
  ``plateau=P`` also if its value is ≥ ``P``, or ≥ ``0.95·P`` and closer (in
  log) to ``P`` than to the line (so a transition point already on the law is
  kept).  Everything up to the last confirmed point is excluded; without the
  ``plateau`` rule a single point is never a plateau.  ``excluded_reason``
  names the sizes and the rule.
* **Auto form rule** (``form="auto"``): an increasing curve (log-log slope
  > 0) gets ``"power"``.  A decreasing curve with 3 or 4 used points gets
  ``"power"`` (with 3 points only the power law is identifiable, and with 4 the
  3-parameter law has a single residual degree of freedom, so it cannot be
  validated).  With ≥ 5 points both forms are fitted and ``"saturating"`` is
  chosen when the nested F-test of γ = 0 in log space (boundary-corrected:
  ``p = ½·P(F(1, n−3) > F)``) gives ``p < 0.2`` *and* the fitted γ is at
  least 2 % of the smallest fitted value (a γ smaller than that cannot matter
  for any practical extrapolation, and the floor makes clean power laws come
  out as ``"power"`` deterministically).  ``form_scores`` reports the two
  forms' log-space residual std and ``p_value_gamma_zero``.  A leave-last-out
  (rolling-origin) prediction score was tried first and discarded: with 6–9
  points the saturating law refitted on 4–6 points extrapolates too wildly to
  score fairly, and it picked the wrong form far more often than the test.
  Because the choice is uncertain on short noisy curves, the bootstrap
  re-makes it in every replicate (see Intervals).
* **Intervals**: percentile bootstrap with the excluded points held fixed.
  The form is held fixed too, except for ``form="auto"`` with ≥ 5 points:
  then replicates are generated from the saturating fit (the larger model)
  and each replicate re-chooses its form by the rule above, so the bands
  include the uncertainty of the choice (without this, a saturating curve
  that happened to be fitted as a power law got 40 % coverage instead of 95 %).
  Without ``groups``: residual bootstrap in log space — centred
  residuals inflated by ``sqrt(n/(n−p))`` and, per replicate, multiplied by
  ``sqrt(dof/χ²_dof)`` so that the uncertainty of the noise level on short
  curves is propagated (this turns the normal-theory interval into a
  Student-t-like one; without it 6–9-point curves under-cover badly).  With
  ``groups`` (each entry: alternative values of the same kind as ``values``,
  e.g. the test errors of the top-k trials at that size): each replicate
  perturbs every used value by a log-deviation drawn from that size's group
  (centred on the group's mean log value, scaled by ``sqrt(k/(k−1))``; sizes
  with a single alternative draw from the pooled deviations of all groups).
* **Bands**: :meth:`ScalingLawFit.predict` returns the point-estimate curve as
  ``mean`` and, by default, the *curve* band (uncertainty of the fitted curve —
  the right band for covering the true curve value at an extrapolated size);
  ``include_noise=True`` widens it by log-space noise of size
  ``residual_std`` (Student-t with the residual degrees of freedom), a band for
  a new *observation*.
* **Duplicate sizes** are rejected: pass one value per size (e.g. the best
  trial) and give alternative values through ``groups``.
* **JSON**: :meth:`ScalingLawFit.to_dict` writes ``float('inf')`` as the string
  ``"inf"`` (``"-inf"``) and NaN as ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from scaling_optuna import _fitting
from scaling_optuna.errors import UserError

__all__ = [
    "DataNeeded",
    "FORMS",
    "Prediction",
    "ScalingLawFit",
    "fit_log_log_line",
    "fit_scaling_law",
]

FORMS = ("auto", "saturating", "power")
_MIN_SAT_POINTS = 4  # the saturating law has 3 parameters; with 3 points nothing checks it


# ---------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------


def _json_float(x: float) -> float | str | None:
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


@dataclass(frozen=True)
class Prediction:
    """Predicted values at some sizes with a pointwise band.

    ``mean`` is the point-estimate curve; ``lower``/``upper`` the bootstrap
    percentile band (NaN when the fit has no bootstrap).

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
            "sizes": [_json_float(v) for v in self.sizes],
            "mean": [_json_float(v) for v in self.mean],
            "lower": [_json_float(v) for v in self.lower],
            "upper": [_json_float(v) for v in self.upper],
            "include_noise": bool(self.include_noise),
            "confidence": float(self.confidence),
        }


@dataclass(frozen=True)
class DataNeeded:
    """Training-set size at which the fitted curve reaches a target value.

    ``size`` is the point estimate (``inf`` when unreachable), ``lower``/
    ``upper`` the bootstrap interval (``upper`` may be ``inf``: in some
    bootstrap fits the target is never reached).

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
            "target": _json_float(self.target),
            "size": _json_float(self.size),
            "lower": _json_float(self.lower),
            "upper": _json_float(self.upper),
            "reachable": bool(self.reachable),
            "message": self.message,
            "fraction_unreachable": float(self.fraction_unreachable),
        }


@dataclass(frozen=True)
class ScalingLawFit:
    """A fitted scaling law ``f(m) = alpha·m^beta + gamma`` with bootstrap intervals.

    ``gamma`` is 0.0 for the ``"power"`` form.  ``intervals`` maps
    ``"alpha"``, ``"beta"``, ``"gamma"`` to ``(lower, upper)`` at
    ``confidence`` (empty without bootstrap).  ``residual_std`` is the
    log-space residual standard deviation (``sqrt(SSE/(n − p))``).
    ``form_scores`` holds what ``form="auto"`` decided on: each form's
    log-space residual std and ``p_value_gamma_zero`` (empty otherwise).

    Example::

        fit = fit_scaling_law([100, 200, 400, 800, 1600], [0.5, 0.36, 0.27, 0.2, 0.15])
        fit.beta, fit.intervals["beta"], str(fit)
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
    # Private state: parameters in centred coordinates (c, beta, gamma) with
    # f(m) = exp(c + beta·(log m − log_ref)) + gamma, the bootstrap draws in the
    # same coordinates, and per-draw log-noise for the observation band.
    _log_ref: float = field(default=0.0, repr=False, compare=False)
    _c: float = field(default=0.0, repr=False, compare=False)
    _draws: np.ndarray = field(default_factory=lambda: np.empty((0, 3)), repr=False, compare=False)
    _noise: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    # -- derived ------------------------------------------------------------

    @property
    def bootstrap_params(self) -> np.ndarray:
        """Bootstrap draws as an array of shape (n_bootstrap, 3): alpha, beta, gamma.

        Example::

            alphas, betas, gammas = fit.bootstrap_params.T
        """
        d = self._draws
        if d.shape[0] == 0:
            return np.empty((0, 3))
        with np.errstate(over="ignore", under="ignore"):
            alpha = np.exp(np.clip(d[:, 0] - d[:, 1] * self._log_ref, -_fitting.EXP_CLIP, _fitting.EXP_CLIP))
        return np.column_stack([alpha, d[:, 1], d[:, 2]])

    @property
    def increasing(self) -> bool:
        """True for an increasing law (beta > 0, e.g. parameter count vs data)."""
        return self.beta > 0

    # -- queries ------------------------------------------------------------

    def predict(self, sizes: Any, *, include_noise: bool = False) -> Prediction:
        """Predict the metric at ``sizes`` with a pointwise band.

        ``include_noise=False`` (default) gives the band of the fitted *curve*;
        ``True`` adds log-space residual noise (a band for a new observation).

        Example::

            p = fit.predict([2 * max(fit.sizes_used), 10 * max(fit.sizes_used)])
            p.mean, p.lower, p.upper
        """
        m = _as_positive_array(sizes, "sizes")
        lq = np.log(m) - self._log_ref
        mean = _fitting.curve(np.array([[self._c, self.beta, self.gamma]]), lq)[0]
        if self._draws.shape[0] == 0:
            nan = np.full_like(mean, np.nan)
            return Prediction(m, mean, nan, nan.copy(), include_noise, self.confidence)
        curves = _fitting.curve(self._draws, lq)
        if include_noise:
            with np.errstate(over="ignore"):
                curves = curves * np.exp(self._noise)[:, None]
        q = (1.0 - self.confidence) / 2.0
        lower, upper = _fitting.quantiles(curves, q)
        return Prediction(m, mean, lower, upper, include_noise, self.confidence)

    def data_needed(self, target: float) -> DataNeeded:
        """Training-set size at which the fitted curve reaches ``target``.

        For a decreasing law the target is reachable only if it lies above
        gamma; for an increasing law any positive target is reachable.

        Example::

            need = fit.data_needed(0.05)
            need.size, need.lower, need.upper, need.reachable, need.message
        """
        try:
            t = float(target)
        except (TypeError, ValueError):
            raise UserError(
                f"target must be a finite positive number, got {target!r}: pass e.g. 0.05"
            ) from None
        if not math.isfinite(t) or t <= 0:
            raise UserError(f"target must be a finite positive number, got {t!r}: pass e.g. 0.05")
        point = _fitting.size_for_target(np.array([[self._c, self.beta, self.gamma]]), t, self._log_ref)[0]
        reachable = bool(np.isfinite(point))
        conf = f"{self.confidence * 100:g}%"
        largest = max(self.sizes_used)
        if self._draws.shape[0]:
            draws = _fitting.size_for_target(self._draws, t, self._log_ref)
            frac_unreach = float(np.mean(~np.isfinite(draws)))
            q = (1.0 - self.confidence) / 2.0
            lo, hi = (float(v[0]) for v in _fitting.quantiles(draws[:, None], q))
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
        msg = f"target {t:.4g} is reached at about m = {point:.3g}"
        if np.isfinite(lo) or np.isfinite(hi):
            msg += f" ({conf} interval {lo:.3g}–{hi:.3g})"
        if point <= largest:
            msg += f"; that is within the observed sizes (largest {largest:.3g})"
        else:
            msg += f", {point / largest:.3g}× the largest size fitted"
        if frac_unreach > 0:
            msg += f"; in {100 * frac_unreach:.2g}% of bootstrap fits it is never reached"
        return DataNeeded(t, float(point), lo, hi, True, msg, frac_unreach)

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
            "alpha": _json_float(self.alpha),
            "beta": _json_float(self.beta),
            "gamma": _json_float(self.gamma),
            "intervals": {k: [_json_float(a), _json_float(b)] for k, (a, b) in self.intervals.items()},
            "confidence": float(self.confidence),
            "sizes_used": [_json_float(v) for v in self.sizes_used],
            "values_used": [_json_float(v) for v in self.values_used],
            "sizes_excluded": [_json_float(v) for v in self.sizes_excluded],
            "values_excluded": [_json_float(v) for v in self.values_excluded],
            "excluded_reason": self.excluded_reason,
            "n_bootstrap": int(self.n_bootstrap),
            "interval_method": self.interval_method,
            "residual_std": _json_float(self.residual_std),
            "form_scores": {k: _json_float(v) for k, v in self.form_scores.items()},
            "summary": str(self),
        }
        if include_bootstrap:
            d["bootstrap_params"] = [[_json_float(x) for x in row] for row in self.bootstrap_params]
        return d

    def __str__(self) -> str:
        sym = "y" if self.beta > 0 else "ε"
        s = f"{sym}(m) = {self.alpha:.3g}·m^{self.beta:.3g}"
        if self.form == "saturating":
            s += f" + {self.gamma:.3g}"
        iv = self.intervals.get("beta")
        if iv is not None:
            s += f"  (β {self.confidence * 100:g}% CI {iv[0]:.3g}…{iv[1]:.3g})"
        if self.sizes_excluded:
            s += f"  [{len(self.sizes_excluded)} plateau size(s) excluded]"
        return s


# ---------------------------------------------------------------------------
# Public fitting functions
# ---------------------------------------------------------------------------


def fit_scaling_law(
    sizes: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    form: str = "auto",
    plateau: float | None = None,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    groups: Sequence[Sequence[float]] | None = None,
    confidence: float = 0.95,
) -> ScalingLawFit:
    """Fit ``f(m) = alpha·m^beta + gamma`` (or ``alpha·m^beta``) to a learning curve.

    ``sizes`` are positive training-set sizes (any order, no duplicates),
    ``values`` positive metric values (test error, loss, parameter count...).
    ``form`` is ``"auto"``, ``"saturating"`` or ``"power"``; ``plateau`` the
    best-guess error (e.g. 0.9 for 10 balanced classes) used to recognise the
    small-data plateau; ``groups`` optional per-size arrays of alternative
    values (e.g. the top-k trials) resampled by the bootstrap.  See the module
    docstring for the exact rules.  Raises :class:`UserError` for bad input.

    Example::

        fit = fit_scaling_law([256, 512, 1024, 2048, 4096, 8192],
                              [0.41, 0.33, 0.27, 0.23, 0.20, 0.18])
        print(fit)
        print(fit.predict([81920]).mean, fit.data_needed(0.15).message)
    """
    with np.errstate(all="ignore"):  # every result is checked for finiteness below
        return _fit_scaling_law(sizes, values, form, plateau, n_bootstrap, seed, groups, confidence)


def _fit_scaling_law(
    sizes: Any, values: Any, form: Any, plateau: Any, n_bootstrap: Any, seed: Any, groups: Any, confidence: Any
) -> ScalingLawFit:
    m, y, order = _validate_xy(sizes, values)
    if not isinstance(form, str) or form not in FORMS:
        raise UserError(f"unknown form {form!r}: use 'auto', 'saturating' or 'power'")
    plateau_v = _validate_plateau(plateau)
    n_boot = _validate_n_bootstrap(n_bootstrap)
    conf = _validate_confidence(confidence)
    rng = _make_rng(seed)
    group_devs = _validate_groups(groups, len(m), order) if groups is not None else None

    decreasing = _fitting.ols_slope(np.log(m), np.log(y)) <= 0.0
    if form == "saturating" and not decreasing:
        raise UserError(
            "form='saturating' needs a curve that decreases with size, but this one increases "
            f"(log-log slope {_fitting.ols_slope(np.log(m), np.log(y)):+.3g}): use form='power' for increasing laws"
        )
    min_keep = _MIN_SAT_POINTS if form == "saturating" else 3
    if form == "saturating" and len(m) < _MIN_SAT_POINTS:
        raise UserError(
            f"form='saturating' needs at least {_MIN_SAT_POINTS} sizes, got {len(m)}: "
            "add sizes or use form='power'"
        )
    n_ex, reason = _fitting.detect_plateau(m, y, plateau_v, decreasing, min_keep)

    mu, yu = m[n_ex:], y[n_ex:]
    log_ref = float(np.mean(np.log(mu)))
    lx = np.log(mu) - log_ref
    ly = np.log(yu)
    n = len(mu)

    scores: dict[str, float] = {}
    reselect = False
    if form == "auto":
        chosen, scores, p_pow, p_sat = _fitting.choose_form(lx, ly, decreasing)
        reselect = p_sat is not None
    else:
        chosen = form
    if reselect:
        params = p_sat if chosen == "saturating" else p_pow
        sse = float(np.sum((ly - np.log(_fitting.curve(params[None, :], lx)[0])) ** 2))
    else:
        params, sse = _fitting.fit_point(chosen, lx, ly)
    p = 3 if chosen == "saturating" else 2
    dof = n - p
    resid_std = math.sqrt(max(sse, 0.0) / dof)

    draws = np.empty((0, 3))
    noise = np.empty(0)
    method = "none"
    if n_boot > 0:
        if group_devs is not None:
            devs = [group_devs[i] for i in range(n_ex, len(m))]
            ly_star = ly[None, :] + _fitting.draw_group_devs(devs, n_boot, rng)
            method = "group-bootstrap"
        else:
            # Resample from the larger (saturating) model when the form is re-chosen
            # per replicate, so that the replicates can disagree with the choice.
            gen = p_sat if reselect else params
            gen_dof = n - 3 if reselect else dof
            ly_star = _fitting.residual_bootstrap(lx, ly, gen, gen_dof, n_boot, rng)
            method = "residual-bootstrap"
        if reselect:
            draws = _fitting.fit_batch_auto(lx, ly_star)
            method += ", form re-chosen per replicate"
        else:
            draws = _fitting.fit_batch(chosen, lx, ly_star)
        noise = resid_std * rng.standard_t(dof, size=n_boot)

    return _make_fit(
        chosen, params, log_ref, draws, noise, conf, mu, yu, m[:n_ex], y[:n_ex], reason,
        n_boot, resid_std, scores, method,
    )


def fit_log_log_line(
    sizes: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_draws: int = 1000,
    seed: int | None = 0,
) -> ScalingLawFit:
    """Naive baseline: a straight line through all points in log-log space.

    Ordinary least squares of ``log value`` on ``log size`` (the ``"power"``
    form), no plateau handling, no form choice, no bootstrap.  Intervals are
    the classical Student-t OLS intervals, represented by ``n_draws`` exact
    draws from the t sampling distribution so that :meth:`~ScalingLawFit.predict`
    and :meth:`~ScalingLawFit.data_needed` work as for any fit
    (``interval_method="ols-t"``, ``n_bootstrap=0``).

    Example::

        naive = fit_log_log_line([100, 200, 400, 800], [0.5, 0.37, 0.28, 0.21])
        naive.beta, naive.predict([8000]).mean
    """
    with np.errstate(all="ignore"):
        return _fit_log_log_line(sizes, values, confidence, n_draws, seed)


def _fit_log_log_line(sizes: Any, values: Any, confidence: Any, n_draws: Any, seed: Any) -> ScalingLawFit:
    m, y, _ = _validate_xy(sizes, values)
    conf = _validate_confidence(confidence)
    n_draws = _validate_n_bootstrap(n_draws)
    rng = _make_rng(seed)
    log_ref = float(np.mean(np.log(m)))
    lx = np.log(m) - log_ref
    ly = np.log(y)
    n = len(m)
    params, sse = _fitting.fit_point("power", lx, ly)
    dof = n - 2
    resid_std = math.sqrt(sse / dof)
    draws = np.empty((0, 3))
    noise = np.empty(0)
    if n_draws > 0:
        # Centred design: c and beta are independent with variances s²/n and s²/Σx².
        scale = resid_std * np.sqrt(dof / rng.chisquare(dof, size=n_draws))
        z = rng.standard_normal((n_draws, 2))
        c = params[0] + scale * z[:, 0] / math.sqrt(n)
        b = params[1] + scale * z[:, 1] / math.sqrt(float(np.sum(lx**2)))
        draws = np.column_stack([c, b, np.zeros(n_draws)])
        noise = resid_std * rng.standard_t(dof, size=n_draws)
    return _make_fit(
        "power", params, log_ref, draws, noise, conf, m, y, np.empty(0), np.empty(0), "",
        0, resid_std, {}, "ols-t" if n_draws else "none",
    )


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _as_float_array(x: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a 1-D sequence of numbers, got {x!r:.80}: pass e.g. [128, 256, 512]") from None
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise UserError(f"{name} must be a 1-D sequence of numbers, got an array of shape {a.shape}: flatten it")
    return a


def _as_positive_array(x: Any, name: str) -> np.ndarray:
    a = _as_float_array(x, name)
    bad = ~np.isfinite(a) | (a <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{name} must be positive finite numbers, got {a[i]!r} at position {i}: drop or fix it")
    return a


def _validate_xy(sizes: Any, values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = _as_float_array(sizes, "sizes")
    y = _as_float_array(values, "values")
    if len(m) != len(y):
        raise UserError(
            f"sizes and values have different lengths ({len(m)} vs {len(y)}): pass one value per size"
        )
    if len(m) < 3:
        raise UserError(
            f"need at least 3 (size, value) points to fit a scaling law, got {len(m)}: add more sizes"
        )
    bad = ~np.isfinite(m) | (m <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"sizes must be positive finite numbers, got {m[i]!r} at position {i}: drop or fix that size"
        )
    bad = ~np.isfinite(y) | (y <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"values must be positive finite numbers (the fit is in log space), got {y[i]!r} at "
            f"position {i} (size {m[i]:g}): drop that point or fix the metric"
        )
    uniq, counts = np.unique(m, return_counts=True)
    if (counts > 1).any():
        k = int(np.flatnonzero(counts > 1)[0])
        raise UserError(
            f"sizes contain duplicates ({uniq[k]:g} appears {counts[k]} times): pass one value per size "
            "(e.g. the best trial) and put alternative values in groups="
        )
    order = np.argsort(m, kind="stable")
    return m[order], y[order], order


def _validate_plateau(plateau: Any) -> float | None:
    if plateau is None:
        return None
    try:
        p = float(plateau)
    except (TypeError, ValueError):
        raise UserError(f"plateau must be a positive number (the best-guess error, e.g. 0.9), got {plateau!r}") from None
    if not math.isfinite(p) or p <= 0:
        raise UserError(f"plateau must be a positive finite number (the best-guess error, e.g. 0.9), got {p!r}")
    return p


def _validate_n_bootstrap(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise UserError(f"n_bootstrap must be a non-negative integer (e.g. 1000), got {n!r}")
    return int(n)


def _validate_confidence(c: Any) -> float:
    try:
        v = float(c)
    except (TypeError, ValueError):
        raise UserError(f"confidence must be a number between 0 and 1 (e.g. 0.95), got {c!r}") from None
    if not (0.0 < v < 1.0):
        raise UserError(f"confidence must be between 0 and 1 exclusive (e.g. 0.95), got {v!r}")
    return v


def _make_rng(seed: Any) -> np.random.Generator:
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise UserError(f"seed must be a non-negative integer or None, got {seed!r}: {e}") from None


def _validate_groups(groups: Any, n: int, order: np.ndarray) -> list[np.ndarray]:
    """Per-size centred log-deviations (sorted like the sizes)."""
    try:
        glist = list(groups)
    except TypeError:
        raise UserError("groups must be a list (one entry per size) of arrays of values") from None
    if len(glist) != n:
        raise UserError(
            f"groups has {len(glist)} entries but there are {n} sizes: pass one array of values per size"
        )
    devs: list[np.ndarray] = []
    for i, g in enumerate(glist):
        a = _as_float_array(g, f"groups[{i}]")
        if a.size == 0:
            raise UserError(f"groups[{i}] is empty: pass at least one value per size")
        if (~np.isfinite(a) | (a <= 0)).any():
            raise UserError(f"groups[{i}] contains non-positive or non-finite values: drop them")
        la = np.log(a)
        # centred, and scaled so that their variance is unbiased for one draw
        devs.append((la - la.mean()) * (math.sqrt(a.size / (a.size - 1)) if a.size > 1 else 1.0))
    if all(d.size < 2 for d in devs):
        raise UserError("groups give no spread to resample (one value per size): pass ≥2 values per size or omit groups")
    return [devs[int(i)] for i in order]


def _make_fit(
    form: str,
    params: np.ndarray,
    log_ref: float,
    draws: np.ndarray,
    noise: np.ndarray,
    conf: float,
    m_used: np.ndarray,
    y_used: np.ndarray,
    m_ex: np.ndarray,
    y_ex: np.ndarray,
    reason: str,
    n_boot: int,
    resid_std: float,
    scores: dict[str, float],
    method: str,
) -> ScalingLawFit:
    c, beta, gamma = (float(v) for v in params)
    alpha = float(np.exp(np.clip(c - beta * log_ref, -_fitting.EXP_CLIP, _fitting.EXP_CLIP)))
    intervals: dict[str, tuple[float, float]] = {}
    if draws.shape[0]:
        q = (1.0 - conf) / 2.0
        with np.errstate(over="ignore"):
            a_draw = np.exp(np.clip(draws[:, 0] - draws[:, 1] * log_ref, -_fitting.EXP_CLIP, _fitting.EXP_CLIP))
        for name, col in (("alpha", a_draw), ("beta", draws[:, 1]), ("gamma", draws[:, 2])):
            lo, hi = _fitting.quantiles(col[:, None], q)
            intervals[name] = (float(lo[0]), float(hi[0]))
    return ScalingLawFit(
        form=form,
        alpha=alpha,
        beta=beta,
        gamma=min(gamma, float(np.min(y_used))) if form == "saturating" else 0.0,
        intervals=intervals,
        sizes_used=tuple(float(v) for v in m_used),
        values_used=tuple(float(v) for v in y_used),
        sizes_excluded=tuple(float(v) for v in m_ex),
        values_excluded=tuple(float(v) for v in y_ex),
        excluded_reason=reason,
        n_bootstrap=n_boot,
        residual_std=resid_std,
        form_scores=scores,
        confidence=conf,
        interval_method=method,
        _log_ref=log_ref,
        _c=c,
        _draws=draws,
        _noise=noise,
    )
