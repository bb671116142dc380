"""One trial: suggest its parameters, train its model on one size, and say how it ended.

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

import dataclasses
import logging
import threading
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from scaling_optuna.data import Dataset
from scaling_optuna.errors import StorageError
from scaling_optuna.model import build_model
from scaling_optuna.model import count_parameters
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.spec import suggest_params
from scaling_optuna.storages import describe_error
from scaling_optuna.storages import is_transient
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
        data, device = self.tensors.data, self.tensors.x_pool.device
        # The initial weights depend on the trial alone, not on what this process ran before.
        seed = self.spec.seed * 1_000_003 + trial.number
        torch.manual_seed(seed)
        model = build_model(self.spec.model, data.input_shape, data.num_classes, params, data.input_stats(size)).to(device)
        batch_size = self.spec.batch_size_for(size, params)
        trial.set_user_attr("n_params", count_parameters(model))
        trial.set_user_attr("batch_size_used", batch_size)
        trial.set_user_attr("worker", self.who)
        epochs_seen = [0]
        prune_check.start()

        def on_epoch(epoch: int, val_loss: float, val_error: float) -> None:
            epochs_seen[0] = epoch
            prune_check.report(trial, val_loss, epoch)
            if prune and prune_check.should_prune(trial):
                raise optuna.TrialPruned(f"pruned after epoch {epoch} at validation loss {val_loss:.4f}")

        try:
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
        except optuna.TrialPruned:
            trial.set_user_attr("epochs_run", epochs_seen[0])
            raise
        except DivergedError as e:
            # A learning rate too large for this size: a legitimate outcome of the search, not a crash.
            trial.set_user_attr("epochs_run", epochs_seen[0])
            raise optuna.TrialPruned(f"diverged: {e}") from None
        for key, value in (
            ("val_error", result.val_error),
            ("test_loss", result.test_loss),
            ("test_error", result.test_error),
            ("best_epoch", result.best_epoch),
            ("epochs_run", result.epochs_run),
            ("wall_time_s", round(result.wall_time_s, 3)),
            ("stopped_reason", result.stopped_reason),
        ):
            trial.set_user_attr(key, value)
        if self.weights is not None:
            self._keep_weights(trial, result.state_dict)
        return result.val_loss

    def _keep_weights(self, trial: optuna.Trial, state_dict: dict[str, torch.Tensor]) -> None:
        from scaling_optuna.storages.artifacts import save_state_dict

        try:
            save_state_dict(trial, state_dict, self.weights)
        except StorageError:
            raise
        except Exception as e:
            # The trial is trained and its numbers are stored: losing its weights must not fail it.
            _log.warning("trial %d: weights not kept (%s); the trial still counts", trial.number, describe_error(e))


def _note(trial: optuna.Trial, key: str, value: Any) -> None:
    """A note for people reading the trial; nothing depends on it, so a failed write is only logged."""
    try:
        trial.set_user_attr(key, value)
    except Exception as e:
        _log.debug("could not note %s on trial %d: %s", key, trial.number, describe_error(e))
