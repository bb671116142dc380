"""The worker's loop on its own: which trial it claims, that a claim is atomic, how outcomes settle."""

from __future__ import annotations

import logging
import threading

import optuna
import pytest
import torch
from optuna.trial import TrialState

from scaling_optuna.data import load_dataset
from scaling_optuna.experiment import create_experiment
from scaling_optuna.spec import load_spec
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._shared import ENDED_ATTR
from scaling_optuna.storages._shared import LOST
from scaling_optuna.storages._shared import REPLACES_ATTR
from scaling_optuna.storages._shared import end_trial
from scaling_optuna.worker import Outcome
from scaling_optuna.worker import Worker
from scaling_optuna.worker._objective import DeviceData
from scaling_optuna.worker._objective import TrialRunner

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def make_worker(tiny_digits, tmp_path):
    """Create a tiny experiment; returns a factory of Worker objects on it (each its own store connection)."""
    path = tiny_digits(trials=2, counts=(60, 240), epochs=2)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    create_experiment(path, url)
    spec = load_spec(path)
    tensors = DeviceData.on(load_dataset(spec), torch.device("cpu"))

    def make(who: str = "w0", grace_s: float = 30) -> Worker:
        stop = threading.Event()
        runner = TrialRunner(spec, tensors, stop, who)
        return Worker(spec, open_storage(url, stop=stop), url, runner, stop=stop, heartbeat_interval=1, grace_s=grace_s, who=who)

    return make


def test_the_largest_remaining_work_is_claimed_first(make_worker):
    worker = make_worker()
    queued, running = worker._counts()
    assert queued == {60: 2, 240: 2} and running == {60: 0, 240: 0}
    entry, claimed = worker._claim_largest(queued)
    assert entry.size == 240  # 2 × 240 examples left beats 2 × 60
    assert claimed.trial.number == 0  # the queue's head: the untuned baseline
    assert worker._counts() == ({60: 2, 240: 1}, {60: 0, 240: 1})


def test_a_queued_trial_is_claimed_by_one_worker_only(make_worker):
    workers = [make_worker(f"w{i}") for i in range(4)]
    entry_of = {w.who: w.sizes[60] for w in workers}
    barrier = threading.Barrier(len(workers))
    got: list[int] = []

    def claim(w: Worker) -> None:
        barrier.wait()
        while (claimed := w._claim(entry_of[w.who])) is not None:
            got.append(claimed.trial.number)

    threads = [threading.Thread(target=claim, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [0, 1]  # each of the two queued trials exactly once


@pytest.mark.parametrize(
    "outcome, state, same_params, kind",
    [
        (Outcome(TrialState.FAIL, hand_back="stop requested"), TrialState.FAIL, True, "handed_back"),
        (Outcome(TrialState.FAIL, error="ValueError: boom"), TrialState.FAIL, False, "failed"),
        (Outcome(TrialState.COMPLETE, value=0.5), TrialState.COMPLETE, None, "complete"),
    ],
    ids=["handed-back", "failed", "complete"],
)
def test_each_outcome_settles_once_in_the_store(make_worker, outcome, state, same_params, kind):
    worker = make_worker()
    entry = worker.sizes[60]
    claimed = worker._claim(entry)
    claimed.trial.suggest_float("lr", 0.05, 0.3, log=True)
    worker._settle(entry, claimed, outcome)
    trials = entry.study.get_trials(deepcopy=False)
    ended = trials[claimed.trial.number]
    assert ended.state == state
    assert getattr(worker.summary, kind) == 1
    replacements = [t for t in trials if t.system_attrs.get(REPLACES_ATTR) == ended.number]
    if same_params is None:
        assert replacements == []
    else:
        assert ended.system_attrs[ENDED_ATTR]["by"] == worker.who
        (replacement,) = replacements
        assert replacement.state == TrialState.WAITING
        fixed = replacement.system_attrs.get("fixed_params")
        if same_params:
            assert fixed["lr"] == ended.params["lr"]  # the same trial again
        else:
            assert fixed is None  # a fresh trial for the sampler to fill in
    # The budget stays whole: two trials queued, running or finished.
    assert sum(t.state != TrialState.FAIL for t in trials) == 2


def test_a_trial_ended_by_another_process_counts_as_taken_over(make_worker):
    worker, other = make_worker("w0"), make_worker("w1")
    entry = worker.sizes[60]
    claimed = worker._claim(entry)
    assert end_trial(other.storage, entry.study_id, claimed.trial.number, LOST, other.who)
    worker._settle(entry, claimed, Outcome(TrialState.COMPLETE, value=0.5))
    assert worker.summary.taken_over == 1 and worker.summary.complete == 0


def test_a_worker_logs_one_line_per_trial_with_its_fields(make_worker, caplog):
    worker = make_worker()
    with caplog.at_level(logging.INFO, logger="scaling_optuna.worker"):
        summary = worker.run(max_trials=1)
    assert summary.trials == 1
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "trial_finished"]
    assert record.size == 240 and record.trial == 0 and record.state in ("complete", "pruned")
    assert record.worker == "w0" and record.epochs >= 1
    assert f"size 240 trial 0 {record.state}" in record.getMessage()


def test_a_trial_ended_without_its_replacement_gets_one_before_the_worker_leaves(make_worker):
    """The process that ended a trial died before queuing its re-run: a waiting worker queues it."""
    worker = make_worker(grace_s=1)
    for entry in worker.sizes.values():
        for _ in range(2):
            claimed = worker._claim(entry)
            claimed.trial.suggest_float("lr", 0.05, 0.3, log=True)
            if claimed.trial.number == 1 and entry.size == 60:
                end_trial(worker.storage, entry.study_id, 1, LOST, "a process that died at once")
            else:
                claimed.trial.set_user_attr("test_error", 0.1)  # as the trainer records it: a measured trial
                worker._settle(entry, claimed, Outcome(TrialState.COMPLETE, value=1.0))
            worker.heartbeat.watch(None)
    entry, claimed = worker._claim_next()
    replacement = worker.storage.get_trial(claimed.trial_id)
    assert entry.size == 60 and replacement.system_attrs[REPLACES_ATTR] == 1
    assert "lr" in replacement.system_attrs["fixed_params"]  # a lost trial re-runs its parameters
