"""What Optuna users rely on, checked quickly on every kind of store ``open_storage`` returns.

The errors Optuna defines for a storage pass through the wrapper unchanged
(``KeyError`` for a missing study or trial, also from the gRPC proxy, whose
client raises it caused by a NOT_FOUND reply; ``DuplicatedStudyError``;
``UpdateFinishedTrialError``), and Optuna's own heartbeat is forwarded when the
wrapped storage has one. The full suites are the other modules here (slow).
"""

from __future__ import annotations

import time
from typing import Iterator

import optuna
import pytest
from optuna.storages import BaseStorage
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.study import StudyDirection
from optuna.trial import TrialState

from scaling_optuna._optuna import ForwardedHeartbeat
from scaling_optuna._optuna import is_heartbeat_enabled
from scaling_optuna.storages import open_storage
from tests.optuna_compat._stores import supply

optuna.logging.set_verbosity(optuna.logging.WARNING)

# One store of each kind for the whole module: these tests need no empty store.
KINDS = ["sqlite", "journal", "grpc", pytest.param("postgresql", marks=pytest.mark.slow), "wrapped_inmemory"]


@pytest.fixture(scope="module", params=KINDS)
def storage(request: pytest.FixtureRequest) -> Iterator[BaseStorage]:
    with supply(request.param) as storage:
        yield storage


def test_a_missing_study_or_trial_is_a_key_error(storage):
    with pytest.raises(KeyError):
        optuna.load_study(study_name="missing", storage=storage)
    with pytest.raises(KeyError):
        optuna.delete_study(study_name="missing", storage=storage)
    with pytest.raises(KeyError):
        storage.get_trial(987654)
    with pytest.raises(KeyError):
        storage.get_study_name_from_id(987654)


def test_a_taken_study_name_is_optunas_duplicated_study_error(storage):
    storage.create_new_study([StudyDirection.MINIMIZE], "taken")
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        storage.create_new_study([StudyDirection.MINIMIZE], "taken")
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        optuna.create_study(study_name="taken", storage=storage)
    assert optuna.create_study(study_name="taken", storage=storage, load_if_exists=True).study_name == "taken"


def test_writing_to_a_finished_trial_is_optunas_update_finished_trial_error(storage):
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    study.tell(trial, 1.0)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), 0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [2.0])
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial_id, "k", 1)


def test_stores_of_the_project_have_optunas_heartbeat_interface_switched_off(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'store.db'}", create=True)
    # The project beats on its own (trial attributes on every store): Optuna's is off, as on a plain RDBStorage.
    assert isinstance(storage, ForwardedHeartbeat) and not is_heartbeat_enabled(storage)
    assert storage.get_heartbeat_interval() is None and storage.get_heartbeat_stale_trial_callback() is None


@pytest.mark.parametrize("mode", ["wrapped_cached_rdb", pytest.param("wrapped_rdb", marks=pytest.mark.slow)])
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_optunas_heartbeat_works_through_the_wrapper(mode):
    """A stale trial is failed and retried by RetryHeartbeatStaleTrialCallback, as without the wrapper."""
    callback = RetryHeartbeatStaleTrialCallback(max_retry=1)
    with supply(mode, heartbeat_interval=1, grace_period=1, heartbeat_stale_trial_callback=callback) as storage:
        assert is_heartbeat_enabled(storage)
        assert storage.get_heartbeat_interval() == 1 and storage.get_heartbeat_stale_trial_callback() is callback
        study = optuna.create_study(storage=storage)
        with pytest.warns(UserWarning):  # Optuna warns that the heartbeat of an asked trial is not recorded
            trial = study.ask()
        trial.suggest_float("x", 0, 1)
        storage.record_heartbeat(trial._trial_id)
        time.sleep(2.2)  # past the grace period
        optuna.storages.fail_stale_trials(study)
        first, retry = study.get_trials(deepcopy=False)
        assert first.state == TrialState.FAIL and retry.state == TrialState.WAITING
        assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 0 and retry.params == first.params
