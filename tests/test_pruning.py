"""The worker's local pruning decision against Optuna's own, on a real SQLite store."""

from __future__ import annotations

import random
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from scaling_optuna.worker.pruning import PruneCheck
from scaling_optuna.worker.pruning import decides_locally
from scaling_optuna.storages import open_storage

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Fixed parameter"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _study(tmp_path, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    store = open_storage(f"sqlite:///{tmp_path}/store.db", create=True)
    return optuna.create_study(storage=store, study_name="s", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))


def _patient_median() -> optuna.pruners.PatientPruner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Optuna marks it experimental
        return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(n_startup_trials=2), patience=1)


def _finish(study: optuna.Study, curve: list[float], state: TrialState = TrialState.COMPLETE) -> None:
    trial = study.ask()
    trial.suggest_float("lr", 1e-3, 1.0, log=True)
    for step, value in enumerate(curve, start=1):
        trial.report(value, step)
    study.tell(trial, curve[-1] if state == TrialState.COMPLETE else None, state=state)


@pytest.mark.parametrize(
    "pruner",
    [
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
        optuna.pruners.PercentilePruner(25.0, n_startup_trials=2, interval_steps=2),
        _patient_median(),
        optuna.pruners.ThresholdPruner(upper=1.5),
    ],
    ids=["median", "percentile", "patient", "threshold"],
)
def test_local_decisions_equal_optunas_at_every_step(tmp_path, pruner):
    study = _study(tmp_path, pruner)
    rng = random.Random(0)
    # The untuned baseline: enqueued with a value outside the searched range, as every study's first trial.
    study.enqueue_trial({"lr": 5.0})
    _finish(study, [2.0 * 0.95**k for k in range(10)])
    for _ in range(8):
        start = rng.uniform(0.5, 2.0)
        _finish(study, [start * 0.9**k + rng.uniform(0, 0.05) for k in range(10)])
    _finish(study, [3.0, 2.9], TrialState.PRUNED)
    check = PruneCheck(study)
    assert check.local
    decisions = {True: 0, False: 0}
    for k in range(6):
        trial = study.ask()
        trial.suggest_float("lr", 1e-3, 1.0, log=True)
        check.start()
        start = rng.uniform(0.3, 2.5)
        for step in range(1, 11):
            # Every other trial stops improving after step 4 (what a patient pruner waits for).
            value = start * 0.93**step if k % 2 else start * 0.93 ** min(step, 4) * (1 + 0.05 * max(0, step - 4))
            check.report(trial, value, step)
            ours, theirs = check.should_prune(trial), trial.should_prune()
            assert ours == theirs, f"step {step}: ours {ours}, Optuna's {theirs}"
            decisions[ours] += 1
        study.tell(trial, value)
    assert decisions[True] and decisions[False], "the trials should have exercised both decisions"


def test_trials_finished_meanwhile_are_seen_after_the_refresh_interval(tmp_path):
    study = _study(tmp_path, optuna.pruners.MedianPruner(n_startup_trials=3))
    for _ in range(2):
        _finish(study, [0.5, 0.4, 0.3])
    clock = Clock()
    check = PruneCheck(study, refresh_s=10, clock=clock)
    trial = study.ask()
    check.start()
    check.report(trial, 5.0, 1)
    assert not check.should_prune(trial), "two finished trials are fewer than the pruner's startup trials"

    _finish(study, [0.5, 0.4, 0.3])  # another worker finishes a third
    clock.now = 9.0
    assert not check.should_prune(trial), "the copy is refreshed only after refresh_s"
    assert trial.should_prune(), "Optuna's own check sees the third trial at once"
    clock.now = 10.0
    assert check.should_prune(trial)


def test_pruners_that_write_while_deciding_keep_optunas_path(tmp_path):
    halving = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    assert not decides_locally(halving)
    assert not decides_locally(optuna.pruners.PatientPruner(halving, patience=1))
    assert not decides_locally(optuna.pruners.HyperbandPruner())
    assert decides_locally(optuna.pruners.MedianPruner())

    study = _study(tmp_path, halving)
    for _ in range(3):
        _finish(study, [0.5, 0.4, 0.3])
    check = PruneCheck(study)
    check.start()
    trial = study.ask()
    check.report(trial, 0.2, 1)
    check.should_prune(trial)
    stored = study.get_trials(deepcopy=False)[-1]
    # Successive halving records the rung the trial reached, in the store: proof the real path ran.
    assert any(key.startswith("completed_rung_") for key in stored.system_attrs)
