"""Optuna's frozen-trial test that touches the store, on every store of the project.

Adapted from Optuna's ``tests/trial_tests/test_frozen.py`` (MIT licence, Copyright (c) 2018 Preferred Networks, Inc.):
the tests there that take a ``storage_mode``, run on the stores of ``tests/optuna_compat/_stores.py``
instead of Optuna's ``StorageSupplier``.
"""

from __future__ import annotations

import pytest
from optuna import create_study
from optuna.trial import BaseTrial

from tests.optuna_compat._stores import STORAGE_MODES
from tests.optuna_compat._stores import modes
from tests.optuna_compat._stores import supply


# The whole module is slow: the quick checks are test_contract.py and StorageTestCase in memory.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("storage_mode", modes(STORAGE_MODES))
def test_sampling(storage_mode: str) -> None:
    def objective(trial: BaseTrial) -> float:
        a = trial.suggest_float("a", 0.0, 10.0)
        b = trial.suggest_float("b", 0.1, 10.0, log=True)
        c = trial.suggest_float("c", 0.0, 10.0, step=1.0)
        d = trial.suggest_int("d", 0, 10)
        e = trial.suggest_categorical("e", [0, 1, 2])
        f = trial.suggest_int("f", 1, 10, log=True)

        return a + b + c + d + e + f

    with supply(storage_mode) as storage:
        study = create_study(storage=storage)
        study.optimize(objective, n_trials=1)

        best_trial = study.best_trial

        # re-evaluate objective with the best hyperparameters
        v = objective(best_trial)

        assert v == best_trial.value
