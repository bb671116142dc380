"""The report of an experiment: where the learning curve is, and what more data buys.

For every size the best trial by validation loss is taken (the test set is
never used to select), and the power law ε(m) ≈ α·m^β + γ is fitted to its test
error and test loss against the training-set size, with bootstrap intervals
(:func:`scaling_optuna.scaling_law.fit_scaling_law`). The report answers "at
this size we are here; with 2× and 10× the data we would be there; to reach a
target error we need about N examples (between N1 and N2)", and shows how far
that can be trusted: a backtest refits without the largest size(s) and
predicts them. The seed's untuned default model (every study's first trial)
gets its own curve, so the effect of per-size tuning on the exponent is
visible, and the best model's parameter count is fitted against the data size
too (the paper's model-size exponent).

The report reads the store only and works while workers are still running:
sizes without a finished trial are skipped with a warning.

Example::

    import scaling_optuna
    from scaling_optuna.report import build_report, write_report

    exp = scaling_optuna.load_experiment("studies/digits.toml")
    report = build_report(exp, target=0.02)
    print(report.to_text())
    write_report(report, "report-digits")   # report.json and report.html

This module builds the report's numbers and writes them;
:mod:`scaling_optuna.report_render` turns them into text, figures and HTML.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna.errors import UserError
from scaling_optuna.experiment import TrialRecord
from scaling_optuna.experiment import Experiment
from scaling_optuna.experiment import SizeStatus
# Rendering constants, still importable from here for callers that used them.
from scaling_optuna.report_render import METRICS
from scaling_optuna.report_render import PLOT_REACH
from scaling_optuna.report_render import _band
from scaling_optuna.report_render import _count
from scaling_optuna.report_render import _law
from scaling_optuna.report_render import _v
from scaling_optuna.report_render import render_figure
from scaling_optuna.report_render import render_html
from scaling_optuna.report_render import render_markdown
from scaling_optuna.report_render import render_text
from scaling_optuna.fit import DataNeeded
from scaling_optuna.fit import ScalingLawFit
from scaling_optuna.fit import fit_log_log_line
from scaling_optuna.fit import fit_scaling_law
from scaling_optuna.storage import mask_url

__all__ = [
    "Backtest",
    "BacktestPoint",
    "Curve",
    "Extrapolation",
    "Report",
    "SizeRow",
    "TargetAnswer",
    "TrialPoint",
    "build_report",
    "curve_summary",
    "parse_number",
    "parse_numbers",
    "render_html",
    "validate_target",
    "write_report",
]

_log = logging.getLogger(__name__)

LABELS = {"test_error": "test error", "test_loss": "test loss", "n_params": "parameters of the best model"}
MULTIPLES = (2, 10)
MIN_SIZES = 3
# Trials whose validation loss is within this fraction of the best one's are as good a
# choice as the best given validation noise; their spread is what the bootstrap resamples.
GOOD_TRIAL_TOLERANCE = 0.25
DEFAULT_TOP_K = 3
BOOTSTRAP_CHOICES = ("points", "trials")


@dataclasses.dataclass(frozen=True)
class TrialPoint:
    """One complete trial's numbers, as the plots draw them."""

    size: int
    number: int
    val_loss: float
    test_loss: float | None
    test_error: float | None
    n_params: int | None
    baseline: bool

    def metric(self, name: str) -> float | None:
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class SizeRow:
    """One size: its trial counts, best trial, untuned baseline and near-best trials."""

    status: SizeStatus
    best: TrialRecord | None
    baseline: TrialPoint | None
    good: tuple[TrialPoint, ...]
    trials: tuple[TrialPoint, ...]

    @property
    def size(self) -> int:
        return self.status.size


@dataclasses.dataclass(frozen=True)
class Extrapolation:
    """The fitted curve at ``multiple`` × the largest fitted size."""

    multiple: float
    size: float
    mean: float
    lower: float
    upper: float


@dataclasses.dataclass(frozen=True)
class BacktestPoint:
    """A held-out size: what the refit law predicted, what was measured, and the naive line."""

    size: int
    actual: float
    predicted: float
    lower: float
    upper: float
    naive: float | None

    @property
    def error(self) -> float:
        """Relative error of the prediction (predicted / actual − 1)."""
        return self.predicted / self.actual - 1.0

    @property
    def naive_error(self) -> float | None:
        return None if self.naive is None else self.naive / self.actual - 1.0

    @property
    def inside(self) -> bool | None:
        """Whether the measured value lies in the band (``None`` without a band)."""
        if math.isnan(self.lower) or math.isnan(self.upper):
            return None
        return bool(self.lower <= self.actual <= self.upper)


@dataclasses.dataclass(frozen=True)
class Backtest:
    """The law refitted without the ``held_out`` largest sizes, predicting them."""

    held_out: int
    fitted_sizes: tuple[int, ...]
    points: tuple[BacktestPoint, ...]
    fit: ScalingLawFit | None
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Curve:
    """One metric against size: the tuned fit, the untuned baseline, predictions and backtests."""

    metric: str
    sizes: tuple[int, ...]
    values: tuple[float, ...]
    fit: ScalingLawFit | None
    message: str
    intervals_from: str
    baseline_sizes: tuple[int, ...] = ()
    baseline_values: tuple[float, ...] = ()
    baseline_fit: ScalingLawFit | None = None
    baseline_message: str = ""
    naive: ScalingLawFit | None = None
    predictions: tuple[Extrapolation, ...] = ()
    backtests: tuple[Backtest, ...] = ()

    @property
    def label(self) -> str:
        return LABELS[self.metric]


@dataclasses.dataclass(frozen=True)
class TargetAnswer:
    """How much data the tuned (and the untuned) curve needs to reach a target test error."""

    target: float
    tuned: DataNeeded | None
    baseline: DataNeeded | None
    message: str


@dataclasses.dataclass
class Report:
    """Everything the report shows. Build it with :func:`build_report`.

    Example::

        report = build_report(exp)
        report.to_dict()["fits"]["test_error"]["tuned"]["beta"]
    """

    experiment: str
    spec_path: str | None
    storage: str
    generated_at: str
    dataset: str | None
    model: str | None
    majority_error: float | None
    rows: list[SizeRow]
    curves: dict[str, Curve]
    target: TargetAnswer | None
    warnings: list[str]
    dashboard: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The content of ``report.json``: JSON-serialisable (inf as ``"inf"``, NaN as ``None``)."""
        return {
            "experiment": self.experiment,
            "spec": self.spec_path,
            "storage": self.storage,
            "generated_at": self.generated_at,
            "dataset": self.dataset,
            "model": self.model,
            "majority_error": _j(self.majority_error),
            "selection": "best trial of each size by validation loss; the test set is never used to select",
            "sizes": [_row_dict(r) for r in self.rows],
            "fits": {name: _curve_dict(c) for name, c in self.curves.items()},
            "target": _target_dict(self.target),
            "warnings": list(self.warnings),
            "dashboard": self.dashboard,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_text(self) -> str:
        """The terminal report: the table, the fitted laws, predictions and the backtest."""
        return render_text(self)

    def to_html(self) -> str:
        """A self-contained page (plotly embedded inline) that works offline."""
        return render_html(self)

    def to_markdown(self) -> str:
        """A short Markdown summary (the note published into optuna-dashboard)."""
        return render_markdown(self)

    def figure(self, metric: str):
        """The plotly figure of ``metric`` ("test_error", "test_loss" or "n_params") against size."""
        if metric not in self.curves:
            raise UserError(f"unknown metric {metric!r}: use one of {', '.join(self.curves)}")
        return render_figure(self, self.curves[metric])


def build_report(
    experiment: Experiment,
    *,
    target: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    top_k: int = DEFAULT_TOP_K,
    bootstrap: str = "points",
) -> Report:
    """Read the experiment's studies and fit its scaling laws.

    ``target`` is a test error (e.g. 0.02) the report says how much data
    reaches. ``bootstrap`` picks what the intervals resample: ``"points"``
    (default), the residuals of the fitted points; ``"trials"``, the spread of
    the ``top_k`` near-best trials of each size (validation loss within 25 % of
    the best), falling back to points where no size has two such trials. On
    the project's own digits and mnist1d curves the trial spread alone misses
    the curve's lack of fit: its bands held the measured value of a held-out
    size 2 times in 12, the points bootstrap 17 in 24 (BENCHMARKS.md).

    Raises:
        UserError: a bad ``target``, ``top_k``, ``n_bootstrap`` or ``bootstrap``.

    Example::

        report = build_report(exp, target=0.05)
        print(report.curves["test_error"].fit)
    """
    target_value = validate_target(target)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise UserError(f"top_k must be a positive integer (e.g. 3), got {top_k!r}")
    if bootstrap not in BOOTSTRAP_CHOICES:
        raise UserError(f"bootstrap must be one of {', '.join(BOOTSTRAP_CHOICES)}, got {bootstrap!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise UserError(f"n_bootstrap must be a non-negative integer (e.g. 1000), got {n_bootstrap!r}")

    warnings: list[str] = []
    rows = [_size_row(experiment, status, top_k) for status in experiment.status()]
    for row in rows:
        if row.best is None:
            s = row.status
            warnings.append(
                f"size {row.size}: no finished trial yet ({s.running} running, {s.waiting} waiting, "
                f"{s.pruned} pruned, {s.failed} failed); skipped"
            )
    attrs = _study_attrs(experiment)
    majority = attrs.get("majority_error")
    majority = float(majority) if isinstance(majority, (int, float)) and majority > 0 else None

    options = dict(n_bootstrap=n_bootstrap, seed=seed, bootstrap=bootstrap)
    curves = {
        "test_error": _curve(rows, "test_error", plateau=majority, warnings=warnings, **options),
        "test_loss": _curve(rows, "test_loss", plateau=None, warnings=warnings, **options),
        "n_params": _curve(rows, "n_params", plateau=None, warnings=warnings, **options),
    }
    answer = _target_answer(curves["test_error"], target_value) if target_value is not None else None
    for message in warnings:
        _log.warning(message)
    return Report(
        experiment=experiment.spec.name,
        spec_path=experiment.spec.path,
        storage=mask_url(experiment.storage_url),
        generated_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        dataset=attrs.get("dataset"),
        model=attrs.get("model"),
        majority_error=majority,
        rows=rows,
        curves=curves,
        target=answer,
        warnings=warnings,
    )


def validate_target(target: Any, *, error: bool = True) -> float | None:
    """A target as a float, or ``None``: a test error in (0, 1), or with ``error=False`` any positive value.

    Raises:
        UserError: ``target`` is not a number, or out of range.
    """
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, (int, float, np.integer, np.floating)):
        raise UserError(f"target must be a number such as 0.05, got {target!r}")
    value = float(target)
    if error and not (math.isfinite(value) and 0.0 < value < 1.0):
        raise UserError(f"target {value:g} is not a test error strictly between 0 and 1: pass e.g. 0.05 for 5%")
    if not (math.isfinite(value) and value > 0.0):
        raise UserError(f"target {value:g} must be a positive finite number, e.g. 0.05")
    return value


def write_report(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (created if missing).

    Example::

        json_path, html_path = write_report(report, "report-digits")
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; pass a folder for report.json and report.html")
    try:
        out.mkdir(parents=True, exist_ok=True)
        json_path, html_path = out / "report.json", out / "report.html"
        json_path.write_text(report.to_json() + "\n", encoding="utf-8")
        html_path.write_text(render_html(report), encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the report into {out}: {e.strerror or e}; pass another --out folder") from None
    return json_path, html_path


# ---------------------------------------------------------------------------
# Reading the store
# ---------------------------------------------------------------------------


def _study_attrs(experiment: Experiment) -> dict[str, Any]:
    # Every study of an experiment carries the same dataset attributes; the largest one is as good as any.
    return dict(experiment.studies[experiment.sizes[-1]].user_attrs) if experiment.sizes else {}


def _size_row(experiment: Experiment, status: SizeStatus, top_k: int) -> SizeRow:
    trials = [_point(status.size, t) for t in experiment.trials(status.size, (TrialState.COMPLETE,))]
    trials.sort(key=lambda p: (p.val_loss, p.number))
    best = experiment.best_trial(status.size)
    baseline = next((p for p in trials if p.baseline), None)
    good = tuple(
        p for p in trials[:top_k] if trials and p.val_loss <= trials[0].val_loss * (1.0 + GOOD_TRIAL_TOLERANCE)
    )
    return SizeRow(status=status, best=best, baseline=baseline, good=good, trials=tuple(trials))


def _point(size: int, trial: FrozenTrial) -> TrialPoint:
    attrs = trial.user_attrs
    return TrialPoint(
        size=size,
        number=trial.number,
        val_loss=float(trial.value),
        test_loss=_positive(attrs.get("test_loss")),
        test_error=_finite(attrs.get("test_error")),
        n_params=attrs.get("n_params"),
        baseline=bool(attrs.get("baseline", False)),
    )


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _positive(value: Any) -> float | None:
    v = _finite(value)
    return v if v is not None and v > 0 else None


# ---------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------


def _best_value(row: SizeRow, metric: str) -> float | None:
    if row.best is None:
        return None
    return _finite(getattr(row.best, metric))


def _curve(
    rows: list[SizeRow],
    metric: str,
    *,
    plateau: float | None,
    warnings: list[str],
    n_bootstrap: int,
    seed: int,
    bootstrap: str,
) -> Curve:
    label = LABELS[metric]
    sizes: list[int] = []
    values: list[float] = []
    groups: list[list[float]] = []
    for row in rows:
        value = _best_value(row, metric)
        if row.best is None:
            continue
        if value is None or value <= 0:
            # A log-log fit cannot use 0 (a perfect test set) or a missing value.
            shown = "missing" if value is None else f"{value:g}"
            warnings.append(
                f"size {row.size}: best trial {row.best.trial_number} has {label} {shown}, "
                "which a log-scale fit cannot use; left out of the fit"
            )
            continue
        sizes.append(row.size)
        values.append(value)
        group = [v for p in row.good if (v := p.metric(metric)) is not None and v > 0]
        groups.append(group or [value])

    use_groups = _use_groups(groups, bootstrap) and metric != "n_params"
    intervals_from = (
        f"bootstrap over the near-best trials of each size (up to {max(len(g) for g in groups)} per size, "
        f"validation loss within {GOOD_TRIAL_TOLERANCE:.0%} of the best)"
        if use_groups
        else "bootstrap over the fitted points (residuals)"
    )
    if len(sizes) < MIN_SIZES:
        message = (
            f"need finished trials at {MIN_SIZES} or more sizes to fit a scaling law for {label}; "
            f"have {len(sizes)}" + (f" ({', '.join(map(str, sizes))})" if sizes else "")
            + ": let the workers finish, or add sizes to the spec"
        )
        return Curve(metric, tuple(sizes), tuple(values), None, message, intervals_from)

    form = "power" if metric == "n_params" else "auto"
    fit_options = dict(form=form, plateau=plateau, n_bootstrap=n_bootstrap, seed=seed)
    fit, message = _try_fit(sizes, values, groups if use_groups else None, **fit_options)
    naive = _try_naive(sizes, values)
    if fit is not None and metric != "n_params" and fit.beta > 0:
        warnings.append(
            f"{label} grows with the training-set size (β={fit.beta:.3g}): more data should not hurt, "
            "so check the runs (too few trials per size? a trainer setting?) before trusting any extrapolation"
        )

    baseline_sizes: list[int] = []
    baseline_values: list[float] = []
    baseline_fit, baseline_message = None, ""
    if metric != "n_params":
        for row in rows:
            v = None if row.baseline is None else row.baseline.metric(metric)
            if v is not None and v > 0:
                baseline_sizes.append(row.size)
                baseline_values.append(v)
        if len(baseline_sizes) >= MIN_SIZES:
            baseline_fit, baseline_message = _try_fit(baseline_sizes, baseline_values, None, **fit_options)
        else:
            baseline_message = (
                f"the untuned baseline has finished at {len(baseline_sizes)} size(s); "
                f"its curve needs {MIN_SIZES}"
            )

    predictions: tuple[Extrapolation, ...] = ()
    backtests: tuple[Backtest, ...] = ()
    if fit is not None:
        largest = max(fit.sizes_used)
        pred = fit.predict([k * largest for k in MULTIPLES])
        predictions = tuple(
            Extrapolation(float(k), float(s), float(m), float(lo), float(hi))
            for k, s, m, lo, hi in zip(MULTIPLES, pred.sizes, pred.mean, pred.lower, pred.upper)
        )
        if metric != "n_params":
            backtests = _backtests(sizes, values, groups if use_groups else None, fit_options)
    return Curve(
        metric=metric,
        sizes=tuple(sizes),
        values=tuple(values),
        fit=fit,
        message=message,
        intervals_from=intervals_from,
        baseline_sizes=tuple(baseline_sizes),
        baseline_values=tuple(baseline_values),
        baseline_fit=baseline_fit,
        baseline_message=baseline_message,
        naive=naive,
        predictions=predictions,
        backtests=backtests,
    )


def _use_groups(groups: list[list[float]], bootstrap: str) -> bool:
    return bootstrap == "trials" and any(len(g) >= 2 for g in groups)


def _try_fit(
    sizes: Sequence[float], values: Sequence[float], groups: list[list[float]] | None, **options: Any
) -> tuple[ScalingLawFit | None, str]:
    try:
        return fit_scaling_law(sizes, values, groups=groups, **options), ""
    except UserError as e:
        return None, f"no fit: {e}"


def _try_naive(sizes: Sequence[float], values: Sequence[float]) -> ScalingLawFit | None:
    try:
        return fit_log_log_line(sizes, values)
    except UserError:
        return None


def _backtests(
    sizes: list[int], values: list[float], groups: list[list[float]] | None, options: dict[str, Any]
) -> tuple[Backtest, ...]:
    """Refit without the largest one and two sizes (while 3 remain) and predict them."""
    out = []
    for held_out in (1, 2):
        keep = len(sizes) - held_out
        if keep < MIN_SIZES:
            break
        kept_groups = None if groups is None else groups[:keep]
        if kept_groups is not None and not any(len(g) >= 2 for g in kept_groups):
            kept_groups = None
        fit, message = _try_fit(sizes[:keep], values[:keep], kept_groups, **options)
        if fit is None:
            out.append(Backtest(held_out, tuple(sizes[:keep]), (), None, message))
            continue
        naive = _try_naive(sizes[:keep], values[:keep])
        held = sizes[keep:]
        pred = fit.predict(held)
        naive_pred = naive.predict(held).mean if naive is not None else [None] * len(held)
        points = tuple(
            BacktestPoint(int(s), float(a), float(m), float(lo), float(hi), None if n is None else float(n))
            for s, a, m, lo, hi, n in zip(held, values[keep:], pred.mean, pred.lower, pred.upper, naive_pred)
        )
        out.append(Backtest(held_out, tuple(sizes[:keep]), points, fit))
    return tuple(out)


def _target_answer(curve: Curve, target: float) -> TargetAnswer:
    tuned = curve.fit.data_needed(target) if curve.fit is not None else None
    baseline = curve.baseline_fit.data_needed(target) if curve.baseline_fit is not None else None
    if tuned is None:
        message = f"target test error {target:g}: no fit yet ({curve.message})"
    elif curve.fit is not None and curve.fit.beta >= 0:
        message = (
            f"test error {target:g}: the tuned curve does not fall with more data (β={curve.fit.beta:.3g}), "
            "so the report cannot say how much data reaches it"
        )
    elif tuned.reachable:
        message = f"to reach test error {target:g} the tuned model needs about {_count(tuned.size)} examples"
        if math.isfinite(tuned.lower) or math.isfinite(tuned.upper):
            conf = curve.fit.confidence if curve.fit is not None else 0.95
            message += f" ({conf:.0%} interval {_count(tuned.lower)}–{_count(tuned.upper)})"
        if tuned.fraction_unreachable > 0:
            message += f"; {tuned.fraction_unreachable:.0%} of bootstrap fits never reach it"
    else:
        message = tuned.message
    if baseline is not None:
        message += "; the untuned model " + (
            f"would need about {_count(baseline.size)}" if baseline.reachable else "never reaches it"
        )
    return TargetAnswer(target, tuned, baseline, message)


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------


def _j(value: Any) -> Any:
    """A JSON-safe number: NaN as ``None``, infinities as ``"inf"``/``"-inf"`` (as in scaling_law)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    x = float(value)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _trial_dict(p: TrialPoint | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "trial": p.number,
        "val_loss": _j(p.val_loss),
        "test_loss": _j(p.test_loss),
        "test_error": _j(p.test_error),
        "n_params": _j(p.n_params),
    }


def _row_dict(row: SizeRow) -> dict[str, Any]:
    s, b = row.status, row.best
    return {
        "size": s.size,
        "study": s.study_name,
        "trials": {
            "budget": s.budget,
            "complete": s.complete,
            "pruned": s.pruned,
            "failed": s.failed,
            "running": s.running,
            "waiting": s.waiting,
        },
        "best": None
        if b is None
        else {
            "trial": b.trial_number,
            "val_loss": _j(b.val_loss),
            "val_error": _j(b.val_error),
            "test_loss": _j(b.test_loss),
            "test_error": _j(b.test_error),
            "n_params": _j(b.n_params),
            "params": {k: _j(v) if isinstance(v, (int, float)) else v for k, v in b.params.items()},
        },
        "baseline": _trial_dict(row.baseline),
        "near_best": [_trial_dict(p) for p in row.good],
    }


def _curve_dict(c: Curve) -> dict[str, Any]:
    return {
        "metric": c.metric,
        "sizes": list(c.sizes),
        "values": [_j(v) for v in c.values],
        "tuned": None if c.fit is None else c.fit.to_dict(),
        "message": c.message,
        "intervals": c.intervals_from,
        "baseline": {
            "sizes": list(c.baseline_sizes),
            "values": [_j(v) for v in c.baseline_values],
            "fit": None if c.baseline_fit is None else c.baseline_fit.to_dict(),
            "message": c.baseline_message,
        }
        if c.metric != "n_params"
        else None,
        "naive_log_log_line": None if c.naive is None else c.naive.to_dict(),
        "predictions": [
            {"multiple": _j(p.multiple), "size": _j(p.size), "mean": _j(p.mean), "lower": _j(p.lower), "upper": _j(p.upper)}
            for p in c.predictions
        ],
        "backtest": [
            {
                "held_out": bt.held_out,
                "fitted_sizes": list(bt.fitted_sizes),
                "fit": None if bt.fit is None else bt.fit.to_dict(),
                "message": bt.message,
                "points": [
                    {
                        "size": p.size,
                        "actual": _j(p.actual),
                        "predicted": _j(p.predicted),
                        "lower": _j(p.lower),
                        "upper": _j(p.upper),
                        "relative_error": _j(p.error),
                        "inside_band": p.inside,
                        "naive_predicted": _j(p.naive),
                        "naive_relative_error": _j(p.naive_error),
                    }
                    for p in bt.points
                ],
            }
            for bt in c.backtests
        ],
    }


def _target_dict(t: TargetAnswer | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "metric": "test_error",
        "target": t.target,
        "tuned": None if t.tuned is None else t.tuned.to_dict(),
        "baseline": None if t.baseline is None else t.baseline.to_dict(),
        "message": t.message,
    }


# ---------------------------------------------------------------------------
# A learning curve given as numbers (``scaling-optuna fit``)
# ---------------------------------------------------------------------------


def parse_numbers(text: str, name: str) -> list[float]:
    """Comma-separated numbers, e.g. ``"100,200,400"``.

    Raises:
        UserError: an entry is not a number.
    """
    out = []
    for item in str(text).replace(" ", "").split(","):
        try:
            out.append(float(item))
        except ValueError:
            raise UserError(f"{name}: {item!r} is not a number; pass comma-separated numbers such as 100,200,400") from None
    return out


def parse_number(text: str | None, name: str) -> float | None:
    """One number from the command line, or ``None`` when not given.

    Raises:
        UserError: ``text`` is not a number.
    """
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{name}: {text!r} is not a number; pass e.g. 0.05") from None


def curve_summary(
    sizes: Sequence[float],
    values: Sequence[float],
    *,
    target: float | None = None,
    plateau: float | None = None,
    form: str = "auto",
    n_bootstrap: int = 1000,
) -> str:
    """Fit a learning curve given as numbers and describe it like the report does.

    Raises:
        UserError: bad sizes, values, target, plateau or form (see
            :func:`~scaling_optuna.scaling_law.fit_scaling_law`).

    Example::

        print(curve_summary([100, 200, 400, 800], [0.5, 0.36, 0.27, 0.2], target=0.1))
    """
    target_value = validate_target(target, error=False)
    fit = fit_scaling_law(sizes, values, form=form, plateau=plateau, n_bootstrap=n_bootstrap)
    naive = _try_naive(fit.sizes_used + fit.sizes_excluded, fit.values_used + fit.values_excluded)
    largest = max(fit.sizes_used)
    lines = [f"{_law(fit, 'test_error')}   [{fit.form} law, {len(fit.sizes_used)} sizes]"]
    if fit.sizes_excluded:
        lines.append(f"  left out as the small-data plateau: {', '.join(f'{s:g}' for s in fit.sizes_excluded)}")
    pred = fit.predict([k * largest for k in MULTIPLES])
    for k, s, m, lo, hi in zip(MULTIPLES, pred.sizes, pred.mean, pred.lower, pred.upper):
        lines.append(f"  {k}× the largest size ({_count(s)}): {_v(m)}{_band(lo, hi, '')}")
    if naive is not None:
        lines.append(f"  naive log-log line: {_law(naive, 'test_error')}")
    if target_value is not None:
        lines.append("  " + fit.data_needed(target_value).message)
    return "\n".join(lines)
