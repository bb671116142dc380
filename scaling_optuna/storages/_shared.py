"""The store's internals that the other rooms of the package share: not a user API.

The rooms above the store (the experiment, the workers, the command line)
mark trials the same way the store's sweep reads them, retry the same errors
and watch the same heartbeats, so they need the store's attribute names,
its recovery of lost trials and its retry rules. Those names live here, in
one declared module, rather than in :mod:`scaling_optuna.storages` (which
exports only what a user calls: :func:`~scaling_optuna.storages.open_storage`
and its URL helpers) or in the store's private modules (which no other room
may import; ``tests/test_architecture.py`` allows this module alone).

Anything here may change without notice between versions.

Example::

    >>> from scaling_optuna.storages._shared import checked_grace_period
    >>> checked_grace_period(10, None)  # three heartbeat intervals unless told
    30
"""

from __future__ import annotations

from scaling_optuna.storages._errors import describe_error
from scaling_optuna.storages._errors import is_transient
from scaling_optuna.storages._recovery import BUDGET_ATTR
from scaling_optuna.storages._recovery import BUDGET_STATES
from scaling_optuna.storages._recovery import ENDED_ATTR
from scaling_optuna.storages._recovery import EXPERIMENT_ATTR
from scaling_optuna.storages._recovery import HANDED_BACK
from scaling_optuna.storages._recovery import HEARTBEAT_ATTR
from scaling_optuna.storages._recovery import HEARTBEAT_INTERVAL_S
from scaling_optuna.storages._recovery import LOST
from scaling_optuna.storages._recovery import QUEUED_BY_ATTR
from scaling_optuna.storages._recovery import REMEASURE_ATTR
from scaling_optuna.storages._recovery import REPLACES_ATTR
from scaling_optuna.storages._recovery import WITHDRAWN
from scaling_optuna.storages._recovery import beat_value
from scaling_optuna.storages._recovery import checked_grace_period
from scaling_optuna.storages._recovery import completed_outside
from scaling_optuna.storages._recovery import end_trial
from scaling_optuna.storages._recovery import ended_outside
from scaling_optuna.storages._recovery import ended_reason
from scaling_optuna.storages._recovery import holds_place
from scaling_optuna.storages._recovery import queue_replacement
from scaling_optuna.storages._recovery import replacement_of
from scaling_optuna.storages._recovery import short_of_budget
from scaling_optuna.storages._recovery import superseded
from scaling_optuna.storages._recovery import withdraw
from scaling_optuna.storages._retry import backoff
from scaling_optuna.storages._retry import call_with_retries
from scaling_optuna.storages._sweep import OUTSIDE
from scaling_optuna.storages._sweep import Sweep
from scaling_optuna.storages._sweep import SweepResult

__all__ = [
    "BUDGET_ATTR",
    "BUDGET_STATES",
    "ENDED_ATTR",
    "EXPERIMENT_ATTR",
    "HANDED_BACK",
    "HEARTBEAT_ATTR",
    "HEARTBEAT_INTERVAL_S",
    "LOST",
    "OUTSIDE",
    "QUEUED_BY_ATTR",
    "REMEASURE_ATTR",
    "REPLACES_ATTR",
    "Sweep",
    "SweepResult",
    "WITHDRAWN",
    "backoff",
    "beat_value",
    "call_with_retries",
    "checked_grace_period",
    "completed_outside",
    "describe_error",
    "end_trial",
    "ended_outside",
    "ended_reason",
    "holds_place",
    "is_transient",
    "queue_replacement",
    "replacement_of",
    "short_of_budget",
    "superseded",
    "withdraw",
]
