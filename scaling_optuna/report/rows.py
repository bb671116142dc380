"""Reading the store: one :class:`~scaling_optuna.report.records.SizeRow` per size.

Reads only; it works while workers are still running (a size without a
finished trial gets a row with ``best=None``).

Example::

    from scaling_optuna.report.rows import size_rows

    for row in size_rows(exp):
        print(row.size, row.status.complete, row.best and row.best.test_error)
"""

from __future__ import annotations

from typing import Any

from scaling_optuna.experiment import Experiment
from scaling_optuna.experiment import SizeStatus
from scaling_optuna.report.records import SizeRow

__all__ = [
    "DEFAULT_TOP_K",
    "GOOD_TRIAL_TOLERANCE",
    "majority_error",
    "recorded_test_size",
    "size_rows",
    "skipped_sizes",
    "study_attrs",
]

# Trials whose validation loss is within this fraction of the best one's are as good a
# choice as the best given validation noise; their spread is what the bootstrap resamples.
GOOD_TRIAL_TOLERANCE = 0.25
DEFAULT_TOP_K = 3


def size_rows(experiment: Experiment, top_k: int = DEFAULT_TOP_K) -> list[SizeRow]:
    """A row for every size of ``experiment``, smallest first; ``top_k`` bounds ``near_best``."""
    return [_size_row(experiment, status, top_k) for status in experiment.status()]


def _size_row(experiment: Experiment, status: SizeStatus, top_k: int) -> SizeRow:
    # One record per configuration (the means over its re-runs), the chosen one first: a
    # configuration's re-runs are not near-best trials of their own.
    chosen = [c.record() for c in experiment.configurations(status.size)]
    best = chosen[0] if chosen else None
    near_best = tuple(
        r for r in chosen[:top_k] if r.val_loss <= chosen[0].val_loss * (1.0 + GOOD_TRIAL_TOLERANCE)
    )
    baseline = next((r for r in chosen if r.baseline), None)
    return SizeRow(status=status, best=best, baseline=baseline, near_best=near_best, trials=tuple(experiment.records(status.size)))


def skipped_sizes(rows: list[SizeRow]) -> list[str]:
    """A warning for every size without a finished trial."""
    return [_skipped(row.status) for row in rows if row.best is None]


def _skipped(s: SizeStatus) -> str:
    return (
        f"size {s.size}: no finished trial yet ({s.running} running, {s.waiting} waiting, "
        f"{s.pruned} pruned, {s.failed} failed); skipped"
    )


def study_attrs(experiment: Experiment) -> dict[str, Any]:
    """The dataset attributes every study of the experiment carries (``dataset``, ``model``, ...)."""
    # They are the same on every study; the largest one is as good as any.
    return dict(experiment.studies[experiment.sizes[-1]].user_attrs) if experiment.sizes else {}


def majority_error(attrs: dict[str, Any]) -> float | None:
    """The test error of guessing the majority class, if the studies recorded a usable one."""
    value = attrs.get("majority_error")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def recorded_test_size(attrs: dict[str, Any]) -> int | None:
    """How many test examples every test error was measured on, if the studies recorded it (newer stores do)."""
    value = attrs.get("test_size")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
