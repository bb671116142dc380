"""One trial: suggest its parameters, train its model on one size, and say how it ended.

The model is the spec's (built-in, or the user's ``[model] builder``); the
training loop is the built-in one, or the user's ``[trainer] objective``
(:mod:`scaling_optuna.objective`), which reports every epoch to the same
pruner and early stopping. A plug-in that raises fails its trial, with the
error recorded, and the worker goes on.

:meth:`TrialRunner.run` never lets a trial's own failure escape: it returns an
:class:`Outcome` — complete with its validation loss, pruned, failed with one
line of error, or to be handed back (the worker was told to stop, or lost its
store mid-trial) — and the worker's loop settles that outcome in the store.
Only an incurable store fault (a :class:`~scaling_optuna.errors.StorageError`)
or a second Ctrl-C is raised.

Example::

    runner = TrialRunner(spec, tensors, stop, who="host:123", weights=None)
    outcome = runner.run(trial, size=240, prune_check=PruneCheck(study))
    print(outcome.state, outcome.value)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from typing import Any, Callable, Iterator

import optuna
import torch
from optuna.trial import TrialState

from scaling_optuna.data import Dataset
from scaling_optuna.errors import StorageError
from scaling_optuna.model import build_model
from scaling_optuna.model import count_parameters
from scaling_optuna.objective import EpochReport
from scaling_optuna.objective import objective_arguments
from scaling_optuna.objective import run_objective
from scaling_optuna.plugins import load_plugins
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.spec import suggest_params
from scaling_optuna.storages._shared import describe_error
from scaling_optuna.storages._shared import is_transient
from scaling_optuna.train import DivergedError
from scaling_optuna.train import StopRequested
from scaling_optuna.train import train_model
from scaling_optuna.worker.pruning import PruneCheck

STOP_REQUESTED = "stop requested"
LOST_STORE = "lost the store"
TAKEN_OVER = "taken over"
_log = logging.getLogger("scaling_optuna.worker")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one trial ended, before the store knows.

    ``hand_back`` says why a trial that did not fail by itself must run again
    elsewhere (``"stop requested"``, ``"lost the store"``, or ``"taken over"``:
    another process already ended it and queued its re-run); ``error`` is the
    one-line reason of a FAIL.
    """

    state: TrialState
    value: float | None = None
    hand_back: str | None = None
    error: str | None = None


@dataclasses.dataclass
class DeviceData:
    """The experiment's tensors on the worker's device, moved there once."""

    data: Dataset
    x_pool: torch.Tensor
    y_pool: torch.Tensor
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]

    @classmethod
    def on(cls, data: Dataset, device: torch.device) -> DeviceData:
        return cls(
            data=data,
            x_pool=data.x_pool.to(device),
            y_pool=data.y_pool.to(device),
            val=(data.x_val.to(device), data.y_val.to(device)),
            test=(data.x_test.to(device), data.y_test.to(device)),
        )


class TrialRunner:
    """Trains trials of one experiment on one device; see :meth:`run`."""

    def __init__(self, spec: ExperimentSpec, tensors: DeviceData, stop: threading.Event, who: str, weights: Any = None) -> None:
        self.spec, self.tensors, self.stop, self.who, self.weights = spec, tensors, stop, who, weights
        plugins = load_plugins(spec.plugin_paths, spec.python_path)
        self.builder, self.objective = plugins.get("model.builder"), plugins.get("trainer.objective")

    def run(self, trial: optuna.Trial, size: int, prune_check: PruneCheck, *, prune: bool = True) -> Outcome:
        """Train ``trial`` on the first ``size`` examples, reporting the validation loss every epoch.

        ``prune=False`` (a re-measured configuration) never asks the pruner: a
        re-run trains as its original did, early stopping included.
        """
        try:
            return Outcome(TrialState.COMPLETE, value=self._train(trial, size, prune_check, prune))
        except StopRequested:
            return Outcome(TrialState.FAIL, hand_back=STOP_REQUESTED)
        except optuna.TrialPruned as e:
            _note(trial, "stopped_reason", str(e) or "pruned")
            return Outcome(TrialState.PRUNED)
        except StorageError:
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another process ended the trial as lost while this one could not reach the store.
            return Outcome(TrialState.FAIL, hand_back=TAKEN_OVER)
        except Exception as e:
            if is_transient(e):
                # Not the trial's fault: someone re-runs it once the store answers again.
                return Outcome(TrialState.FAIL, hand_back=LOST_STORE, error=describe_error(e))
            _log.debug("trial %d failed", trial.number, exc_info=True)
            _note(trial, "error", describe_error(e))
            return Outcome(TrialState.FAIL, error=describe_error(e))

    def _train(self, trial: optuna.Trial, size: int, prune_check: PruneCheck, prune: bool = True) -> float:
        params = suggest_params(trial, self.spec.search_space)
        # The initial weights depend on the trial alone, not on what this process ran before.
        seed = self.spec.seed * 1_000_003 + trial.number
        torch.manual_seed(seed)
        trial.set_user_attr("worker", self.who)
        if self.objective is not None:
            return self._train_objective(trial, size, prune_check, params, prune)
        model = self._build(trial, size, params)
        batch_size = self.spec.batch_size_for(size, params)
        trial.set_user_attr("batch_size_used", batch_size)
        epochs_seen = [0]
        prune_check.start()

        def on_epoch(epoch: int, val_loss: float, val_error: float) -> None:
            epochs_seen[0] = epoch
            _prune(trial, prune_check, epoch, val_loss, prune)

        with _pruned_as_such(trial, lambda: epochs_seen[0]):
            result = train_model(
                model,
                (self.tensors.x_pool[:size], self.tensors.y_pool[:size]),
                self.tensors.val,
                self.tensors.test,
                lr=float(params["lr"]),
                momentum=float(params["momentum"]),
                weight_decay=float(params["weight_decay"]),
                batch_size=batch_size,
                max_epochs=self.spec.trainer.max_epochs,
                patience=self.spec.trainer.patience,
                eval_batch_size=self.spec.trainer.eval_batch_size,
                seed=seed,
                on_epoch=on_epoch,
                should_stop=self.stop.is_set,
            )
        self._record(trial, result)
        if self.weights is not None:
            self._keep_weights(trial, result.state_dict)
        return result.val_loss

    def _train_objective(self, trial: optuna.Trial, size: int, prune_check: PruneCheck, params: dict[str, Any], prune: bool) -> float:
        """The user's training loop, reporting every epoch to the pruner and early stopping."""
        assert self.objective is not None
        model = self._build(trial, size, params) if "model" in objective_arguments(self.objective) else None
        report = EpochReport(
            max_epochs=self.spec.trainer.max_epochs, patience=self.spec.trainer.patience,
            on_epoch=lambda epoch, val_loss: _prune(trial, prune_check, epoch, val_loss, prune), should_stop=self.stop.is_set,
        )
        available = {
            "trial": trial, "params": dict(params), "report": report, "model": model, "size": size,
            "train": (self.tensors.x_pool[:size], self.tensors.y_pool[:size]), "val": self.tensors.val,
            "test": self.tensors.test, "device": self.tensors.x_pool.device,
        }
        prune_check.start()
        with _pruned_as_such(trial, lambda: report.epochs_run):
            result = run_objective(self.objective, available, report)
        self._record(trial, result)
        if self.weights is not None and model is not None:
            self._keep_weights(trial, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        return result.val_loss

    def _build(self, trial: optuna.Trial, size: int, params: dict[str, Any]) -> torch.nn.Module:
        data = self.tensors.data
        model = build_model(self.spec.model, data.input_shape, data.num_classes, params, data.input_stats(size), builder=self.builder)
        trial.set_user_attr("n_params", count_parameters(model))
        return model.to(self.tensors.x_pool.device)

    @staticmethod
    def _record(trial: optuna.Trial, result: Any) -> None:
        """The metrics of the kept epoch and how the run went, as the trial's user attributes."""
        for key, value in (
            ("val_error", result.val_error),
            ("test_loss", result.test_loss),
            ("test_error", result.test_error),
            ("best_epoch", result.best_epoch),
            ("epochs_run", result.epochs_run),
            ("wall_time_s", round(result.wall_time_s, 3)),
            ("stopped_reason", result.stopped_reason),
        ):
            if value is not None:
                trial.set_user_attr(key, value)

    def _keep_weights(self, trial: optuna.Trial, state_dict: dict[str, torch.Tensor]) -> None:
        from scaling_optuna.storages.artifacts import save_state_dict

        try:
            save_state_dict(trial, state_dict, self.weights)
        except StorageError:
            raise
        except Exception as e:
            # The trial is trained and its numbers are stored: losing its weights must not fail it.
            _log.warning("trial %d: weights not kept (%s); the trial still counts", trial.number, describe_error(e))


def _prune(trial: optuna.Trial, prune_check: PruneCheck, epoch: int, val_loss: float, prune: bool = True) -> None:
    """Report the epoch's validation loss; raise ``optuna.TrialPruned`` when the pruner says so (and ``prune``)."""
    prune_check.report(trial, val_loss, epoch)
    if prune and prune_check.should_prune(trial):
        raise optuna.TrialPruned(f"pruned after epoch {epoch} at validation loss {val_loss:.4f}")


@contextlib.contextmanager
def _pruned_as_such(trial: optuna.Trial, epochs: Callable[[], int]) -> Iterator[None]:
    """Record the epochs of a pruned run; a diverged run (a NaN loss) ends pruned too."""
    try:
        yield
    except optuna.TrialPruned:
        trial.set_user_attr("epochs_run", epochs())
        raise
    except DivergedError as e:
        # A learning rate too large for this size: a legitimate outcome of the search, not a crash.
        trial.set_user_attr("epochs_run", epochs())
        raise optuna.TrialPruned(f"diverged: {e}") from None


def _note(trial: optuna.Trial, key: str, value: Any) -> None:
    """A note for people reading the trial; nothing depends on it, so a failed write is only logged."""
    try:
        trial.set_user_attr(key, value)
    except Exception as e:
        _log.debug("could not note %s on trial %d: %s", key, trial.number, describe_error(e))
