"""The public fitting functions: :func:`fit_scaling_law` and its two baselines.

The rules they follow are written out in the docstring of
:mod:`scaling_optuna.fit`; the numerical work lives in the private modules.

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

from scaling_optuna import _checks
from scaling_optuna.errors import UserError
from scaling_optuna.fit import _power_law
from scaling_optuna.fit._band import fit_band
from scaling_optuna.fit._ensemble import CALIBRATED
from scaling_optuna.fit._ensemble import fit_ensemble
from scaling_optuna.fit._ensemble import fit_plain
from scaling_optuna.fit._families import FAMILIES
from scaling_optuna.fit._law import PowerLaw
from scaling_optuna.fit._law import fit_law
from scaling_optuna.fit._noise import PointNoise
from scaling_optuna.fit._predictors import EnsemblePredictor
from scaling_optuna.fit._predictors import LastPoint
from scaling_optuna.fit._predictors import LawPredictor
from scaling_optuna.fit._predictors import Predictor
from scaling_optuna.fit._predictors import bootstrap_band_text
from scaling_optuna.fit._result import ScalingLawFit
from scaling_optuna._checks import make_rng
from scaling_optuna._checks import validate_groups
from scaling_optuna._checks import validate_plateau
from scaling_optuna._checks import validate_value_sd
from scaling_optuna._checks import validate_xy

__all__ = ["FORMS", "fit_least_squares", "fit_log_log_line", "fit_scaling_law"]

FORMS = ("auto", "saturating", "power")
_MIN_SAT_POINTS = 4  # the saturating law has 3 parameters; with 3 points nothing checks it
_RISE_P_VALUE = 0.05  # a curve "rises" when the log-log slope is > 0 at this one-sided level
_PLAIN_PLATEAU_SHARE = 0.95  # a point within 5 % of the best-guess error sits on its plateau (the plateau rule's share)


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
    value_sd: Sequence[float] | np.ndarray | None = None,
) -> ScalingLawFit:
    """Fit a learning curve: the law ``alpha·m^beta + gamma`` and a calibrated predictor.

    ``sizes`` are positive training-set sizes (any order, no duplicates),
    ``values`` positive metric values (test error, loss, parameter count...).
    ``form`` is the law's form, ``"auto"``, ``"saturating"`` or ``"power"``;
    with ``"auto"`` the predictions come from the calibrated ensemble of curve
    families (unless the curve clearly rises), with an explicit form from that
    law.  ``plateau`` is the best-guess error (e.g. 0.9 for 10 balanced
    classes): it marks the small-data plateau and caps every prediction.
    ``groups``: optional per-size arrays of alternative values (e.g. the
    top-k trials) resampled by the law's bootstrap.  ``value_sd``: the
    standard error of each value (same units; e.g. from repeated runs), which
    widens every band.  ``n_bootstrap=0`` gives point estimates only.  Raises
    :class:`UserError` for bad input.

    Example::

        fit = fit_scaling_law([256, 512, 1024, 2048, 4096, 8192],
                              [0.41, 0.33, 0.27, 0.23, 0.20, 0.18])
        print(fit, fit.method, fit.band_method, sep="\\n")
        print(fit.predict([81920]).mean, fit.data_needed(0.15).message)
    """
    m, y, order = validate_xy(sizes, values)
    form = _checks.choice(form, "form", FORMS)
    n_boot = _checks.count(n_bootstrap, "n_bootstrap")
    conf = _checks.fraction(confidence, "confidence")
    rng = make_rng(seed)
    group_devs = validate_groups(groups, len(m), order) if groups is not None else None
    log_var = validate_value_sd(value_sd, y, order) if value_sd is not None else None
    decreasing = _power_law.ols_slope(np.log(m), np.log(y)) <= 0.0
    plateau_v = validate_plateau(plateau, y, decreasing)
    with np.errstate(all="ignore"):  # every result is checked for finiteness
        _check_form(form, m, y, decreasing)
        n_ex, reason = _power_law.detect_plateau(m, y, plateau_v, decreasing, _MIN_SAT_POINTS if form == "saturating" else 3)
        mu, yu = m[n_ex:], y[n_ex:]
        law, scores = fit_law(
            mu, yu, form=form, n_bootstrap=n_boot, rng=rng, confidence=conf,
            group_devs=None if group_devs is None else group_devs[n_ex:],
        )
        predictor = _predictor(form, law, (m, y), n_ex, plateau_v, n_boot > 0)
    return ScalingLawFit(
        law, predictor, _floats(mu), _floats(yu), _floats(m[:n_ex]), _floats(y[:n_ex]), reason, n_boot, scores,
        None if log_var is None else PointNoise(np.log(mu), log_var[n_ex:]),
    )


def _check_form(form: str, m: np.ndarray, y: np.ndarray, decreasing: bool) -> None:
    if form == "saturating" and not decreasing:
        raise UserError(
            "form='saturating' needs a curve that decreases with size, but this one increases "
            f"(log-log slope {_power_law.ols_slope(np.log(m), np.log(y)):+.3g}): use form='power' for increasing laws"
        )
    if form == "saturating" and len(m) < _MIN_SAT_POINTS:
        raise UserError(f"form='saturating' needs at least {_MIN_SAT_POINTS} sizes, got {len(m)}: add sizes or use form='power'")


def _predictor(form: str, law: PowerLaw, curve: tuple[np.ndarray, np.ndarray], n_ex: int, cap: float | None, band: bool) -> Predictor:
    """What predicts: the law when asked for, when the curve rises or is too short for any family; else the ensemble."""
    m, y = curve
    mu, yu = m[n_ex:], y[n_ex:]
    band_text = bootstrap_band_text(law.interval_method) if law.draws.shape[0] else "none: n_bootstrap=0"
    if form != "auto":
        return LawPredictor(law, f"form={form!r} asked for", cap, band_text)
    if _power_law.rises(np.log(mu), np.log(yu), _RISE_P_VALUE):
        return LawPredictor(law, "the curve rises with size, so the calibrated ensemble of falling curves does not apply", cap, band_text)
    if not any(len(mu) >= FAMILIES[f].min_points for f, w in CALIBRATED.weights.items() if w > 0):
        return LawPredictor(law, "too few points for any curve family of the ensemble", cap, band_text)
    # The plain law the ensemble leans on is fitted to every point off the best-guess plateau, as the baseline is.
    off = y < _PLAIN_PLATEAU_SHARE * cap if cap is not None else np.ones(len(y), dtype=bool)
    plain = fit_plain(m[off], y[off]) if off.sum() >= 3 else fit_plain(mu, yu)
    ensemble = fit_ensemble(mu, yu, cap=cap, plain=plain)
    if ensemble is None:
        return LastPoint(mu, yu)
    return EnsemblePredictor(ensemble, fit_band(ensemble, mu, yu) if band else None)


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
    m, y, _ = validate_xy(sizes, values)
    n_boot = _checks.count(n_bootstrap, "n_bootstrap")
    conf = _checks.fraction(confidence, "confidence")
    rng = make_rng(seed)
    with np.errstate(all="ignore"):
        log_ref = float(np.mean(np.log(m)))
        lx, ly = np.log(m) - log_ref, np.log(y)
        params, sse = _power_law.fit_point("saturating", lx, ly)
        dof = len(m) - 3
        resid_std = math.sqrt(max(sse, 0.0) / dof) if dof > 0 else 0.0
        law = PowerLaw("saturating", float(params[0]), float(params[1]), min(float(params[2]), float(y.min())), log_ref, resid_std, conf)
        if n_boot > 0 and dof > 0:
            draws = _power_law.fit_batch("saturating", lx, _power_law.residual_bootstrap(lx, ly, params, dof, n_boot, rng), start=params)
            law = _with_draws(law, draws, resid_std * rng.standard_t(dof, size=n_boot), "residual-bootstrap")
    band = bootstrap_band_text(law.interval_method) if law.draws.shape[0] else (
        "none: " + ("n_bootstrap=0" if n_boot == 0 else "3 points leave no residuals to resample")
    )
    why = "least-squares fit in log space over every point, 0 ≤ γ ≤ min(y): the baseline"
    return ScalingLawFit(law, LawPredictor(law, why, None, band), _floats(m), _floats(y), n_bootstrap=n_boot, form_scores={})


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
    m, y, _ = validate_xy(sizes, values)
    conf = _checks.fraction(confidence, "confidence")
    n_draws = _checks.count(n_draws, "n_draws")
    rng = make_rng(seed)
    log_ref = float(np.mean(np.log(m)))
    lx = np.log(m) - log_ref
    params, sse = _power_law.fit_point("power", lx, np.log(y))
    dof = len(m) - 2
    resid_std = math.sqrt(sse / dof)
    law = PowerLaw("power", float(params[0]), float(params[1]), 0.0, log_ref, resid_std, conf)
    if n_draws > 0:
        # Centred design: c and beta are independent with variances s²/n and s²/Σx².
        scale = resid_std * np.sqrt(dof / rng.chisquare(dof, size=n_draws))
        z = rng.standard_normal((n_draws, 2))
        draws = np.column_stack([
            params[0] + scale * z[:, 0] / math.sqrt(len(m)), params[1] + scale * z[:, 1] / math.sqrt(float(np.sum(lx**2))),
            np.zeros(n_draws),
        ])
        law = _with_draws(law, draws, resid_std * rng.standard_t(dof, size=n_draws), "ols-t")
    band = "Student-t intervals of ordinary least squares, not calibrated" if n_draws else "none: n_draws=0"
    why = "straight line in log-log space through every point, ordinary least squares: the naive baseline"
    return ScalingLawFit(law, LawPredictor(law, why, None, band), _floats(m), _floats(y), form_scores={})


def _with_draws(law: PowerLaw, draws: np.ndarray, noise: np.ndarray, method: str) -> PowerLaw:
    return PowerLaw(law.form, law.c, law.beta, law.gamma, law.log_ref, law.residual_std, law.confidence, method, draws, noise)


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
