"""Each assumption ``scaling_optuna/_optuna.py`` makes about Optuna's private names, against the installed Optuna.

An Optuna upgrade that breaks one fails here, by name.
"""

from __future__ import annotations

import inspect

import optuna
import pytest
from optuna.storages import RetryFailedTrialCallback
from optuna.trial import TrialState

from scaling_optuna import _optuna
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._retry import RetryingStorage

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Most of what is checked here is experimental in Optuna (the heartbeat, PatientPruner): that is why it is checked.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def test_the_heartbeat_interface_is_the_four_methods_forwarded():
    from optuna.storages._heartbeat import BaseHeartbeat

    abstract = set(BaseHeartbeat.__abstractmethods__)
    assert abstract == {"record_heartbeat", "_get_stale_trial_ids", "get_heartbeat_interval", "get_heartbeat_stale_trial_callback"}
    assert abstract <= set(vars(_optuna.ForwardedHeartbeat))
    for name in abstract:
        ours = inspect.signature(getattr(_optuna.ForwardedHeartbeat, name))
        assert list(ours.parameters) == list(inspect.signature(getattr(BaseHeartbeat, name)).parameters), name


def test_is_heartbeat_enabled_asks_the_interface_and_its_interval(tmp_path):
    on = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'on.db'}", heartbeat_interval=5, grace_period=10)
    off = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'off.db'}")
    assert _optuna.is_heartbeat_enabled(RetryingStorage(on)) and _optuna.is_heartbeat_enabled(on)
    assert not _optuna.is_heartbeat_enabled(RetryingStorage(off)) and not _optuna.is_heartbeat_enabled(off)
    assert not _optuna.is_heartbeat_enabled(RetryingStorage(optuna.storages.InMemoryStorage()))


def test_optuna_fails_stale_trials_through_the_private_method_it_forwards(tmp_path):
    """``fail_stale_trials`` finds stale trials through ``_get_stale_trial_ids`` of the storage it is given."""
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=1, grace_period=1)
    asked: list[int] = []

    class Watching(RetryingStorage):
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            asked.append(study_id)
            return super()._get_stale_trial_ids(study_id)

    study = optuna.create_study(storage=Watching(rdb))
    optuna.storages.fail_stale_trials(study)
    assert asked == [study._study_id]


def test_cached_is_optunas_cache_around_an_rdb_storage(tmp_path):
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=7)
    storage = _optuna.cached(rdb)
    assert type(storage) is type(optuna.storages.get_storage(rdb))
    assert storage.get_heartbeat_interval() == 7  # the cache forwards Optuna's heartbeat, as the wrapper does
    study = optuna.create_study(storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2


def test_the_proxy_service_serves_optunas_grpc_clients(tmp_path):
    import grpc
    from concurrent.futures import ThreadPoolExecutor

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    _optuna.add_proxy_service(server, open_storage(f"sqlite:///{tmp_path / 'p.db'}", create=True))
    server.start()
    try:
        client = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        client.wait_server_ready(timeout=30)
        optuna.create_study(storage=client, study_name="via-grpc").enqueue_trial({"x": 1.0})
        assert optuna.load_study(study_name="via-grpc", storage=client).get_trials()[0].state == TrialState.WAITING
        client.close()
    finally:
        server.stop(grace=None)


def test_patient_pruner_keeps_the_pruner_it_wraps():
    median = optuna.pruners.MedianPruner()
    assert _optuna.pruner_inside(optuna.pruners.PatientPruner(median, patience=1)) is median
    assert _optuna.pruner_inside(optuna.pruners.PatientPruner(None, patience=1)) is None
    assert _optuna.pruner_inside(median) is None


def test_enqueued_parameters_live_in_the_fixed_params_attribute_and_are_suggested():
    study = optuna.create_study()
    study.enqueue_trial({"x": 0.25})
    assert study.get_trials()[0].system_attrs[_optuna.FIXED_PARAMS_ATTR] == {"x": 0.25}
    # A queued trial carrying the attribute (as a replacement is queued) suggests those values.
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={_optuna.FIXED_PARAMS_ATTR: {"x": 0.75}}))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert [t.params["x"] for t in study.get_trials()] == [0.25, 0.75]


def test_retry_callback_reads_the_original_and_history_attributes():
    trial = optuna.trial.create_trial(
        state=TrialState.WAITING, system_attrs={_optuna.FAILED_TRIAL_ATTR: 3, _optuna.RETRY_HISTORY_ATTR: [3, 5]}
    )
    assert RetryFailedTrialCallback.retried_trial_number(trial) == 3
    assert RetryFailedTrialCallback.retry_history(trial) == [3, 5]


def test_the_types_named_for_annotations_exist_where_they_are_imported_from(tmp_path):
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.artifacts._protocol import ArtifactStore
    from optuna.study._frozen import FrozenStudy

    storage = open_storage(f"sqlite:///{tmp_path / 't.db'}", create=True)
    optuna.create_study(storage=storage)
    assert isinstance(storage.get_all_studies()[0], FrozenStudy)
    assert {"open_reader", "write", "remove"} <= {n for n in dir(ArtifactStore) if not n.startswith("_")}
    assert all(callable(getattr(FileSystemArtifactStore(str(tmp_path)), n)) for n in ("open_reader", "write", "remove"))
