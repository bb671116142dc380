"""Warnings that save a user's budget: when the search did not pay, or could not have.

Four checks on an experiment's finished trials, each a plain sentence with the fix:

- **Tuning did not pay**: at half or more of the sizes where tuned trials finished,
  the best trial by validation loss is still the untuned default (every study's first
  trial), so the trials spent on tuning bought nothing there.
- **Tuned but worse**: at a size, the configuration chosen by validation loss
  measured a worse test error than the untuned default: the choice did not carry
  over to the test set, and the tuned curve's point there is the weaker one.
- **Undertrained**: a size's best trial ran all ``max_epochs`` without stopping
  early and its best epoch was among the last ``patience`` ones: it was still
  improving, so its error overstates what the size can reach, and the fitted curve
  inherits that.
- **Random search in effect**: a size's budget is not above the sampler's startup
  trials (``n_startup_trials``: 10 by default for TPESampler and GPSampler), so every
  trial was drawn at random and the sampler never used what it learnt.

The report shows them with its other warnings (text, ``report.json``, the page)
and ``scaling-optuna run`` prints them when it ends.

Example::

    from scaling_optuna.report import budget_warnings

    for line in budget_warnings(exp):
        print("warning:", line)
"""

from __future__ import annotations

import inspect
from typing import Sequence

import optuna

from scaling_optuna.experiment import Experiment
from scaling_optuna.experiment import TrialRecord
from scaling_optuna.report.records import SizeRow
from scaling_optuna.report.rows import size_rows
from scaling_optuna.spec import ComponentSpec

__all__ = ["budget_warnings", "startup_trials"]

# What train() records when a trial ran every epoch without stopping early.
_RAN_ALL_EPOCHS = "max_epochs"


def budget_warnings(experiment: Experiment, rows: Sequence[SizeRow] | None = None) -> list[str]:
    """Plain warnings when the trial budget was spent where it could not help.

    ``rows`` are the experiment's :func:`~scaling_optuna.report.rows.size_rows`
    (read from the store when not given).

    Example::

        budget_warnings(exp)
        # ['the best trial of sizes 576, 1151 was still improving when it reached max_epochs (20): ...']
    """
    rows = size_rows(experiment) if rows is None else list(rows)
    spec = experiment.spec
    found = (
        _untuned_wins(rows),
        _tuned_worse(rows),
        _undertrained(rows, spec.trainer.max_epochs, spec.trainer.patience),
        _random_search(rows, spec.sampler),
    )
    return [message for message in found if message]


def startup_trials(sampler: ComponentSpec) -> int | None:
    """How many trials ``sampler`` draws at random before it models the search space.

    The spec's ``n_startup_trials`` when given, else the Optuna class's default;
    ``None`` for samplers without startup trials (random, grid, QMC, ...).

    Example::

        startup_trials(ComponentSpec("TPESampler"))   # 10
    """
    if "n_startup_trials" in sampler.options:
        return int(sampler.options["n_startup_trials"])
    cls = getattr(optuna.samplers, sampler.name, None)
    if cls is None:
        return None
    parameter = inspect.signature(cls).parameters.get("n_startup_trials")
    if parameter is None or not isinstance(parameter.default, int):
        return None
    return parameter.default


def _untuned_wins(rows: Sequence[SizeRow]) -> str | None:
    # Only sizes where the baseline and at least one tuned trial finished can be judged.
    judged = [r for r in rows if r.best is not None and r.baseline is not None and len(r.trials) > 1]
    won = [r.size for r in judged if r.best is not None and r.best.baseline]
    if not judged or 2 * len(won) < len(judged):
        return None
    return (
        f"tuning did not beat the untuned default at {len(won)} of {len(judged)} sizes ({_sizes(won)}): "
        "its best trial there is the [default_params] model; give each size more trials (trials_per_size, "
        "--trials) or a search space closer to [default_params]"
    )


def _tuned_worse(rows: Sequence[SizeRow]) -> str | None:
    worse = [
        r for r in rows
        if r.best is not None and r.baseline is not None and not r.best.baseline
        and r.best.test_error is not None and r.baseline.test_error is not None and r.best.test_error > r.baseline.test_error
    ]
    if not worse:
        return None
    last = worse[-1]
    runs = lambda record: f" over {record.runs} runs" if getattr(record, "runs", 1) > 1 else ""  # noqa: E731
    return (
        f"at {'size' if len(worse) == 1 else 'sizes'} {_sizes([r.size for r in worse])} the tuned configuration, chosen by "
        f"validation loss, measured a worse test error than the untuned default (at {last.size}: trial "
        f"{last.best.trial_number} {last.best.test_error:.4g}{runs(last.best)} against {last.baseline.test_error:.4g}"
        f"{runs(last.baseline)}): the choice did not carry over to the test set there; re-measure more configurations "
        "([remeasure] top) or give each size more trials so that validation loss tells them apart"
    )


def _undertrained(rows: Sequence[SizeRow], max_epochs: int, patience: int) -> str | None:
    sizes = [r.size for r in rows if r.best is not None and _still_improving(r.best, max_epochs, patience)]
    if not sizes:
        return None
    which = f"size {sizes[0]}" if len(sizes) == 1 else f"sizes {_sizes(sizes)}"
    return (
        f"the best trial of {which} was still improving when it reached max_epochs ({max_epochs}): it ran every "
        f"epoch without stopping early, its best epoch among the last {patience} (patience), so its test error "
        "overstates what that size reaches; raise [trainer] max_epochs"
    )


def _still_improving(best: TrialRecord, max_epochs: int, patience: int) -> bool:
    if best.stopped_reason is not None:
        ran_all = best.stopped_reason == _RAN_ALL_EPOCHS
    else:
        ran_all = best.epochs_run is not None and best.epochs_run >= max_epochs
    # Small sets can run every epoch with a flat curve (patience also counts steps): not undertrained.
    return ran_all and (best.best_epoch is None or best.best_epoch > max_epochs - patience)


def _random_search(rows: Sequence[SizeRow], sampler: ComponentSpec) -> str | None:
    startup = startup_trials(sampler)
    if startup is None:
        return None
    small = [r for r in rows if r.status.budget <= startup]
    if not small:
        return None
    budgets = sorted({r.status.budget for r in small})
    budget = f"{budgets[0]} trials" if len(budgets) == 1 else f"{budgets[0]}–{budgets[-1]} trials"
    if len(small) == len(rows):
        where = "every size has"
    elif len(small) == 1:
        where = f"size {small[0].size} has"
    else:
        where = f"sizes {_sizes([r.size for r in small])} have"
    return (
        f"{where} a budget of {budget}, not above {sampler.name}'s {startup} startup trials "
        f"(n_startup_trials): every trial was drawn at random, so this was a random search; give each size "
        f"more than {startup} trials (trials_per_size, --trials) or lower [sampler] n_startup_trials"
    )


def _sizes(sizes: Sequence[int]) -> str:
    return ", ".join(str(s) for s in sizes)
