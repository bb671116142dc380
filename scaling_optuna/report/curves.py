"""The report's fits: one :class:`~scaling_optuna.report.records.Curve` per metric, and the target answer.

This is the only module of the report that calls the fit
(:func:`~scaling_optuna.fit.fit_scaling_law` and
:func:`~scaling_optuna.fit.fit_log_log_line`). The tuned curve is
fitted to the best trial of every size, the untuned curve to every size's
baseline trial; the backtest refits without the largest one and two sizes and
predicts them, next to a naive straight line in log-log space.

Two bands: the 2×/10× predictions carry the band of the *curve* (where the
mean over many runs lies); the backtest judges a *measured* value, one
training run on a finite test set, by the band for a measurement: the curve
band widened by the run-to-run scatter of the fitted points and, for the test
error of a store that records its ``test_size``, the test set's binomial
noise (:meth:`~scaling_optuna.fit.ScalingLawFit.predict`).

Example::

    from scaling_optuna.report.curves import fit_curve, target_answer
    from scaling_optuna.report.rows import size_rows

    warnings = []
    curve = fit_curve(size_rows(exp), "test_error", plateau=0.9, warnings=warnings)
    print(curve.fit, curve.predictions[0].mean, target_answer(curve, 0.05).message)
"""

from __future__ import annotations

import math
from typing import Any, Sequence



from scaling_optuna import _checks
from scaling_optuna.errors import UserError
from scaling_optuna.fit import ScalingLawFit
from scaling_optuna.fit import point_sd
from scaling_optuna.fit import fit_least_squares
from scaling_optuna.fit import fit_log_log_line
from scaling_optuna.fit import fit_scaling_law
from scaling_optuna.report._format import count
from scaling_optuna.report._format import edges
from scaling_optuna.report.records import Backtest
from scaling_optuna.report.records import BacktestPoint
from scaling_optuna.report.records import Curve
from scaling_optuna.report.records import Extrapolation
from scaling_optuna.report.records import LABELS
from scaling_optuna.report.records import SizeRow
from scaling_optuna.report.records import TargetAnswer
from scaling_optuna.report.records import finite
from scaling_optuna.report.records import usable
from scaling_optuna.report.rows import GOOD_TRIAL_TOLERANCE

__all__ = [
    "BOOTSTRAP_CHOICES",
    "MULTIPLES",
    "fit_curve",
    "fit_numbers",
    "measurement_band_text",
    "target_answer",
    "validate_target",
]

MULTIPLES = (2, 10)
MIN_SIZES = 3
BOOTSTRAP_CHOICES = ("points", "trials")


def fit_curve(
    rows: Sequence[SizeRow],
    metric: str,
    *,
    plateau: float | None,
    warnings: list[str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    bootstrap: str = "points",
    test_size: int | None = None,
) -> Curve:
    """Fit ``metric`` ("test_error", "test_loss" or "n_params") of the best trial per size.

    Points a log-scale fit cannot use, and a curve that rises with data, add
    a line to ``warnings``; too few sizes or a failed fit give a curve without
    ``fit`` and the reason in ``message``.  ``test_size`` (the number of test
    examples) adds the test set's binomial noise to the backtest's band for a
    measured test error.
    """
    sizes, values, spreads = _best_points(rows, metric, warnings)
    groups = spreads if bootstrap == "trials" and metric != "n_params" and _has_spread(spreads) else None
    intervals_from = _intervals_from(groups)
    if len(sizes) < MIN_SIZES:
        return Curve(metric, tuple(sizes), tuple(values), None, _too_few(metric, sizes), intervals_from)
    options = dict(form="power" if metric == "n_params" else "auto", plateau=plateau, n_bootstrap=n_bootstrap, seed=seed)
    noise_test_size = test_size if metric == "test_error" else None
    value_sd = None if metric == "n_params" else _point_sds(rows, metric, sizes, noise_test_size)
    fit, message = _try_fit(sizes, values, groups, value_sd=value_sd, **options)
    _warn_if_rising(fit, metric, warnings)
    baseline_sizes, baseline_values, baseline_fit, baseline_message, baseline_sd = _baseline_with_sds(
        rows, metric, options, noise_test_size
    )
    has_backtests = fit is not None and metric != "n_params"
    backtests = _backtests(sizes, values, groups, value_sd, options, noise_test_size) if has_backtests else ()
    return Curve(
        metric=metric,
        sizes=tuple(sizes),
        values=tuple(values),
        fit=fit,
        message=message,
        intervals_from=intervals_from,
        baseline_sizes=baseline_sizes,
        baseline_values=baseline_values,
        baseline_fit=baseline_fit,
        baseline_message=baseline_message,
        naive=_try_naive(sizes, values),
        predictions=_predictions(fit),
        backtests=backtests,
        backtest_band=measurement_band_text(metric, noise_test_size) if backtests else "",
        value_sd=tuple(value_sd or ()),
        baseline_value_sd=tuple(baseline_sd),
    )


def _warn_if_rising(fit: ScalingLawFit | None, metric: str, warnings: list[str]) -> None:
    """Add a warning for a fitted error or loss that grows with data: its runs are suspect, not the law."""
    if fit is not None and metric != "n_params" and fit.beta > 0:
        warnings.append(
            f"{LABELS[metric]} grows with the training-set size (β={fit.beta:.3g}): more data should not hurt, "
            "so check the runs (too few trials per size? a trainer setting?) before trusting any extrapolation"
        )


def _baseline_with_sds(
    rows: Sequence[SizeRow], metric: str, options: dict[str, Any], test_size: int | None
) -> tuple[tuple[int, ...], tuple[float, ...], ScalingLawFit | None, str, list[float]]:
    """:func:`_baseline`'s sizes, values, fit and message, and its points' standard errors.

    Empty for the parameter count, which the report fits for the tuned models only.
    """
    if metric == "n_params":
        return (), (), None, "", []
    sizes, values, fit, message = _baseline(rows, metric, options, test_size)
    sds = _point_sds(rows, metric, sizes, test_size, baseline=True) if sizes else []
    return sizes, values, fit, message, sds


def measurement_band_text(metric: str, test_size: int | None) -> str:
    """What the backtest's band for a measured value is made of, in words.

    Example::

        >>> measurement_band_text("test_error", 359)[:38]
        'the band for one measurement (the curv'
    """
    text = "the band for one measurement (the curve's band widened by the run-to-run scatter of the fitted points"
    if test_size is not None:
        return text + f" and the binomial noise of a test error on {count(test_size)} test examples)"
    if metric == "test_error":
        return text + "; the store does not record the test-set size, so the test set's binomial noise is left out)"
    return text + ")"


def fit_numbers(
    sizes: Sequence[float], values: Sequence[float], *, form: str = "auto", plateau: float | None = None, n_bootstrap: int = 1000
) -> Curve:
    """A learning curve given as numbers, fitted like the report's test error (without baseline or backtest).

    Raises:
        UserError: bad sizes, values, plateau or form (see :func:`~scaling_optuna.fit.fit_scaling_law`).
    """
    fit = fit_scaling_law(sizes, values, form=form, plateau=plateau, n_bootstrap=n_bootstrap)
    naive = _try_naive(fit.sizes_used + fit.sizes_excluded, fit.values_used + fit.values_excluded)
    return Curve("test_error", tuple(sizes), tuple(values), fit, "", "", naive=naive, predictions=_predictions(fit))


def validate_target(target: Any, *, error: bool = True, majority_error: float | None = None) -> float | None:
    """A target as a float, or ``None``: a test error in (0, 1) below the majority-class error (when known),
    or with ``error=False`` any positive value.

    Raises:
        UserError: ``target`` is not a number, or out of range (an accuracy given for an error among them).

    Example::

        >>> validate_target(0.05), validate_target(None)
        (0.05, None)
    """
    if target is None:
        return None
    if error:
        return _checks.error_target(target, "target", majority_error=majority_error)
    return _checks.positive_number(target, "target")


def target_answer(curve: Curve, target: float) -> TargetAnswer:
    """How much data the tuned and the untuned ``curve`` need to reach ``target``, in numbers and in words."""
    tuned = curve.fit.data_needed(target) if curve.fit is not None else None
    baseline = curve.baseline_fit.data_needed(target) if curve.baseline_fit is not None else None
    message = _tuned_answer(curve, target, tuned)
    if baseline is not None:
        message += "; the untuned model " + (
            f"would need about {count(baseline.size)}" if baseline.reachable else "never reaches it"
        )
    return TargetAnswer(target, tuned, baseline, message)


def _tuned_answer(curve: Curve, target: float, tuned: Any) -> str:
    if tuned is None:
        return f"target test error {target:g}: no fit yet ({curve.message})"
    fit = curve.fit
    if fit.beta >= 0:
        return (
            f"test error {target:g}: the tuned curve does not fall with more data (β={fit.beta:.3g}), "
            "so the report cannot say how much data reaches it"
        )
    if not tuned.reachable or tuned.already:
        return tuned.message
    message = f"to reach test error {target:g} the tuned model needs about {count(tuned.size)} examples"
    if math.isfinite(tuned.lower) or math.isfinite(tuned.upper):
        message += f" ({fit.confidence:.0%} interval {count(tuned.lower)}–{count(tuned.upper)}{edges(tuned.lower, tuned.upper, ', ')})"
        why = fit.band_reasons(tuned.size)
        if why:
            message += f", a band this wide because: {why}"
    if tuned.fraction_unreachable > 0:
        message += f"; about {tuned.fraction_unreachable:.0%} of the band's curves never reach it"
    return message


def _best_points(
    rows: Sequence[SizeRow], metric: str, warnings: list[str]
) -> tuple[list[int], list[float], list[list[float]]]:
    """The sizes and best values a log-scale fit can use, with each size's near-best values."""
    sizes: list[int] = []
    values: list[float] = []
    spreads: list[list[float]] = []
    for row in rows:
        if row.best is None:
            continue
        value = finite(row.best.metric(metric))
        if value is None or value <= 0:
            # A log-log fit cannot use 0 (a perfect test set) or a missing value.
            shown = "missing" if value is None else f"{value:g}"
            warnings.append(
                f"size {row.size}: best trial {row.best.trial_number} has {LABELS[metric]} {shown}, "
                "which a log-scale fit cannot use; left out of the fit"
            )
            continue
        sizes.append(row.size)
        values.append(value)
        near = [v for r in row.near_best if (v := usable(r.metric(metric))) is not None]
        spreads.append(near or [value])
    return sizes, values, spreads


def _point_sds(rows: Sequence[SizeRow], metric: str, sizes: Sequence[int], test_size: int | None, *, baseline: bool = False) -> list[float]:
    """Each fitted point's standard error as a measure of its size: its runs, the choice among configurations,
    the test set (:func:`~scaling_optuna.fit.point_sd`)."""
    by_size = {row.size: row for row in rows}
    values, runs, run_sd, gaps = [], [], [], []
    for size in sizes:
        row = by_size[size]
        chosen = row.baseline if baseline else row.best
        values.append(float(chosen.metric(metric)))
        runs.append(getattr(chosen, "runs", 1))
        run_sd.append(finite(getattr(chosen, f"{metric}_sd", None)) or math.nan)
        rival = None if baseline else next((r for r in row.near_best if r.trial_number != chosen.trial_number), None)
        rival_value = usable(rival.metric(metric)) if rival is not None else None
        gaps.append(math.log(values[-1] / rival_value) if rival_value else math.nan)
    return list(point_sd(values, runs=runs, run_sd=run_sd, rival_gap=gaps, test_size=test_size))


def _has_spread(groups: Sequence[Sequence[float]]) -> bool:
    return any(len(g) >= 2 for g in groups)


def _intervals_from(groups: list[list[float]] | None) -> str:
    if groups is None:
        return "bootstrap over the fitted points (residuals)"
    return (
        f"bootstrap over the near-best trials of each size (up to {max(len(g) for g in groups)} per size, "
        f"validation loss within {GOOD_TRIAL_TOLERANCE:.0%} of the best)"
    )


def _too_few(metric: str, sizes: Sequence[int]) -> str:
    have = f"have {len(sizes)}" + (f" ({', '.join(map(str, sizes))})" if sizes else "")
    return (
        f"need finished trials at {MIN_SIZES} or more sizes to fit a scaling law for {LABELS[metric]}; "
        f"{have}: let the workers finish, or add sizes to the spec"
    )


def _baseline(
    rows: Sequence[SizeRow], metric: str, options: dict[str, Any], test_size: int | None
) -> tuple[tuple[int, ...], tuple[float, ...], ScalingLawFit | None, str]:
    """The untuned default model's points and curve (sizes, values, fit, message)."""
    points = [(row.size, v) for row in rows if row.baseline is not None and (v := usable(row.baseline.metric(metric)))]
    sizes = tuple(s for s, _ in points)
    values = tuple(v for _, v in points)
    if len(sizes) < MIN_SIZES:
        return sizes, values, None, f"the untuned baseline has finished at {len(sizes)} size(s); its curve needs {MIN_SIZES}"
    value_sd = _point_sds(rows, metric, sizes, test_size, baseline=True)
    fit, message = _try_fit(sizes, values, None, value_sd=value_sd, **options)
    return sizes, values, fit, message


def _predictions(fit: ScalingLawFit | None) -> tuple[Extrapolation, ...]:
    if fit is None:
        return ()
    largest = max(fit.sizes_used)
    pred = fit.predict([k * largest for k in MULTIPLES])
    return tuple(
        Extrapolation(float(k), float(s), float(m), float(lo), float(hi), fit.band_reasons(s))
        for k, s, m, lo, hi in zip(MULTIPLES, pred.sizes, pred.mean, pred.lower, pred.upper)
    )


def _backtests(
    sizes: list[int], values: list[float], groups: list[list[float]] | None, value_sd: list[float] | None,
    options: dict[str, Any], test_size: int | None,
) -> tuple[Backtest, ...]:
    """Refit without the largest one and two sizes (while 3 remain) and predict them."""
    out = []
    for held_out in (1, 2):
        keep = len(sizes) - held_out
        if keep < MIN_SIZES:
            break
        kept_groups = groups[:keep] if groups is not None and _has_spread(groups[:keep]) else None
        kept = dict(options, groups=kept_groups, value_sd=None if value_sd is None else value_sd[:keep])
        out.append(_backtest(held_out, sizes[:keep], values[:keep], sizes[keep:], values[keep:], kept, test_size))
    return tuple(out)


def _backtest(
    held_out: int,
    sizes: list[int],
    values: list[float],
    held_sizes: list[int],
    held_values: list[float],
    options: dict[str, Any],
    test_size: int | None,
) -> Backtest:
    fit, message = _try_fit(sizes, values, **options)
    if fit is None:
        return Backtest(held_out, tuple(sizes), (), None, message)
    curve = fit.predict(held_sizes)
    # A held-out value is one measurement, not the mean curve: judge it by the band for a measurement.
    measured = fit.predict(held_sizes, include_noise=True, test_size=test_size)
    naive = _baseline_means(_try_naive(sizes, values), held_sizes)
    least_squares = _baseline_means(_try_least_squares(sizes, values), held_sizes)
    points = tuple(
        BacktestPoint(int(s), float(a), float(m), float(lo), float(hi), n, q, float(clo), float(chi))
        for s, a, m, lo, hi, n, q, clo, chi in zip(
            held_sizes, held_values, measured.mean, measured.lower, measured.upper, naive, least_squares, curve.lower, curve.upper
        )
    )
    return Backtest(held_out, tuple(sizes), points, fit)


def _baseline_means(fit: ScalingLawFit | None, sizes: Sequence[float]) -> list[float | None]:
    return [float(v) for v in fit.predict(sizes).mean] if fit is not None else [None] * len(sizes)


def _try_fit(sizes: Sequence[float], values: Sequence[float], groups: list[list[float]] | None = None, **options: Any) -> tuple[ScalingLawFit | None, str]:
    try:
        return fit_scaling_law(sizes, values, groups=groups, **options), ""
    except UserError as e:
        return None, f"no fit: {e}"


def _try_naive(sizes: Sequence[float], values: Sequence[float]) -> ScalingLawFit | None:
    try:
        return fit_log_log_line(sizes, values)
    except UserError:
        return None


def _try_least_squares(sizes: Sequence[float], values: Sequence[float]) -> ScalingLawFit | None:
    try:
        return fit_least_squares(sizes, values, n_bootstrap=0)
    except UserError:
        return None
