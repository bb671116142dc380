"""Which studies of a store belong to an experiment, and a study's identity written so that a kill cannot break it.

A study of experiment ``digits`` is named ``digits-n0001151`` and carries
user attributes that tie it to the experiment: its size, the fingerprint of
its data, the hash of the spec parts that decide what a trial computes, and
more (:func:`study_attrs`). Optuna creates a study and writes each attribute
in steps of their own, so a creation can be cut off between any two of them.
:func:`commit` therefore writes the experiment's name last, after the rest of
the identity and the queued budget: a study that carries the name is whole.

A study named like one of the experiment's but without the name is either
one whose creation was cut off (:func:`looks_interrupted`: it minimises, holds
only attributes of this identity and no trial that ever started) or a
foreign study, which is refused. Readers (``status``, ``report``, workers)
pass over an interrupted study; the next ``create`` finishes it.

Example::

    from scaling_optuna.identity import survey

    found = survey(spec, storage)
    print(sorted(found.ready), sorted(found.interrupted))
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Mapping

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna.errors import ExperimentMismatchError
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.storages import RetryingStorage
from scaling_optuna.storages._shared import BUDGET_ATTR
from scaling_optuna.storages._shared import EXPERIMENT_ATTR
from scaling_optuna.storages._shared import HEARTBEAT_ATTR
from scaling_optuna.storages._shared import WITHDRAWN
from scaling_optuna.storages._shared import ended_reason

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy

    from scaling_optuna.data import Dataset

ATTR_BUDGET = BUDGET_ATTR
PLUGINS_ATTR = "plugins"
REMEASURE_SETTING_ATTR = "remeasure"  # the study's re-measuring setting (scaling_optuna.remeasure writes it)
# Without these a study cannot be checked against a spec or its data.
REQUIRED_ATTRS = ("size", "fingerprint", "spec_hash")
IDENTITY_ATTRS = (
    EXPERIMENT_ATTR, "size", "fingerprint", "spec_hash", "pool_size", "dataset", "model", "majority_error",
    "test_size", "input_shape", "num_classes", ATTR_BUDGET, PLUGINS_ATTR, REMEASURE_SETTING_ATTR,
)


def study_name(experiment: str, size: int) -> str:
    return f"{experiment}-n{size:07d}"


def study_attrs(spec: ExperimentSpec, data: "Dataset", size: int, plugins: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The identity of ``spec``'s study of ``size`` examples on ``data`` (without the budget).

    ``plugins``: module and package version of each plug-in, so that a worker importing another version refuses to run.
    """
    attrs = {
        EXPERIMENT_ATTR: spec.name,
        "size": size,
        "fingerprint": data.fingerprint(size),
        "spec_hash": spec.compatibility_hash(),
        "pool_size": data.pool_size,
        "dataset": spec.data.loader or spec.data.dataset,
        "model": spec.builder or spec.model,
        "majority_error": data.majority_error(),
        # how many examples every test error was measured on: the report's band for a measured value needs it
        "test_size": int(len(data.y_test)),
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
    }
    if plugins:
        attrs[PLUGINS_ATTR] = dict(plugins)
    return attrs


def write_identity(study: optuna.Study, attrs: Mapping[str, Any]) -> None:
    """Write every attribute of ``attrs`` but the experiment's name (see :func:`commit`) that the study lacks."""
    stored = study.user_attrs
    for key, value in attrs.items():
        if key != EXPERIMENT_ATTR and stored.get(key) != value:
            study.set_user_attr(key, value)


def commit(study: optuna.Study, experiment: str) -> None:
    """Mark ``study`` whole: the last write of its creation, after its identity and its queued budget."""
    if study.user_attrs.get(EXPERIMENT_ATTR) != experiment:
        study.set_user_attr(EXPERIMENT_ATTR, experiment)


@dataclasses.dataclass(frozen=True)
class Survey:
    """The experiment's studies in a store: ``ready`` (whole) and ``interrupted``, by name, with their attributes."""

    ready: dict[str, dict[str, Any]]
    interrupted: dict[str, dict[str, Any]]

    def sizes(self) -> list[int]:
        return sorted(int(attrs["size"]) for attrs in self.ready.values())


def survey(spec: ExperimentSpec, storage: RetryingStorage) -> Survey:
    """Sort the store's studies named like ``spec``'s into whole ones and interrupted creations.

    Raises:
        ExperimentMismatchError: a whole study was created from an incompatible
            spec, or a study with the experiment's name pattern is not one of its own.
    """
    ready, interrupted = {}, {}
    for study in storage.get_all_studies():
        attrs = study.user_attrs
        if is_whole(spec, attrs):
            check_compatible(spec, study.study_name, attrs)
            ready[study.study_name] = attrs
        elif _named_like(spec, study.study_name) or attrs.get(EXPERIMENT_ATTR) == spec.name:
            if not looks_interrupted(spec, study, storage):
                raise _foreign(spec, study.study_name)
            interrupted[study.study_name] = attrs
    return Survey(ready, interrupted)


def find_sizes(spec: ExperimentSpec, storage: RetryingStorage) -> list[int]:
    """Sizes of the experiment's whole studies in ``storage``, checking they match the spec.

    Studies whose creation was cut off are passed over (the next ``create`` finishes them).

    Raises:
        ExperimentMismatchError: a study has the experiment's name pattern but
            was not created by it, or was created from an incompatible spec.
    """
    return survey(spec, storage).sizes()


def is_whole(spec: ExperimentSpec, attrs: Mapping[str, Any]) -> bool:
    """Whether a study with user attributes ``attrs`` is a whole study of ``spec``'s experiment."""
    return attrs.get(EXPERIMENT_ATTR) == spec.name and all(key in attrs for key in REQUIRED_ATTRS)


def looks_interrupted(spec: ExperimentSpec, study: "FrozenStudy", storage: RetryingStorage) -> bool:
    """Whether ``study`` is a creation of ``spec``'s experiment that was cut off.

    It minimises one objective, holds no user attribute but those of the
    identity (an older version wrote the experiment's name first), and no
    trial of it ever trained (only queued ones, and surplus that a creation
    withdrew): adopting it can take nothing from anyone.
    """
    if study.directions != [StudyDirection.MINIMIZE] or not _named_like(spec, study.study_name):
        return False
    if any(key not in IDENTITY_ATTRS for key in study.user_attrs):
        return False
    if study.user_attrs.get(EXPERIMENT_ATTR, spec.name) != spec.name:
        return False
    trials = storage.get_all_trials(storage.get_study_id_from_name(study.study_name), deepcopy=False)
    return all(_never_ran(t) for t in trials)


def _never_ran(trial: FrozenTrial) -> bool:
    """Queued, or withdrawn by a creation (two at once trim each other's surplus), or being withdrawn."""
    if trial.state == TrialState.FAIL:
        return ended_reason(trial) == WITHDRAWN
    # A creation claims a surplus trial (RUNNING) before it ends it as withdrawn; a worker's trial beats.
    return trial.state == TrialState.WAITING or (trial.state == TrialState.RUNNING and HEARTBEAT_ATTR not in trial.system_attrs)


def check_compatible(spec: ExperimentSpec, name: str, attrs: Mapping[str, Any]) -> None:
    """Refuse a study of the experiment created from a spec whose data, model, search space or trainer differ."""
    stored = attrs.get("spec_hash")
    if stored != spec.compatibility_hash():
        raise ExperimentMismatchError(
            f"study {name!r} was created from a different spec of experiment {spec.name!r} "
            f"(spec hash {stored}, this spec {spec.compatibility_hash()}): its data, model, search space "
            "or trainer changed; give the experiment a new name or use another store"
        )


def check_reopen(spec: ExperimentSpec, name: str, attrs: Mapping[str, Any], fingerprint: str) -> None:
    """Refuse to go on with a study (whole, or begun) that another spec or other data began."""
    if "spec_hash" in attrs:
        check_compatible(spec, name, attrs)
    if "fingerprint" in attrs and attrs["fingerprint"] != fingerprint:
        raise ExperimentMismatchError(
            f"study {name!r} was created from other data (fingerprint {attrs.get('fingerprint')}, "
            f"local data {fingerprint}); use the same dataset files and seed, or a new experiment name"
        )


def _named_like(spec: ExperimentSpec, name: str) -> bool:
    return re.fullmatch(re.escape(spec.name) + r"-n\d{7}", name) is not None


def _foreign(spec: ExperimentSpec, name: str) -> ExperimentMismatchError:
    return ExperimentMismatchError(
        f"study {name!r} has the name of one of experiment {spec.name!r}'s studies but was not created by "
        "scaling-optuna for it (it carries no experiment fingerprint); rename the experiment in the spec, "
        "or use another store"
    )
