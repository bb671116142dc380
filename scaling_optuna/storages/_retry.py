"""A store that survives a flaky connection: Optuna's storage, wrapped.

:class:`RetryingStorage` holds another :class:`optuna.storages.BaseStorage`
and forwards every call, the way Optuna's own ``_CachedStorage(backend)``
wraps an ``RDBStorage``:

- reads and writes that leave the store as one call would, however often they
  are repeated, are retried with backoff while the error is transient (a busy
  store, a lost connection, a restarting server), for up to ``deadline_s``;
- writes that must happen once (creating a study or a trial, changing a
  trial's state) are retried only where a failed call surely did not commit
  (SQLite, where no reply can be lost); elsewhere the caller, which knows how
  to check what happened, decides;
- errors that waiting cannot cure (a full disk, a read-only store, a missing
  table, a wrong password) become one :class:`~scaling_optuna.errors.StorageError`
  naming the fix, at once;
- errors Optuna's storages raise by contract (``KeyError`` for a missing
  study or trial, ``DuplicatedStudyError``, ``UpdateFinishedTrialError``) pass
  through unchanged, from every backend, the gRPC proxy's included;
- Optuna's own heartbeat is forwarded when the backend has one.

A ``stop`` event ends the waiting between retries at once, so that a worker
told to stop does not sit out an outage first.

Example::

    backend = optuna.storages.RDBStorage("sqlite:///scaling-optuna.db")
    storage = RetryingStorage(backend, local=True)
    optuna.load_study(study_name="digits-n0000060", storage=storage)
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Container, Sequence, TypeVar

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna._optuna import ForwardedHeartbeat
from scaling_optuna.errors import StorageError
from scaling_optuna.storages._errors import describe_error
from scaling_optuna.storages._errors import fatal_reason
from scaling_optuna.storages._errors import is_transient

if TYPE_CHECKING:  # Optuna exports no public name for the frozen study that get_all_studies returns
    from scaling_optuna._optuna import FrozenStudy

RETRY_DEADLINE_S = 60
_log = logging.getLogger("scaling_optuna.storage")
_T = TypeVar("_T")

# Every method of BaseStorage that touches the store, by how a failed call may be repeated.
# tests/test_storages.py checks that each still exists on BaseStorage with the same signature.
READS = (
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
)
REPEATABLE_WRITES = (
    "set_study_user_attr",
    "set_study_system_attr",
    "set_trial_param",  # a repeat hits the (trial, name) key, which Optuna treats as the same value
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
)
ONCE_ONLY_WRITES = ("create_new_study", "delete_study", "create_new_trial", "set_trial_state_values")


def call_with_retries(
    fn: Callable[[], _T], *, what: str, deadline_s: float = RETRY_DEADLINE_S, stop: threading.Event | None = None
) -> _T:
    """Call ``fn`` until it succeeds, retrying transient store errors with backoff for ``deadline_s``.

    Only for calls that are safe to repeat. Other errors, and the last
    transient one (at the deadline, or at once when ``stop`` is set), are raised.

    Example::

        trials = call_with_retries(lambda: study.get_trials(deepcopy=False), what="reading trials")
    """
    # A loop of its own rather than tenacity's: every store call pays for the loop, nearly all
    # succeed at once, and tenacity's bookkeeping costs some 25 µs a call, about 30 times this
    # loop (benchmarks/retry_overhead.py, BENCHMARKS.md), for three lines saved.
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                raise
            delay = backoff(attempt)
            if time.monotonic() - start + delay > deadline_s or (stop is not None and stop.is_set()):
                raise
            _log.warning(
                "store busy or unreachable during %s (%s); retry %d in %.1f s", what, describe_error(e), attempt, delay,
                extra={"event": "store_retry", "attempt": attempt, "retry_in_s": round(delay, 1)},
            )
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)


def backoff(attempt: int, *, first_s: float = 0.25, cap_s: float = 5.0) -> float:
    """Exponential backoff with jitter: about 0.25, 0.5, 1, 2, ... seconds, at most ``cap_s``.

    The cap is short: a restarted database is back within seconds, and a longer
    sleep would leave the worker idle that long after it returned.
    """
    base = min(cap_s, first_s * 2 ** (attempt - 1))
    return base * random.uniform(0.75, 1.25)


class RetryingStorage(BaseStorage, ForwardedHeartbeat):
    """``backend`` with transient errors retried and incurable ones named (see the module docstring).

    Errors Optuna defines for its storages (``KeyError`` for a missing record,
    ``DuplicatedStudyError``, ``UpdateFinishedTrialError``) pass through
    unchanged. Optuna's heartbeat interface is forwarded when ``backend`` has
    one, as Optuna's ``_CachedStorage`` forwards it, so that
    ``is_heartbeat_enabled`` and ``RetryHeartbeatStaleTrialCallback`` see
    through the wrapper.

    Args:
        backend: the storage to wrap.
        local: a failed call surely did not commit (SQLite), so once-only writes may be retried too.
        deadline_s: how long one call keeps retrying; 0 turns retries off.
        stop: when set, a call waiting to retry gives up at once.
        write_scope: entered around every write (SQLite uses it to take the write lock first).
    """

    def __init__(
        self,
        backend: BaseStorage,
        *,
        local: bool = False,
        deadline_s: float = RETRY_DEADLINE_S,
        stop: threading.Event | None = None,
        write_scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        self.backend = backend
        self.local, self.deadline_s, self.stop = local, deadline_s, stop
        self._write_scope = write_scope

    def __repr__(self) -> str:
        return f"RetryingStorage({type(self.backend).__name__})"

    def without_retries(self) -> RetryingStorage:
        """The same store with retries off, for calls that are repeated anyway (heartbeats, sweeps)."""
        return RetryingStorage(self.backend, local=self.local, deadline_s=0, stop=self.stop, write_scope=self._write_scope)

    # -- the three kinds of call ------------------------------------------------

    def _read(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, args, kwargs, retry=True, write=False)

    def _write(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, args, kwargs, retry=True, write=True)

    def _write_once(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, args, kwargs, retry=self.local, write=True)

    def _call(self, name: str, args: tuple, kwargs: dict, *, retry: bool, write: bool) -> Any:
        method = getattr(self.backend, name)

        def once() -> Any:
            with self._write_scope() if write else contextlib.nullcontext():
                return method(*args, **kwargs)

        try:
            if retry and self.deadline_s > 0:
                return call_with_retries(once, what=name, deadline_s=self.deadline_s, stop=self.stop)
            return once()
        except Exception as e:
            reason = fatal_reason(e)
            if reason is None:  # Optuna's own errors (a missing record: KeyError) among them, unchanged
                raise
            raise StorageError(f"{reason} ({describe_error(e)})") from None

    # -- studies ----------------------------------------------------------------

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self._write_once("create_new_study", directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._write_once("delete_study", study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._write("set_study_user_attr", study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._write("set_study_system_attr", study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._read("get_study_id_from_name", study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._read("get_study_name_from_id", study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._read("get_study_directions", study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._read("get_study_user_attrs", study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._read("get_study_system_attrs", study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._read("get_all_studies")

    # -- trials -----------------------------------------------------------------

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._write_once("create_new_trial", study_id, template_trial)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution) -> None:
        self._write("set_trial_param", trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._read("get_trial_id_from_study_id_trial_number", study_id, trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self._read("get_trial_number_from_id", trial_id)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return self._read("get_trial_param", trial_id, param_name)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        return self._write_once("set_trial_state_values", trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._write("set_trial_intermediate_value", trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._write("set_trial_user_attr", trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._write("set_trial_system_attr", trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._read("get_trial", trial_id)

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._read("get_all_trials", study_id, deepcopy=deepcopy, states=states)

    def get_n_trials(self, study_id: int, state: tuple[TrialState, ...] | TrialState | None = None) -> int:
        return self._read("get_n_trials", study_id, state)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._read("get_best_trial", study_id)

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return self._read("get_trial_params", trial_id)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._read("get_trial_user_attrs", trial_id)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._read("get_trial_system_attrs", trial_id)

    # -- Optuna's heartbeat, where the backend has it ---------------------------------

    def _heartbeat_backend(self) -> BaseStorage:
        return self.backend

    def _heartbeat_call(self, name: str, *args: Any) -> Any:
        return self._call(name, args, {}, retry=True, write=name == "record_heartbeat")

    # -- no store access ----------------------------------------------------------

    def remove_session(self) -> None:
        self.backend.remove_session()

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        self.backend.check_trial_is_updatable(trial_id, trial_state)
