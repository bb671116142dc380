"""The public fitting functions: :func:`fit_scaling_law` and its two baselines.

The rules they follow are written out in the docstring of
:mod:`scaling_optuna.fit`; the numerical work lives in the private modules
(:mod:`._power_law` for the law, :mod:`._ensemble` and :mod:`._families`
for the predictor).

Example::

    from scaling_optuna.fit import fit_least_squares, fit_log_log_line, fit_scaling_law

    sizes, errors = [100, 200, 400, 800, 1600, 3200], [0.52, 0.38, 0.30, 0.245, 0.21, 0.19]
    for fit in (fit_scaling_law(sizes, errors), fit_least_squares(sizes, errors), fit_log_log_line(sizes, errors)):
        print(fit.method, fit.predict([25600]).mean)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from scaling_optuna.errors import UserError
from scaling_optuna.fit import _calibration
from scaling_optuna.fit import _power_law
from scaling_optuna.fit._ensemble import CALIBRATED
from scaling_optuna.fit._ensemble import Ensemble
from scaling_optuna.fit._ensemble import fit_ensemble
from scaling_optuna.fit._ensemble import fit_plain
from scaling_optuna.fit._families import MIN_POINTS
from scaling_optuna.fit._result import ScalingLawFit
from scaling_optuna.fit._validate import make_rng
from scaling_optuna.fit._validate import validate_confidence
from scaling_optuna.fit._validate import validate_groups
from scaling_optuna.fit._validate import validate_n_bootstrap
from scaling_optuna.fit._validate import validate_plateau
from scaling_optuna.fit._validate import validate_xy

__all__ = ["FORMS", "fit_least_squares", "fit_log_log_line", "fit_scaling_law"]

FORMS = ("auto", "saturating", "power")
_MIN_SAT_POINTS = 4  # the saturating law has 3 parameters; with 3 points nothing checks it
_RISE_P_VALUE = 0.05  # a curve "rises" when the log-log slope is > 0 at this one-sided level
_PLAIN_PLATEAU_SHARE = 0.95  # a point within 5 % of the best-guess error sits on its plateau (the plateau rule's own share)


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
    """Fit a learning curve: the law ``alpha·m^beta + gamma`` and a calibrated predictor.

    ``sizes`` are positive training-set sizes (any order, no duplicates),
    ``values`` positive metric values (test error, loss, parameter count...).
    ``form`` is the law's form, ``"auto"``, ``"saturating"`` or ``"power"``;
    with ``"auto"`` the predictions come from the calibrated ensemble of curve
    families (unless the curve clearly rises), with an explicit form from that
    law.  ``plateau`` is the best-guess error (e.g. 0.9 for 10 balanced
    classes): it marks the small-data plateau and caps every prediction.
    ``groups`` optional per-size arrays of alternative values (e.g. the top-k
    trials) resampled by the law's bootstrap.  ``n_bootstrap=0`` gives point
    estimates only (no intervals, no band).  See :mod:`scaling_optuna.fit` for
    the exact rules.  Raises :class:`UserError` for bad input.

    Example::

        fit = fit_scaling_law([256, 512, 1024, 2048, 4096, 8192],
                              [0.41, 0.33, 0.27, 0.23, 0.20, 0.18])
        print(fit, fit.method, fit.band_method, sep="\\n")
        print(fit.predict([81920]).mean, fit.data_needed(0.15).message)
    """
    with np.errstate(all="ignore"):  # every result is checked for finiteness below
        return _fit_scaling_law(sizes, values, form, plateau, n_bootstrap, seed, groups, confidence)


def _fit_scaling_law(
    sizes: Any, values: Any, form: Any, plateau: Any, n_bootstrap: Any, seed: Any, groups: Any, confidence: Any
) -> ScalingLawFit:
    m, y, order = validate_xy(sizes, values)
    if not isinstance(form, str) or form not in FORMS:
        raise UserError(f"unknown form {form!r}: use 'auto', 'saturating' or 'power'")
    plateau_v = validate_plateau(plateau)
    n_boot = validate_n_bootstrap(n_bootstrap)
    conf = validate_confidence(confidence)
    rng = make_rng(seed)
    group_devs = validate_groups(groups, len(m), order) if groups is not None else None

    decreasing = _power_law.ols_slope(np.log(m), np.log(y)) <= 0.0
    if form == "saturating" and not decreasing:
        raise UserError(
            "form='saturating' needs a curve that decreases with size, but this one increases "
            f"(log-log slope {_power_law.ols_slope(np.log(m), np.log(y)):+.3g}): use form='power' for increasing laws"
        )
    min_keep = _MIN_SAT_POINTS if form == "saturating" else 3
    if form == "saturating" and len(m) < _MIN_SAT_POINTS:
        raise UserError(
            f"form='saturating' needs at least {_MIN_SAT_POINTS} sizes, got {len(m)}: "
            "add sizes or use form='power'"
        )
    n_ex, reason = _power_law.detect_plateau(m, y, plateau_v, decreasing, min_keep)

    mu, yu = m[n_ex:], y[n_ex:]
    log_ref = float(np.mean(np.log(mu)))
    lx = np.log(mu) - log_ref
    ly = np.log(yu)
    n = len(mu)

    scores: dict[str, float] = {}
    reselect = False
    if form == "auto":
        chosen, scores, p_pow, p_sat = _power_law.choose_form(lx, ly, decreasing)
        reselect = p_sat is not None
    else:
        chosen = form
    if reselect:
        params = p_sat if chosen == "saturating" else p_pow
        sse = float(np.sum((ly - np.log(_power_law.curve(params[None, :], lx)[0])) ** 2))
    else:
        params, sse = _power_law.fit_point(chosen, lx, ly)
    p = 3 if chosen == "saturating" else 2
    dof = n - p
    resid_std = math.sqrt(max(sse, 0.0) / dof)

    draws = np.empty((0, 3))
    noise = np.empty(0)
    interval_method = "none"
    if n_boot > 0:
        if group_devs is not None:
            devs = [group_devs[i] for i in range(n_ex, len(m))]
            ly_star = ly[None, :] + _power_law.draw_group_devs(devs, n_boot, rng)
            interval_method = "group-bootstrap"
        else:
            # Resample from the larger (saturating) model when the form is re-chosen
            # per replicate, so that the replicates can disagree with the choice.
            gen = p_sat if reselect else params
            gen_dof = n - 3 if reselect else dof
            ly_star = _power_law.residual_bootstrap(lx, ly, gen, gen_dof, n_boot, rng)
            interval_method = "residual-bootstrap"
        if reselect:
            draws = _power_law.fit_batch_auto(lx, ly_star, start=p_sat)
            interval_method += ", form re-chosen per replicate"
        else:
            draws = _power_law.fit_batch(chosen, lx, ly_star, start=params)
        noise = resid_std * rng.standard_t(dof, size=n_boot)

    has_draws = draws.shape[0] > 0
    if form != "auto":
        predictor = _Predictor.law(chosen, form, n_boot, has_draws, interval_method)
    else:
        if _power_law.rises(np.log(mu), ly, _RISE_P_VALUE):
            predictor = _Predictor.law(chosen, "rises", n_boot, has_draws, interval_method)
        elif not any(len(mu) >= MIN_POINTS[f] for f, w in CALIBRATED.weights.items() if w > 0):
            predictor = _Predictor.law(chosen, "few", n_boot, has_draws, interval_method)
        else:
            ensemble = fit_ensemble(mu, yu, cap=plateau_v, plain=_plain_law(m, y, mu, yu, plateau_v))
            if ensemble is None:
                predictor = _Predictor.last_point(mu)
            else:
                predictor = _Predictor.of_ensemble(ensemble, n_boot > 0, conf)

    return _make_fit(
        chosen, params, log_ref, draws, noise, conf, mu, yu, m[:n_ex], y[:n_ex], reason,
        n_boot, resid_std, scores, interval_method, predictor, cap=plateau_v,
    )


def _plain_law(m: np.ndarray, y: np.ndarray, mu: np.ndarray, yu: np.ndarray, plateau: float | None):
    """The plain law the ensemble leans on: fitted to every point off the best-guess plateau, as the baseline is."""
    off = y < _PLAIN_PLATEAU_SHARE * plateau if plateau is not None else np.ones(len(y), dtype=bool)
    if off.sum() >= 3:
        return fit_plain(m[off], y[off])
    return fit_plain(mu, yu)


def fit_least_squares(
    sizes: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> ScalingLawFit:
    """Baseline: the plain least-squares fit of ``alpha·m^beta + gamma`` in log space.

    Minimises ``Σ (log y − log f(m))²`` over every point with
    ``0 ≤ gamma ≤ min(values)`` and ``-4 ≤ beta < 0``: no plateau handling, no
    form choice, no weighting, no ensemble — what a user gets from twenty
    lines of SciPy.  The band is the residual bootstrap of that fit, not
    calibrated (none with fewer than 4 points, where the fit is exact).

    Example::

        ls = fit_least_squares([100, 200, 400, 800, 1600], [0.5, 0.37, 0.29, 0.24, 0.21])
        ls.gamma, ls.predict([16000]).mean
    """
    with np.errstate(all="ignore"):
        return _fit_least_squares(sizes, values, n_bootstrap, seed, confidence)


def _fit_least_squares(sizes: Any, values: Any, n_bootstrap: Any, seed: Any, confidence: Any) -> ScalingLawFit:
    m, y, _ = validate_xy(sizes, values)
    n_boot = validate_n_bootstrap(n_bootstrap)
    conf = validate_confidence(confidence)
    rng = make_rng(seed)
    log_ref = float(np.mean(np.log(m)))
    lx = np.log(m) - log_ref
    ly = np.log(y)
    params, sse = _power_law.fit_point("saturating", lx, ly)
    dof = len(m) - 3
    resid_std = math.sqrt(max(sse, 0.0) / dof) if dof > 0 else 0.0
    draws, noise, interval_method = np.empty((0, 3)), np.empty(0), "none"
    if n_boot > 0 and dof > 0:
        ly_star = _power_law.residual_bootstrap(lx, ly, params, dof, n_boot, rng)
        draws = _power_law.fit_batch("saturating", lx, ly_star, start=params)
        noise = resid_std * rng.standard_t(dof, size=n_boot)
        interval_method = "residual-bootstrap"
    predictor = _Predictor(
        {"pow3": 1.0},
        "least-squares fit of α·m^β + γ in log space over every point (0 ≤ γ ≤ min(y)): the baseline",
        _bootstrap_band_text(interval_method) if draws.shape[0] else "none: " + ("n_bootstrap=0" if n_boot == 0 else "3 points leave no residuals to resample"),
    )
    return _make_fit(
        "saturating", params, log_ref, draws, noise, conf, m, y, np.empty(0), np.empty(0), "",
        n_boot, resid_std, {}, interval_method, predictor,
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
    m, y, _ = validate_xy(sizes, values)
    conf = validate_confidence(confidence)
    n_draws = validate_n_bootstrap(n_draws)
    rng = make_rng(seed)
    log_ref = float(np.mean(np.log(m)))
    lx = np.log(m) - log_ref
    ly = np.log(y)
    n = len(m)
    params, sse = _power_law.fit_point("power", lx, ly)
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
    predictor = _Predictor(
        {"pow2": 1.0},
        "straight line in log-log space through every point (ordinary least squares): the naive baseline",
        "Student-t intervals of ordinary least squares, not calibrated" if n_draws else "none: n_draws=0",
    )
    return _make_fit(
        "power", params, log_ref, draws, noise, conf, m, y, np.empty(0), np.empty(0), "",
        0, resid_std, {}, "ols-t" if n_draws else "none", predictor,
    )


# ---------------------------------------------------------------------------
# What predicts, in words
# ---------------------------------------------------------------------------


class _Predictor:
    """The predictor a fit uses, with the one-line descriptions a user reads."""

    def __init__(
        self,
        family_weights: dict[str, float],
        method: str,
        band_method: str,
        ensemble: Ensemble | None = None,
        ensemble_band: bool = False,
        fallback: str = "",
    ) -> None:
        self.family_weights = family_weights
        self.method = method
        self.band_method = band_method
        self.ensemble = ensemble
        self.ensemble_band = ensemble_band
        self.fallback = fallback

    @classmethod
    def law(cls, chosen: str, why: str, n_boot: int, has_draws: bool, interval_method: str) -> _Predictor:
        law = "α·m^β + γ" if chosen == "saturating" else "α·m^β"
        reason = {
            "saturating": "form='saturating' asked for",
            "power": "form='power' asked for",
            "rises": "the curve rises with size, so the calibrated ensemble of falling curves does not apply",
            "few": "too few points for any curve family of the ensemble",
        }[why]
        if has_draws:
            band = _bootstrap_band_text(interval_method)
        else:
            band = "none: n_bootstrap=0"
        return cls({"pow3" if chosen == "saturating" else "pow2": 1.0}, f"the {chosen} law {law} ({reason})", band)

    @classmethod
    def last_point(cls, sizes: np.ndarray) -> _Predictor:
        why = (
            f"every curve family failed to fit the {len(sizes)} points, so the prediction is the last "
            "observed value, flat"
        )
        return cls({"last point": 1.0}, f"last observed value ({why})", "none: no fitted curve to calibrate", fallback=why)

    @classmethod
    def of_ensemble(cls, ensemble: Ensemble, has_band: bool, confidence: float) -> _Predictor:
        weights = {n: float(w) for n, w in sorted(zip(ensemble.names, ensemble.weights), key=lambda nw: -nw[1])}
        shown = [f"{n} {w:.2f}" for n, w in weights.items() if w >= 0.005]
        if len(shown) < len(weights):
            shown.append("others under 0.01")
        source = f"calibrated on {_calibration.CALIBRATION_DATASETS} LCDB datasets"  # steps 1–3 of calibrate_fit.py
        if ensemble.settings.misfit_tilt:
            source += ", lowered for families that miss the points"
        if ensemble.settings.tilt:
            source += ", tilted by within-curve backtests"
        method = (
            f"weighted ensemble of {', '.join(shown)} (weights {source}; points weighted by "
            f"(m/m_max)^{ensemble.settings.size_weight_power:g})"
        )
        g = ensemble.settings.plain_weight if ensemble.plain is not None else 0.0
        if g > 0:
            method += f", geometric mean with the plain least-squares law at weight {g:g}"
        if ensemble.settings.floor_guard:
            method += "; no family below the log-log line through the last point"
        if has_band:
            backtest = "this curve's backtest" if ensemble.backtest_measured else "a typical backtest error (too few points for one)"
            band = (
                f"conformalised quantile regression: its width follows the distance beyond the data, {backtest}, "
                "the families' disagreement with each other and with the plain law, the points' scatter and their "
                f"number, scaled so that {confidence:.0%} bands held the truth on {confidence:.0%} of "
                f"{_calibration.CALIBRATION_CURVES} extrapolations of {_calibration.CALIBRATION_DATASETS} LCDB datasets "
                f"and {_calibration.CALIBRATION_NEURAL_CURVES} neural curves, datasets and tasks resampled"
            )
        else:
            band = "none: n_bootstrap=0"
        return cls(weights, method, band, ensemble, has_band)


def _bootstrap_band_text(interval_method: str) -> str:
    return f"percentile bootstrap of the law ({interval_method}), not calibrated on real curves"


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
    interval_method: str,
    predictor: _Predictor,
    cap: float | None = None,
) -> ScalingLawFit:
    c, beta, gamma = (float(v) for v in params)
    alpha = float(np.exp(np.clip(c - beta * log_ref, -_power_law.EXP_CLIP, _power_law.EXP_CLIP)))
    intervals: dict[str, tuple[float, float]] = {}
    if draws.shape[0]:
        q = (1.0 - conf) / 2.0
        with np.errstate(over="ignore"):
            a_draw = np.exp(np.clip(draws[:, 0] - draws[:, 1] * log_ref, -_power_law.EXP_CLIP, _power_law.EXP_CLIP))
        for name, col in (("alpha", a_draw), ("beta", draws[:, 1]), ("gamma", draws[:, 2])):
            lo, hi = _power_law.quantiles(col[:, None], q)
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
        interval_method=interval_method,
        family_weights=predictor.family_weights,
        method=predictor.method,
        band_method=predictor.band_method,
        fallback=predictor.fallback,
        _log_ref=log_ref,
        _c=c,
        _draws=draws,
        _noise=noise,
        _ensemble=predictor.ensemble,
        _ensemble_band=predictor.ensemble_band,
        _cap=cap,
    )
