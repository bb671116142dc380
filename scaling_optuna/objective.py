"""The user's own training loop (``[trainer] objective``), called once per trial.

The objective is a function whose parameters are named from the list below;
each is given only where the function names it (so ``def fit(model, train,
val, test, report)`` gets those five):

==========  ===============================================================
``trial``   the ``optuna.Trial``
``params``  the trial's parameters from the spec's search space, a dict
``train``   the training subset of this size, tensors ``(x, y)`` on the device
``val``     the validation set ``(x, y)``
``test``    the test set ``(x, y)``
``report``  ``report(epoch, val_loss)``: call it after every epoch; it returns
            True when training should stop (patience or ``max_epochs`` reached)
            and raises ``optuna.TrialPruned`` when the pruner stops the trial
``model``   the spec's model for this trial (built-in or ``[model] builder``)
            on the device; its weights when the objective returns are the
            trial's (``best_model``)
``device``  the ``torch.device``
``size``    the training-set size
==========  ===============================================================

It returns a mapping with ``val_loss`` (what the trial minimises) and
``test_error``, and optionally ``test_loss`` and ``val_error``.

Example::

    def fit(model, train, val, test, report):
        opt = torch.optim.Adam(model.parameters())
        for epoch in itertools.count(1):
            ...                                          # one epoch on train
            if report(epoch, val_loss):
                break
        return {"val_loss": val_loss, "test_error": test_error}
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import time
from typing import Any, Callable, Mapping

import optuna

from scaling_optuna.errors import SpecError
from scaling_optuna.errors import StorageError
from scaling_optuna.plugins import Plugin
from scaling_optuna.plugins import PluginError
from scaling_optuna.plugins import required_keywords
from scaling_optuna.train import DivergedError
from scaling_optuna.train import StopRequested

OBJECTIVE_ARGUMENTS = ("trial", "params", "train", "val", "test", "report", "model", "device", "size")
RESULT_KEYS = ("val_loss", "test_error", "test_loss", "val_error")
_REQUIRED_RESULT_KEYS = ("val_loss", "test_error")
# What the trial's own machinery raises through the objective: the pruner, a stop request, a
# diverged loss, and the store's faults (handled by the worker as for the built-in trainer).
_CONTROL_FLOW = (optuna.TrialPruned, StopRequested, DivergedError, StorageError, optuna.exceptions.UpdateFinishedTrialError)
_RESULT_FIX = "return {'val_loss': ..., 'test_error': ...} (test_loss and val_error optional)"


@dataclasses.dataclass(frozen=True)
class ObjectiveResult:
    """What the objective returned, and how its epochs went (from its reports)."""

    val_loss: float
    test_error: float
    test_loss: float | None
    val_error: float | None
    best_epoch: int | None
    epochs_run: int
    stopped_reason: str
    wall_time_s: float


class EpochReport:
    """The ``report(epoch, val_loss)`` callback: early stopping, the pruner, a stop request.

    Every call passes the loss to ``on_epoch`` (the worker's pruner, which
    raises ``optuna.TrialPruned``) and returns True once ``patience`` epochs
    passed without improvement or ``max_epochs`` is reached. A non-finite
    loss raises :class:`~scaling_optuna.train.DivergedError` (the trial ends
    pruned, as in the built-in trainer), except in a ``trying`` run
    (``preflight``), which notes it and stops at the first finite loss.
    """

    def __init__(
        self, *, max_epochs: int, patience: int, on_epoch: Callable[[int, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None, trying: bool = False,
    ) -> None:
        self.max_epochs, self.patience, self.on_epoch, self.should_stop, self.trying = max_epochs, patience, on_epoch, should_stop, trying
        self.epochs_run, self.best_epoch, self.best_loss, self.stale = 0, None, math.inf, 0
        self.non_finite: list[float] = []
        self.stopped_reason = "returned"

    def __call__(self, epoch: int, val_loss: float) -> bool:
        if self.should_stop is not None and self.should_stop():
            raise StopRequested(f"stop requested after epoch {epoch}")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise TypeError(f"report(epoch, val_loss): epoch must be an integer from 1, got {epoch!r}")
        loss = float(val_loss)
        self.epochs_run = max(self.epochs_run, epoch)
        if not math.isfinite(loss):
            if not self.trying:
                raise DivergedError(f"validation loss became {loss} in epoch {epoch}")
            self.non_finite.append(loss)
            return self._stop_at_limit(epoch)
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.stale = loss, epoch, 0
        else:
            self.stale += 1
        if self.on_epoch is not None:
            self.on_epoch(epoch, loss)
        if self.trying:
            return True  # one finite loss is all a trial run needs
        if self.stale >= self.patience:
            self.stopped_reason = f"early_stopped: no improvement for {self.stale} epochs"
            return True
        return self._stop_at_limit(epoch)

    def _stop_at_limit(self, epoch: int) -> bool:
        if epoch >= self.max_epochs:
            self.stopped_reason = "max_epochs"
            return True
        return False


def objective_arguments(plugin: Plugin) -> tuple[str, ...]:
    """The arguments ``plugin`` takes, from :data:`OBJECTIVE_ARGUMENTS`.

    Raises:
        SpecError: it takes a name no trial gives (with a did-you-mean).
    """
    parameters = plugin.parameters()
    if plugin.takes_any_keyword() and not parameters:
        return OBJECTIVE_ARGUMENTS
    for name in required_keywords(plugin):
        if name not in OBJECTIVE_ARGUMENTS:
            match = difflib.get_close_matches(name, OBJECTIVE_ARGUMENTS, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise SpecError(
                f"trainer.objective: {plugin.path} takes {name!r}{hint}, which no trial gives; "
                f"name its parameters from {', '.join(OBJECTIVE_ARGUMENTS)}"
            )
    if plugin.takes_any_keyword():
        return OBJECTIVE_ARGUMENTS
    return tuple(name for name in OBJECTIVE_ARGUMENTS if name in parameters)


def run_objective(plugin: Plugin, available: Mapping[str, Any], report: EpochReport) -> ObjectiveResult:
    """Call the objective with the arguments it names from ``available``; check what it returns.

    Raises:
        PluginError: it raised, or returned something other than the metrics.
        optuna.TrialPruned, StopRequested: from ``report``, as they are.
        DivergedError: a non-finite loss (reported, or returned as ``val_loss``).
    """
    start = time.perf_counter()
    kwargs = {name: available[name] for name in objective_arguments(plugin)}
    returned = plugin.call(passthrough=_CONTROL_FLOW, **kwargs)
    metrics = _metrics(plugin, returned)
    if not math.isfinite(metrics["val_loss"]):
        raise DivergedError(f"the objective returned val_loss {metrics['val_loss']}")
    return ObjectiveResult(
        val_loss=metrics["val_loss"],
        test_error=metrics["test_error"],
        test_loss=metrics.get("test_loss"),
        val_error=metrics.get("val_error"),
        best_epoch=report.best_epoch,
        epochs_run=report.epochs_run,
        stopped_reason=report.stopped_reason,
        wall_time_s=time.perf_counter() - start,
    )


def _metrics(plugin: Plugin, returned: Any) -> dict[str, float]:
    where = f"{plugin.key} {plugin.path}"
    if returned is None:
        raise PluginError(f"{where} returned nothing; {_RESULT_FIX}")
    if not isinstance(returned, Mapping):
        raise PluginError(f"{where} returned a {type(returned).__name__}, not a dict of metrics; {_RESULT_FIX}")
    for key in returned:
        if key not in RESULT_KEYS:
            match = difflib.get_close_matches(str(key), RESULT_KEYS, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise PluginError(f"{where} returned an unknown metric {key!r}{hint}; {_RESULT_FIX}")
    missing = [k for k in _REQUIRED_RESULT_KEYS if k not in returned]
    if missing:
        raise PluginError(f"{where} returned no {' and no '.join(missing)}; {_RESULT_FIX}")
    metrics = {}
    for key, value in returned.items():
        try:
            metrics[key] = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise PluginError(f"{where} returned {key} = {value!r}, not a number; {_RESULT_FIX}") from None
    for key in ("test_error", "val_error"):
        if key in metrics and not 0.0 <= metrics[key] <= 1.0:
            raise PluginError(f"{where} returned {key} = {metrics[key]}, not an error rate in [0, 1]; return the share of wrong predictions")
    return metrics
