"""The report's numbers as plain records, and their JSON form (the content of ``report.json``).

Nothing here reads the store, fits or formats: :mod:`~scaling_optuna.report.rows`
and :mod:`~scaling_optuna.report.curves` fill these records, the text, figure
and page modules show them.

Example::

    report = scaling_optuna.build_report(exp)
    row = report.rows[-1]                    # a SizeRow
    row.best.test_error, [r.trial_number for r in row.near_best]
    report.curves["test_error"].predictions[0].mean
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any

from scaling_optuna._json import jsonable
from scaling_optuna.experiment import SizeStatus
from scaling_optuna.experiment import TrialRecord
from scaling_optuna.report._format import edge_ratio

if TYPE_CHECKING:
    from scaling_optuna.fit import DataNeeded
    from scaling_optuna.fit import ScalingLawFit

__all__ = [
    "Backtest",
    "BacktestPoint",
    "Curve",
    "Extrapolation",
    "ReportData",
    "SizeRow",
    "TargetAnswer",
    "finite",
    "usable",
]

LABELS = {"test_error": "test error", "test_loss": "test loss", "n_params": "parameters of the best model"}
# The symbol of each metric in its law: ε(m) for the error, L(m) for the loss, N(m) for the parameter count.
SYMBOLS = {"test_error": "ε", "test_loss": "L", "n_params": "N"}
SELECTION = "best trial of each size by validation loss; the test set is never used to select"
# What the band of a 2×/10× prediction holds: the mean curve (its value over many runs), not one run's measurement.
PREDICTION_BAND = "the curve's band (where the mean over many training runs lies)"


def finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite number, else ``None``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def usable(value: Any) -> float | None:
    """``value`` if a log-scale fit or plot can use it (finite and positive), else ``None``."""
    v = finite(value)
    return v if v is not None and v > 0 else None


@dataclasses.dataclass(frozen=True)
class SizeRow:
    """One size: its trial counts, best trial, untuned baseline, near-best and every complete trial.

    ``trials`` and ``near_best`` are best (lowest validation loss) first;
    ``near_best`` holds the best few whose validation loss is close to the best
    one's, the spread a ``bootstrap="trials"`` report resamples.
    """

    status: SizeStatus
    best: TrialRecord | None
    baseline: TrialRecord | None
    near_best: tuple[TrialRecord, ...]
    trials: tuple[TrialRecord, ...]

    @property
    def size(self) -> int:
        return self.status.size

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.status.size,
            "study": self.status.study_name,
            "trials": jsonable(self.status, skip=("size", "study_name")),
            "best": _trial_dict(self.best, best=True),
            "baseline": _trial_dict(self.baseline),
            "near_best": [_trial_dict(r) for r in self.near_best],
        }


@dataclasses.dataclass(frozen=True)
class Extrapolation:
    """The fitted curve at ``multiple`` × the largest fitted size."""

    multiple: float
    size: float
    mean: float
    lower: float
    upper: float
    why: str = ""  # what makes the band as wide as it is (ScalingLawFit.band_reasons)

    @property
    def edge_ratio(self) -> float:
        """``upper / lower``: how many times the upper edge is the lower (NaN without a band)."""
        return edge_ratio(self.lower, self.upper)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({**jsonable(self), "edge_ratio": self.edge_ratio})


@dataclasses.dataclass(frozen=True)
class BacktestPoint:
    """A held-out size: what the refit predicted, what was measured, and the two baselines.

    ``lower``/``upper`` is the band for a *measurement* (what ``inside``
    judges the measured value by: one training run on a finite test set
    scatters around the curve), ``curve_lower``/``curve_upper`` the band of
    the mean curve the 2×/10× predictions carry.  ``least_squares`` is a plain
    least-squares fit of α·m^β+γ in log space on the same points, ``naive`` a
    straight line in log-log space.
    """

    size: int
    actual: float
    predicted: float
    lower: float
    upper: float
    naive: float | None
    least_squares: float | None = None
    curve_lower: float = math.nan
    curve_upper: float = math.nan

    @property
    def error(self) -> float:
        """Relative error of the prediction (predicted / actual − 1)."""
        return self.predicted / self.actual - 1.0

    @property
    def naive_error(self) -> float | None:
        return None if self.naive is None else self.naive / self.actual - 1.0

    @property
    def least_squares_error(self) -> float | None:
        return None if self.least_squares is None else self.least_squares / self.actual - 1.0

    @property
    def inside(self) -> bool | None:
        """Whether the measured value lies in the measurement band (``None`` without a band)."""
        if math.isnan(self.lower) or math.isnan(self.upper):
            return None
        return bool(self.lower <= self.actual <= self.upper)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            **jsonable(self, skip=("naive", "least_squares")), "relative_error": self.error, "inside_band": self.inside,
            "naive_predicted": self.naive, "naive_relative_error": self.naive_error,
            "least_squares_predicted": self.least_squares, "least_squares_relative_error": self.least_squares_error,
        })


@dataclasses.dataclass(frozen=True)
class Backtest:
    """The law refitted without the ``held_out`` largest sizes, predicting them."""

    held_out: int
    fitted_sizes: tuple[int, ...]
    points: tuple[BacktestPoint, ...]
    fit: ScalingLawFit | None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "held_out": self.held_out,
            "fitted_sizes": list(self.fitted_sizes),
            "fit": None if self.fit is None else self.fit.to_dict(),
            "message": self.message,
            "points": [p.to_dict() for p in self.points],
        }


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
    backtest_band: str = ""
    # each point's standard error as a measure of its size (runs, choice among configurations, test set)
    value_sd: tuple[float, ...] = ()
    baseline_value_sd: tuple[float, ...] = ()

    @property
    def law(self) -> str:
        """The tuned fit's law with this metric's symbol ('' without a fit)."""
        return "" if self.fit is None else self.fit.law.text(SYMBOLS[self.metric])

    @property
    def label(self) -> str:
        return LABELS[self.metric]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "sizes": list(self.sizes),
            "values": jsonable(self.values),
            "value_sd": jsonable(self.value_sd),
            "tuned": None if self.fit is None else self.fit.to_dict(),
            "message": self.message,
            "intervals": self.intervals_from,
            "baseline": None if self.metric == "n_params" else self._baseline_dict(),
            "naive_log_log_line": None if self.naive is None else self.naive.to_dict(),
            "predictions": [p.to_dict() for p in self.predictions],
            "prediction_band": PREDICTION_BAND if self.predictions else "",
            "backtest": [bt.to_dict() for bt in self.backtests],
            "backtest_band": self.backtest_band,
        }

    def _baseline_dict(self) -> dict[str, Any]:
        return {
            "sizes": list(self.baseline_sizes),
            "values": jsonable(self.baseline_values),
            "value_sd": jsonable(self.baseline_value_sd),
            "fit": None if self.baseline_fit is None else self.baseline_fit.to_dict(),
            "message": self.baseline_message,
        }


@dataclasses.dataclass(frozen=True)
class TargetAnswer:
    """How much data the tuned (and the untuned) curve needs to reach a target test error."""

    target: float
    tuned: DataNeeded | None
    baseline: DataNeeded | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": "test_error",
            "target": self.target,
            "tuned": None if self.tuned is None else self.tuned.to_dict(),
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "message": self.message,
        }


@dataclasses.dataclass
class ReportData:
    """Everything the report shows, as numbers; :class:`~scaling_optuna.report.Report` adds its renderings."""

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
            "majority_error": jsonable(self.majority_error),
            "selection": SELECTION,
            "sizes": [r.to_dict() for r in self.rows],
            "fits": {name: c.to_dict() for name, c in self.curves.items()},
            "target": None if self.target is None else self.target.to_dict(),
            "warnings": list(self.warnings),
            "dashboard": self.dashboard,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


_TRIAL_FIELDS = ("val_loss", "test_loss", "test_error", "n_params", "runs", "val_loss_sd", "test_loss_sd", "test_error_sd")


def _trial_dict(record: TrialRecord | None, *, best: bool = False) -> dict[str, Any] | None:
    """A trial (or configuration) as report.json has it; the best one also with its validation error and parameters."""
    if record is None:
        return None
    values = {name: getattr(record, name) for name in _TRIAL_FIELDS}
    if best:
        return jsonable({"trial": record.trial_number, **values, "val_error": record.val_error, "params": record.params})
    # a log-scale plot cannot show a zero loss; an error of 0 is kept
    return jsonable({"trial": record.trial_number, **values, "test_loss": usable(record.test_loss), "test_error": finite(record.test_error)})
