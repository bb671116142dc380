"""The re-measured configurations of every size as a table: what ``best`` and ``run`` print below the best trials.

One line per configuration that has re-runs: its original trial, how many runs
finished, and the mean ± standard deviation over them of the validation loss,
the test loss and the test error. The chosen configuration of each size (the
one the best table and the report use) is marked.

Example::

    from scaling_optuna.report.reruns import rerun_table

    print(rerun_table(exp) or "nothing re-measured yet")
"""

from __future__ import annotations

from scaling_optuna.experiment import Configuration
from scaling_optuna.experiment import Experiment
from scaling_optuna.report._format import value

__all__ = ["rerun_table"]


def rerun_table(experiment: Experiment) -> str | None:
    """The table, or None while no size has a finished re-run."""
    lines = []
    for size in experiment.sizes:
        configs = experiment.configurations(size)
        lines += [_line(size, c, chosen=i == 0) for i, c in enumerate(configs) if c.remeasured]
    if not lines:
        return None
    header = (
        "re-measured configurations (mean ± sd over their runs; the chosen one of each size marked *):\n"
        f"{'size':>8} {'trial':>5} {'runs':>4}  {'val loss':<16} {'test loss':<16} test err"
    )
    return "\n".join([header, *lines])


def _line(size: int, config: Configuration, *, chosen: bool) -> str:
    cells = [
        _spread(config.val_loss, config.val_loss_sd),
        _spread(config.test_loss, config.test_loss_sd),
        _spread(config.test_error, config.test_error_sd),
    ]
    text = f"{size:>8} {config.trial_number:>5} {config.n_runs:>4}  " + " ".join(f"{c:<16}" for c in cells)
    return (text + (" *" if chosen else "")).rstrip()


def _spread(mean: float | None, sd: float | None) -> str:
    # Two significant digits are all a spread over a few runs can claim.
    return value(mean) if sd is None else f"{value(mean)} ± {sd:.2g}"
