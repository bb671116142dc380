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
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna.errors import UserError
from scaling_optuna.experiment import BestTrial
from scaling_optuna.experiment import Experiment
from scaling_optuna.experiment import SizeStatus
from scaling_optuna.scaling_law import DataNeeded
from scaling_optuna.scaling_law import ScalingLawFit
from scaling_optuna.scaling_law import fit_log_log_line
from scaling_optuna.scaling_law import fit_scaling_law
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

METRICS = ("test_error", "test_loss", "n_params")
LABELS = {"test_error": "test error", "test_loss": "test loss", "n_params": "parameters of the best model"}
MULTIPLES = (2, 10)
# Extrapolating further than the largest measured size by this factor is what the plots show.
PLOT_REACH = 10
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
    best: BestTrial | None
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
        return _text(self)

    def to_html(self) -> str:
        """A self-contained page (plotly embedded inline) that works offline."""
        return render_html(self)

    def to_markdown(self) -> str:
        """A short Markdown summary (the note published into optuna-dashboard)."""
        lines = [f"## Scaling law of experiment `{self.experiment}`", "", f"_report of {self.generated_at}_", ""]
        lines += [f"- {line}" for line in _headline(self)]
        for curve in self.curves.values():
            text = _curve_text(curve)
            lines += ["", f"**{text[0]}**"] + [f"- {line.strip()}" for line in text[1:]]
        if self.warnings:
            lines += ["", "**Warnings**"] + [f"- {w}" for w in self.warnings]
        return "\n".join(lines)

    def figure(self, metric: str):
        """The plotly figure of ``metric`` ("test_error", "test_loss" or "n_params") against size."""
        if metric not in self.curves:
            raise UserError(f"unknown metric {metric!r}: use one of {', '.join(self.curves)}")
        return _figure(self, self.curves[metric])


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
# Text
# ---------------------------------------------------------------------------


def _count(x: float) -> str:
    """An example count for people: 2,910 / 1.2M / inf."""
    if x is None or not math.isfinite(x):
        return "∞" if x is not None and x > 0 else "-"
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    return f"{int(round(x)):,}"


def _v(x: float | None, metric: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if metric == "n_params":
        return _count(x)
    return f"{x:.4g}"


def _band(lo: float, hi: float, metric: str) -> str:
    if not (math.isfinite(lo) or math.isfinite(hi)):
        return ""
    return f" ({_v(lo, metric)}–{_v(hi, metric)})"


def _pct(x: float) -> str:
    return f"{x:+.0%}"


def _law(fit: ScalingLawFit, metric: str) -> str:
    sym = "ε" if metric == "test_error" else ("L" if metric == "test_loss" else "N")
    text = f"{sym}(m) = {fit.alpha:.3g}·m^{fit.beta:.3f}"
    if fit.form == "saturating":
        text += f" + {fit.gamma:.3g}"
    beta = fit.intervals.get("beta")
    if beta is not None:
        text += f"   β {fit.confidence:.0%} interval {beta[0]:.3f}…{beta[1]:.3f}"
    return text


def _headline(report: Report) -> list[str]:
    """The answer in sentences: here now; 2× and 10× would be there; the target needs N."""
    curve = report.curves["test_error"]
    if curve.fit is None:
        return [curve.message]
    fit = curve.fit
    largest = int(max(fit.sizes_used))
    measured = curve.values[curve.sizes.index(largest)]
    now = fit.predict([largest])
    band = f", band {now.lower[0]:.4g}–{now.upper[0]:.4g}" if np.isfinite(now.lower[0]) else ""
    lines = [
        f"At {_count(largest)} examples the best model's test error is {measured:.4g} "
        f"(fitted curve {now.mean[0]:.4g}{band})."
    ]
    for p in curve.predictions:
        lines.append(
            f"With {p.multiple:g}× the data ({_count(p.size)} examples) it would be about "
            f"{p.mean:.4g}{_band(p.lower, p.upper, '')}."
        )
    if report.target is not None:
        lines.append(report.target.message[0].upper() + report.target.message[1:] + ".")
    return lines


def _text(report: Report) -> str:
    out: list[str] = []
    out.append(f"Scaling report: experiment {report.experiment!r} ({report.dataset}, {report.model}), store {report.storage}")
    out.append("")
    out.append(
        f"{'size':>8} {'best':>5} {'val loss':>9} {'test loss':>9} {'test err':>8} {'params':>8} "
        f"{'untuned err':>11} {'complete':>8} {'pruned':>6} {'failed':>6} {'running':>7}"
    )
    for row in report.rows:
        s, b = row.status, row.best
        untuned = row.baseline.test_error if row.baseline is not None else None
        out.append(
            f"{s.size:>8} {('-' if b is None else str(b.trial_number)):>5} "
            f"{_v(None if b is None else b.val_loss):>9} {_v(None if b is None else b.test_loss):>9} "
            f"{_v(None if b is None else b.test_error):>8} {_v(None if b is None else b.n_params, 'n_params'):>8} "
            f"{_v(untuned):>11} {s.complete:>8} {s.pruned:>6} {s.failed:>6} {s.running:>7}"
        )
    if report.majority_error is not None:
        out.append(f"(guessing the majority class: test error {report.majority_error:.4g})")
    out.append("")
    out.extend(_headline(report))
    for curve in report.curves.values():
        out.append("")
        out.extend(_curve_text(curve))
    if report.warnings:
        out.append("")
        out.append("Warnings:")
        out.extend(f"  - {w}" for w in report.warnings)
    if report.dashboard:
        out.append("")
        out.append(_dashboard_line(report.dashboard))
    return "\n".join(out)


def _dashboard_line(info: dict[str, Any]) -> str:
    if info.get("published"):
        return (
            f"Published the scaling plots to optuna-dashboard on study {info['study']!r} (the largest size); "
            f"view them with: scaling-optuna dashboard --storage {info['storage']}"
        )
    return f"Not published to optuna-dashboard: {info.get('error')}"


def _curve_text(curve: Curve) -> list[str]:
    label = curve.label.capitalize()
    if curve.fit is None:
        return [f"{label}: {curve.message}"]
    fit, metric = curve.fit, curve.metric
    lines = [f"{label}: {_law(fit, metric)}   [{fit.form} law, {len(fit.sizes_used)} sizes]"]
    if fit.sizes_excluded:
        excluded = ", ".join(str(int(s)) for s in fit.sizes_excluded)
        lines.append(f"  left out as the small-data plateau: {excluded}")
    if fit.intervals:
        lines.append(f"  intervals: {curve.intervals_from}")
    if curve.baseline_fit is not None:
        lines.append(f"  untuned baseline: {_law(curve.baseline_fit, metric)}")
        lines.append(
            f"  per-size tuning changes the exponent from β={curve.baseline_fit.beta:.3f} (untuned) "
            f"to β={fit.beta:.3f} (tuned)"
        )
    elif curve.baseline_message:
        lines.append(f"  untuned baseline: {curve.baseline_message}")
    for p in curve.predictions:
        lines.append(f"  {p.multiple:g}× the largest size ({_count(p.size)}): {_v(p.mean, metric)}{_band(p.lower, p.upper, metric)}")
    for bt in curve.backtests:
        lines.append("  " + _backtest_text(bt, metric))
    return lines


def _backtest_text(bt: Backtest, metric: str) -> str:
    head = f"backtest, fitted on sizes ≤ {bt.fitted_sizes[-1]} without the largest {bt.held_out}:"
    if bt.fit is None:
        return f"{head} {bt.message}"
    parts = []
    for p in bt.points:
        part = (
            f"at {p.size} predicted {_v(p.predicted, metric)}{_band(p.lower, p.upper, metric)}, "
            f"measured {_v(p.actual, metric)}: {_pct(p.error)}"
            + ("" if p.inside is None else f" ({'inside' if p.inside else 'outside'} the band)")
        )
        if p.naive_error is not None:
            part += f"; naive log-log line {_pct(p.naive_error)}"
        parts.append(part)
    return head + " " + "; ".join(parts)


# ---------------------------------------------------------------------------
# Plots and HTML
# ---------------------------------------------------------------------------

_BLUE, _ORANGE, _GREY, _RED = "#1f5fbf", "#e07b00", "#8a8f98", "#c0392b"


def _figure(report: Report, curve: Curve):
    import plotly.graph_objects as go

    metric, label = curve.metric, curve.label
    fig = go.Figure()
    ys: list[float] = []
    sizes_seen = [r.size for r in report.rows if r.trials]
    all_points = [p for r in report.rows for p in r.trials if (v := p.metric(metric)) is not None and v > 0]
    if all_points:
        fig.add_trace(
            go.Scatter(
                x=[p.size for p in all_points],
                y=[p.metric(metric) for p in all_points],
                mode="markers",
                name="every trial",
                marker=dict(color=_GREY, size=7, opacity=0.45),
                customdata=[[p.number, p.val_loss] for p in all_points],
                hovertemplate="m=%{x}<br>trial %{customdata[0]}<br>" + label + " %{y:.4g}<br>val loss %{customdata[1]:.4g}<extra></extra>",
            )
        )
        ys += [p.metric(metric) for p in all_points]
    fit = curve.fit
    if fit is not None:
        largest = max(fit.sizes_used)
        inner = np.geomspace(min(fit.sizes_used), largest, 50)
        outer = np.geomspace(largest, largest * PLOT_REACH, 30)
        grid = np.concatenate([inner, outer[1:]])
        pred = fit.predict(grid)
        if np.all(np.isfinite(pred.lower)) and np.all(np.isfinite(pred.upper)):
            fig.add_trace(go.Scatter(x=grid, y=pred.upper, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"))
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=pred.lower,
                    mode="lines",
                    line=dict(width=0),
                    fill="tonexty",
                    fillcolor="rgba(31,95,191,0.15)",
                    name=f"{fit.confidence:.0%} band of the fitted curve",
                    hoverinfo="skip",
                )
            )
        n_in = len(inner)
        fig.add_trace(
            go.Scatter(
                x=grid[:n_in], y=pred.mean[:n_in], mode="lines", line=dict(color=_BLUE, width=2.5),
                name=f"fit (tuned): β={fit.beta:.3f}",
                hovertemplate="m=%{x:.0f}<br>fitted %{y:.4g}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=grid[n_in - 1 :],
                y=pred.mean[n_in - 1 :],
                mode="lines", line=dict(color=_BLUE, width=2.5, dash="dash"),
                name=f"extrapolation to {PLOT_REACH}× the largest size",
                hovertemplate="m=%{x:.0f}<br>predicted %{y:.4g}<extra></extra>",
            )
        )
        ys += list(pred.mean)
        if curve.predictions:
            fig.add_trace(
                go.Scatter(
                    x=[p.size for p in curve.predictions],
                    y=[p.mean for p in curve.predictions],
                    mode="markers+text",
                    text=[f"{p.multiple:g}×: {_v(p.mean, metric)}" for p in curve.predictions],
                    textposition="top left",
                    marker=dict(color=_BLUE, symbol="diamond", size=10),
                    error_y=_error_bars([p.mean for p in curve.predictions], [p.lower for p in curve.predictions], [p.upper for p in curve.predictions]),
                    name="predictions at 2× and 10×",
                    hovertemplate="m=%{x:.0f}<br>predicted %{y:.4g}<extra></extra>",
                )
            )
    if curve.baseline_sizes:
        bfit = curve.baseline_fit
        fig.add_trace(
            go.Scatter(
                x=list(curve.baseline_sizes), y=list(curve.baseline_values), mode="markers",
                marker=dict(color=_ORANGE, symbol="square", size=8),
                name="untuned default model",
                hovertemplate="m=%{x}<br>untuned " + label + " %{y:.4g}<extra></extra>",
            )
        )
        ys += list(curve.baseline_values)
        if bfit is not None:
            bgrid = np.geomspace(min(bfit.sizes_used), max(bfit.sizes_used) * PLOT_REACH, 80)
            bmean = bfit.predict(bgrid).mean
            fig.add_trace(
                go.Scatter(
                    x=bgrid, y=bmean, mode="lines", line=dict(color=_ORANGE, width=1.5, dash="dot"),
                    name=f"fit (untuned): β={bfit.beta:.3f}",
                    hovertemplate="m=%{x:.0f}<br>untuned fit %{y:.4g}<extra></extra>",
                )
            )
    if curve.sizes:
        excluded = set(fit.sizes_excluded) if fit is not None else set()
        used = [(s, v) for s, v in zip(curve.sizes, curve.values) if s not in excluded]
        plateau = [(s, v) for s, v in zip(curve.sizes, curve.values) if s in excluded]
        best_by_size = {r.size: r.best for r in report.rows if r.best is not None}
        for points, name, symbol in ((used, "best trial per size (by val loss)", "circle"), (plateau, "best trial, small-data plateau (not fitted)", "circle-open")):
            if not points:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[s for s, _ in points], y=[v for _, v in points], mode="markers",
                    marker=dict(color=_BLUE, symbol=symbol, size=11, line=dict(width=2, color=_BLUE)),
                    name=name,
                    customdata=[[best_by_size[s].trial_number] for s, _ in points],
                    hovertemplate="m=%{x}<br>best trial %{customdata[0]}<br>" + label + " %{y:.4g}<extra></extra>",
                )
            )
        ys += list(curve.values)
    x_hi = max(sizes_seen or [1]) * (PLOT_REACH if fit is not None else 1)
    x_lo = min(sizes_seen or [1])
    if metric == "test_error" and report.majority_error is not None:
        fig.add_trace(
            go.Scatter(
                x=[x_lo, x_hi], y=[report.majority_error] * 2, mode="lines",
                line=dict(color=_GREY, dash="dot", width=1),
                name=f"guessing the majority class ({report.majority_error:.3g})",
                hoverinfo="skip",
            )
        )
        ys.append(report.majority_error)
    if metric == "test_error" and report.target is not None:
        t = report.target
        fig.add_trace(
            go.Scatter(
                x=[x_lo, x_hi], y=[t.target] * 2, mode="lines", line=dict(color=_RED, dash="dash", width=1),
                name=f"target {t.target:g}", hoverinfo="skip",
            )
        )
        ys.append(t.target)
        if t.tuned is not None and t.tuned.reachable:
            fig.add_trace(
                go.Scatter(
                    x=[t.tuned.size], y=[t.target], mode="markers", marker=dict(color=_RED, symbol="x", size=11),
                    name=f"target reached at ≈{_count(t.tuned.size)}",
                    hovertemplate="m=%{x:.0f}<extra></extra>",
                )
            )
    title = f"{label.capitalize()} against training-set size"
    if fit is not None:
        title += f"<br><sup>{html.escape(_law(fit, metric))}</sup>"
    elif curve.message:
        title += f"<br><sup>{html.escape(curve.message)}</sup>"
    fig.update_layout(
        title=dict(text=title, x=0.01),
        template="plotly_white",
        height=520,
        margin=dict(l=70, r=20, t=80, b=60),
        legend=dict(x=1.02, y=1, xanchor="left", font=dict(size=11), traceorder="normal"),
        xaxis=dict(type="log", title="training examples m (log scale)", dtick="D2"),
        yaxis=dict(type="log", title=f"{label} (log scale)"),
    )
    positive = [y for y in ys if y is not None and math.isfinite(y) and y > 0]
    if positive:
        # Keep the data in view: a wide band at 10× may reach far below what was measured.
        lo, hi = math.log10(min(positive)), math.log10(max(positive))
        pad = max(0.08, 0.08 * (hi - lo))
        fig.update_yaxes(range=[lo - pad, hi + pad])
        if hi - lo > 1.3:
            # Over several decades plotly labels every digit; 1-2-5 reads better.
            # Within about one decade its default labels (6k, 8k, 10k...) are the clearer ones.
            fig.update_yaxes(dtick="D2")
    return fig


def _error_bars(mean: list[float], lower: list[float], upper: list[float]) -> dict[str, Any]:
    if not all(math.isfinite(v) for v in lower + upper):
        return dict(visible=False)
    return dict(
        type="data",
        symmetric=False,
        array=[u - m for u, m in zip(upper, mean)],
        arrayminus=[m - lo for m, lo in zip(mean, lower)],
        color=_BLUE,
        thickness=1.5,
    )


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 28px 0 8px; }
.meta { color: #5d6470; font-size: 0.9em; margin-bottom: 18px; }
.answer { background: #fff; border-left: 5px solid #1f5fbf; padding: 12px 18px; border-radius: 4px; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
.answer p { margin: 6px 0; font-size: 1.05em; }
.card { background: #fff; border-radius: 6px; box-shadow: 0 1px 2px rgba(0,0,0,.08); padding: 10px 12px; margin: 14px 0; }
.law { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 0.92em; color: #333; margin: 4px 6px; }
table { border-collapse: collapse; background: #fff; font-size: 0.9em; width: 100%; }
th, td { padding: 5px 9px; text-align: right; border-bottom: 1px solid #e3e6ea; }
th { background: #eef1f5; font-weight: 600; }
td.l, th.l { text-align: left; }
.warn { background: #fff6e0; border-left: 5px solid #e0a100; padding: 8px 16px; border-radius: 4px; }
.good { color: #1e7b34; } .bad { color: #b3261e; }
"""


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page: plotly.js is embedded, nothing is fetched."""
    import plotly.io as pio

    figures = []
    for i, metric in enumerate(METRICS):
        curve = report.curves[metric]
        div = pio.to_html(
            _figure(report, curve),
            include_plotlyjs=(i == 0),  # once, inline: the page must work offline
            full_html=False,
            div_id=f"plot-{metric.replace('_', '-')}",
            config={"displaylogo": False, "responsive": True},
        )
        figures.append((curve, div))
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Scaling report: {e(report.experiment)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>How {e(report.experiment)} scales with data</h1>",
        f'<div class="meta">dataset {e(str(report.dataset))} · model {e(str(report.model))} · store {e(report.storage)} · '
        f"generated {e(report.generated_at)} · best trial of each size chosen by validation loss; test set never used to select</div>",
        '<div class="answer">' + "".join(f"<p>{e(line)}</p>" for line in _headline(report)) + "</div>",
    ]
    if report.warnings:
        parts.append('<h2>Warnings</h2><div class="warn"><ul>' + "".join(f"<li>{e(w)}</li>" for w in report.warnings) + "</ul></div>")
    for curve, div in figures:
        parts.append(f"<h2>{e(curve.label.capitalize())}</h2>")
        parts.append('<div class="card">' + div + "".join(f'<div class="law">{e(line)}</div>' for line in _curve_text(curve)[1:]) + "</div>")
    parts.append("<h2>Best trial per size</h2>")
    parts.append(_size_table(report))
    backtest = _backtest_table(report.curves["test_error"])
    if backtest:
        parts.append("<h2>Backtest: how far the extrapolation can be trusted</h2>")
        parts.append(backtest)
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _size_table(report: Report) -> str:
    e = html.escape
    head = ["size", "study", "best trial", "val loss", "test loss", "test error", "params", "untuned test error", "complete", "pruned", "failed", "running"]
    rows = []
    for row in report.rows:
        s, b = row.status, row.best
        cells = [
            str(s.size),
            s.study_name,
            "-" if b is None else str(b.trial_number),
            _v(None if b is None else b.val_loss),
            _v(None if b is None else b.test_loss),
            _v(None if b is None else b.test_error),
            _v(None if b is None else b.n_params, "n_params"),
            _v(None if row.baseline is None else row.baseline.test_error),
            str(s.complete),
            str(s.pruned),
            str(s.failed),
            str(s.running),
        ]
        rows.append("<tr>" + "".join(f'<td{" class=l" if i == 1 else ""}>{e(c)}</td>' for i, c in enumerate(cells)) + "</tr>")
    header = "<tr>" + "".join(f'<th{" class=l" if i == 1 else ""}>{e(h)}</th>' for i, h in enumerate(head)) + "</tr>"
    return f"<table>{header}{''.join(rows)}</table>"


def _backtest_table(curve: Curve) -> str:
    e = html.escape
    rows = []
    for bt in curve.backtests:
        for p in bt.points:
            cls = {True: "good", False: "bad", None: "l"}[p.inside]
            rows.append(
                "<tr>"
                f"<td>{bt.held_out}</td><td class=l>{e(', '.join(map(str, bt.fitted_sizes)))}</td><td>{p.size}</td>"
                f"<td>{_v(p.actual)}</td><td>{_v(p.predicted)}{e(_band(p.lower, p.upper, ''))}</td>"
                f"<td class={cls}>{_pct(p.error)}</td><td>{'-' if p.naive is None else _v(p.naive)}</td>"
                f"<td>{'-' if p.naive_error is None else _pct(p.naive_error)}</td>"
                "</tr>"
            )
    if not rows:
        return ""
    header = (
        "<tr><th>held out</th><th class=l>fitted on sizes</th><th>predicted size</th><th>measured test error</th>"
        "<th>law's prediction (band)</th><th>error</th><th>naive log-log line</th><th>naive error</th></tr>"
    )
    return f"<table>{header}{''.join(rows)}</table>"


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
