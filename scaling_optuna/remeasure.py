"""Re-measuring the winners: a size's best configurations re-trained with fresh seeds after its search.

With a dozen trials per size, which trial wins by validation loss changes from
run to run, and the winner's test error is one initialisation measured once.
So once the search of a size has finished, its ``top`` best configurations —
the distinct parameter sets of its complete search trials, the untuned
baseline included, ranked by validation loss — are each trained ``repeats``
more times. Every re-run has its own trial number and so its own seed.

**Re-runs are queued trials, like the search budget.** ``create`` queues
``top × repeats`` WAITING *placeholders* per study, each marked with the user
attribute ``remeasure = {"rank": k, "repeat": j}`` (its *slot*), and records
the setting in the study's user attribute ``remeasure``. A worker claims a
placeholder only once the study's search has finished; it then resolves which
configuration rank k is, fixes its parameters on the claimed trial (Optuna's
``fixed_params`` system attribute, as ``study.enqueue_trial`` does) and records
``remeasure_of``, the trial number of the configuration's original run. A
placeholder that is handed back or lost is replaced by a placeholder of the
same slot. Everything is a plain Optuna attribute, so optuna-dashboard and
``optuna.load_study`` read it.

Example::

    from scaling_optuna.remeasure import configuration_groups, search_finished

    trials = study.get_trials(deepcopy=False)
    if search_finished(trials, budget=12):
        for original, runs in configuration_groups(trials):
            print(original.number, [t.number for t in runs])
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Iterable, Mapping

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna._optuna import FIXED_PARAMS_ATTR
from scaling_optuna.spec import RemeasureSpec
from scaling_optuna.storages._shared import REMEASURE_ATTR
from scaling_optuna.storages._shared import completed_outside
from scaling_optuna.storages._shared import withdraw

__all__ = [
    "NEAR_BEST",
    "REMEASURE_OF_ATTR",
    "SETTING_ATTR",
    "configuration_groups",
    "fix_configuration",
    "is_remeasure",
    "missing_trials",
    "placeholders_open",
    "search_finished",
    "set_placeholders",
    "slots",
    "stored_setting",
]

# The study's user attribute holding its setting, {"top": t, "repeats": r}.
SETTING_ATTR = "remeasure"
# A re-run's user attribute: the trial number of the run it repeats.
REMEASURE_OF_ATTR = "remeasure_of"
# A configuration whose validation loss is more than this fraction above the best one's would not
# be chosen however its re-runs scatter (at small sizes the runner-up is often at chance level):
# its slot re-runs the best configuration instead, which narrows the size's point.
NEAR_BEST = 0.25
_HELD = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# An old store, or a study whose setting was never recorded, re-measures nothing.
_OFF = RemeasureSpec(top=1, repeats=0)

Slot = tuple[int, int]


def is_remeasure(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is a re-measure trial (a placeholder, a re-run, or a placeholder's replacement)."""
    return REMEASURE_ATTR in trial.user_attrs


def stored_setting(study_attrs: Mapping[str, Any]) -> RemeasureSpec:
    """The setting a study records (``repeats = 0`` when it records none, as in older stores)."""
    value = study_attrs.get(SETTING_ATTR)
    if not isinstance(value, dict):
        return _OFF
    top, repeats = value.get("top"), value.get("repeats")
    if not (_is_count(top) and top >= 1 and _is_count(repeats)):
        return _OFF
    return RemeasureSpec(top=top, repeats=repeats)


def search_finished(trials: Iterable[FrozenTrial], budget: int) -> bool:
    """No search trial is queued or running, and ``budget`` of them finished (complete or pruned)."""
    finished = 0
    for t in trials:
        if is_remeasure(t):
            continue
        if t.state in (TrialState.WAITING, TrialState.RUNNING):
            return False
        finished += t.state in _FINISHED and not completed_outside(t)
    return finished >= budget


def placeholders_open(active: Iterable[FrozenTrial], finished_count: Callable[[], tuple[int, int]]) -> bool:
    """Whether a worker may claim the queued placeholders among ``active`` (WAITING and RUNNING trials).

    ``finished_count()`` (called only when the answer depends on it) returns
    how many search trials finished and the search budget.
    """
    active = list(active)
    if any(not is_remeasure(t) for t in active):
        return False  # a search trial is still queued or running
    if not any(t.state == TrialState.WAITING for t in active):
        return False
    finished, budget = finished_count()
    return finished >= budget


def slots(setting: RemeasureSpec, budget: int, trials: Iterable[FrozenTrial]) -> list[Slot]:
    """The (rank, repeat) slots a study with search budget ``budget`` re-measures.

    No slot once its search has finished without one complete trial: there
    is no configuration to re-measure.
    """
    trials = list(trials)
    if search_finished(trials, budget) and not any(t.state == TrialState.COMPLETE and not is_remeasure(t) for t in trials):
        return []
    return [(rank, repeat) for rank in range(min(setting.top, budget)) for repeat in range(setting.repeats)]


def missing_trials(trials: Iterable[FrozenTrial], budget: int, setting: RemeasureSpec) -> int:
    """How many search trials and re-runs must still finish (queued, running or not yet queued)."""
    trials = list(trials)
    search = sum(t.state in _FINISHED for t in trials if not is_remeasure(t))
    rerun = sum(t.state in _FINISHED for t in trials if is_remeasure(t))
    return max(0, budget - search) + max(0, len(slots(setting, budget, trials)) - rerun)


def set_placeholders(storage: BaseStorage, study: optuna.Study, budget: int, setting: RemeasureSpec | None = None) -> None:
    """Queue the missing placeholders of ``setting`` (default: the stored one), withdraw unstarted surplus ones.

    Records the setting on the study. A slot is held by its queued, running or
    finished trials; only a queued (never a started) surplus trial is withdrawn.
    """
    if setting is None:
        setting = stored_setting(study.user_attrs)
    elif study.user_attrs.get(SETTING_ATTR) != dataclasses.asdict(setting):
        study.set_user_attr(SETTING_ATTR, dataclasses.asdict(setting))
    trials = study.get_trials(deepcopy=False)
    wanted = slots(setting, budget, trials)
    held = _held_slots(trials)
    for rank, repeat in wanted:
        if not held.get((rank, repeat)):
            slot = {REMEASURE_ATTR: {"rank": rank, "repeat": repeat}}
            study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=slot))
    # Counted again, not from ``held``: processes doing this together each queue what they found missing.
    _withdraw_surplus(storage, study, set(wanted))


def _withdraw_surplus(storage: BaseStorage, study: optuna.Study, wanted: set[Slot]) -> None:
    """Withdraw queued placeholders of unwanted slots, and of wanted slots all but the lowest-numbered.

    A trial's rank within its slot (its number) changes with nothing a
    process does, so processes trimming together name the same trials and
    withdraw each surplus once, never more.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    for slot, held in _held_slots(study.get_trials(deepcopy=False)).items():
        keep = 1 if slot in wanted else 0
        for trial in held[keep:]:
            if trial.state == TrialState.WAITING:
                withdraw(storage, study_id, trial.number, who="budget")


def _held_slots(trials: Iterable[FrozenTrial]) -> dict[Slot, list[FrozenTrial]]:
    held: dict[Slot, list[FrozenTrial]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        slot = _slot(trial)
        if slot is not None and trial.state in _HELD:
            held.setdefault(slot, []).append(trial)
    return held


def _slot(trial: FrozenTrial) -> Slot | None:
    value = trial.user_attrs.get(REMEASURE_ATTR)
    if isinstance(value, dict) and _is_count(value.get("rank")) and _is_count(value.get("repeat")):
        return value["rank"], value["repeat"]
    return None


def configuration_groups(trials: Iterable[FrozenTrial]) -> list[tuple[FrozenTrial, list[FrozenTrial]]]:
    """The complete trials grouped by configuration: (its original run, every run of it by number).

    Every complete search trial is the original run of a configuration, best
    (lowest validation loss) first; a re-run joins the one it names in
    ``remeasure_of``. Until a re-run finishes, each configuration is one
    trial, as without re-measuring.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    search = sorted((t for t in complete if not is_remeasure(t)), key=lambda t: (t.value, t.number))
    groups: dict[int, list[FrozenTrial]] = {t.number: [t] for t in search}
    for trial in complete:
        if is_remeasure(trial):
            of = trial.user_attrs.get(REMEASURE_OF_ATTR)
            groups.setdefault(of if of in groups else trial.number, []).append(trial)
    return [(runs[0], sorted(runs, key=lambda t: t.number)) for runs in groups.values()]


def fix_configuration(storage: BaseStorage, trial_id: int, placeholder: FrozenTrial, complete: list[FrozenTrial]) -> FrozenTrial | None:
    """Turn the claimed ``placeholder`` into a re-run of the configuration its rank names.

    Rank k is the k-th best configuration among the complete search trials
    ``complete``, or the best one where fewer than k + 1 lie within
    :data:`NEAR_BEST` of the best one's validation loss. Sets
    ``fixed_params`` (read when ``optuna.Trial`` is built: call this first)
    and ``remeasure_of``; returns the configuration's original run, or None
    when no search trial completed.
    """
    originals = _distinct_configurations(complete)
    if not originals:
        return None
    originals = [t for t in originals if t.value <= originals[0].value + NEAR_BEST * abs(originals[0].value)]
    rank = (_slot(placeholder) or (0, 0))[0]
    original = originals[rank] if rank < len(originals) else originals[0]
    storage.set_trial_system_attr(trial_id, FIXED_PARAMS_ATTR, dict(original.params))
    storage.set_trial_user_attr(trial_id, REMEASURE_OF_ATTR, original.number)
    return original


def _distinct_configurations(complete: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The best complete search run of each distinct parameter set, best first."""
    seen: set[str] = set()
    originals = []
    search = (t for t in complete if t.state == TrialState.COMPLETE and t.value is not None and not is_remeasure(t))
    for trial in sorted(search, key=lambda t: (t.value, t.number)):
        key = json.dumps(trial.params, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            originals.append(trial)
    return originals


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
