"""Optuna's own ``StorageTestCase`` (``optuna.testing.pytest_storages``) on every store of the project.

The three tests Optuna's ``tests/storages_tests/test_storages.py`` overrides for
a concrete class are overridden here the same way, asking the class of the
storage inside the project's wrapper.
"""

from __future__ import annotations

import pickle
from typing import Iterator

import pytest
from optuna.storages import BaseStorage
from optuna.storages import GrpcStorageProxy
from optuna.storages import InMemoryStorage
from optuna.storages import JournalStorage
from optuna.study import StudyDirection
from optuna.testing.pytest_storages import StorageTestCase

from tests.optuna_compat._stores import STORAGE_MODES
from tests.optuna_compat._stores import inner
from tests.optuna_compat._stores import modes
from tests.optuna_compat._stores import supply

# Each case is quick, but its ~700 cases over every store take minutes: the full suite runs them, the inner loop does not.
pytestmark = pytest.mark.slow

class TestStorage(StorageTestCase):
    @pytest.fixture(params=modes(STORAGE_MODES))
    def storage(self, request: pytest.FixtureRequest) -> Iterator[BaseStorage]:
        with supply(request.param) as storage:
            yield storage

    def test_create_new_study_unique_id(self, storage: BaseStorage) -> None:
        study_id = storage.create_new_study(directions=[StudyDirection.MINIMIZE])
        study_id2 = storage.create_new_study(directions=[StudyDirection.MINIMIZE])
        storage.delete_study(study_id2)
        study_id3 = storage.create_new_study(directions=[StudyDirection.MINIMIZE])
        # Optuna's RDBStorage (and the proxy in front of one) may reuse the id of a deleted study.
        if isinstance(inner(storage), (InMemoryStorage, JournalStorage)):
            assert len({study_id, study_id2, study_id3}) == 3
        assert {s._study_id for s in storage.get_all_studies()} == {study_id, study_id3}

    @pytest.mark.parametrize("param_names", [["a", "b"], ["b", "a"]])
    def test_get_all_trials_params_order(self, storage: BaseStorage, param_names: list[str]) -> None:
        if isinstance(inner(storage), GrpcStorageProxy):
            pytest.skip("Optuna's GrpcStorageProxy does not preserve the order of parameters (Optuna skips it too)")
        super().test_get_all_trials_params_order(storage, param_names)

    def test_pickle_storage(self, storage: BaseStorage) -> None:
        study_id = storage.create_new_study(directions=[StudyDirection.MINIMIZE])
        storage.set_study_system_attr(study_id, "key", "pickle")
        restored = pickle.loads(pickle.dumps(storage))
        assert storage.get_study_system_attrs(study_id) == restored.get_study_system_attrs(study_id) == {"key": "pickle"}
        assert type(restored) is type(storage)
