"""A stop request reaches a worker at once: mid-epoch, mid-step of a very wide model, while it queues a budget.

The signal sets the stop at once (``scaling_optuna.signals``), the trainer
asks before every step, and a step still running 5 s after the signal is not
waited for: its trial is handed back and the worker exits. Either way the
trial is handed back, never left RUNNING. The tests wait for the worker with
a generous timeout that only guards against a hang; the seconds it took are
printed, not asserted.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from scaling_optuna.experiment import create_experiment
from scaling_optuna.signals import StopOnSignals
from scaling_optuna.storages._shared import ENDED_ATTR
from scaling_optuna.storages._shared import REPLACES_ATTR
from tests.test_distributed import all_trials
from tests.test_distributed import wait_until
from tests.test_distributed import worker_args
from tests.test_distributed import workers  # noqa: F401 - the fixture

# Two 3,000-channel convolutions on batches of 64: every training step takes well over the 5 s a stopped worker waits.
WIDE = {"conv1 = { low = 4, high = 12 }": "conv1 = 3000", "conv2 = { low = 4, high = 12 }": "conv2 = 3000", "batch_size = 16": "batch_size = 64"}


def test_a_signal_sets_the_stop_while_the_main_thread_is_busy_in_c_code():
    """Python runs a signal handler only between bytecodes; the stop must not wait for a long C call to return."""
    stop, seen_at = threading.Event(), []
    watcher = threading.Thread(target=lambda: stop.wait(60) and seen_at.append(time.monotonic()))
    watcher.start()
    with StopOnSignals(stop) as signals:
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
        hashlib.pbkdf2_hmac("sha256", b"key", b"salt", 5_000_000)  # seconds in C, the GIL released
        returned_at = time.monotonic()
    watcher.join(60)
    # The order of two moments, not a duration: the stop was seen before the C call returned.
    assert seen_at and seen_at[0] < returned_at and signals.received == "SIGTERM"


def _training(url: str, pid: int) -> optuna.trial.FrozenTrial | None:
    """The RUNNING trial of worker ``pid`` once it has begun training (its parameter count is written then)."""
    for trials in all_trials(url).values():
        for t in trials:
            if t.state == TrialState.RUNNING and "n_params" in t.user_attrs and t.user_attrs.get("worker", "").endswith(f":{pid}"):
                return t
    return None


@pytest.mark.slow
def test_sigterm_mid_step_of_a_very_wide_model_hands_the_trial_back(tiny_digits, tmp_path, workers):  # noqa: F811
    path = tiny_digits(name="wide", trials=1, counts=(1024,), epochs=3)
    # No baseline (an empty [default_params]): the one trial is the wide model.
    text = path.read_text()
    for old, new in WIDE.items():
        text = text.replace(old, new)
    path.write_text(text.split("[default_params]")[0] + "[default_params]\n[trainer]" + text.split("[trainer]")[1])
    url = f"sqlite:///{tmp_path / 'store.db'}"
    create_experiment(path, url)
    worker = workers("wide", *worker_args(path, url))
    trial = wait_until(lambda: _training(url, worker.pid), 180, "the wide trial to start training", every=0.5)
    time.sleep(1)
    sent = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(120) == 0, worker.output()
    print(f"SIGTERM to exit: {time.monotonic() - sent:.1f} s\n{worker.output()}")
    (study,) = all_trials(url).values()
    ended = study[trial.number]
    assert ended.state == TrialState.FAIL and ended.system_attrs[ENDED_ATTR]["reason"] == "handed back", worker.output()
    (rerun,) = [t for t in study if t.system_attrs.get(REPLACES_ATTR) == trial.number]
    assert rerun.state == TrialState.WAITING and rerun.system_attrs["fixed_params"] == trial.params
    assert not [t for t in study if t.state == TrialState.RUNNING]
    assert "its training step still runs 5 s after the stop request; handing the trial back and exiting" in worker.output()
    assert "Traceback" not in worker.output()


@pytest.mark.slow
def test_sigterm_while_a_worker_queues_its_trials_budget_stops_it(tiny_digits, tmp_path, workers):  # noqa: F811
    path = tiny_digits(name="queue", trials=1, counts=(60, 240), epochs=1)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    create_experiment(path, url)
    worker = workers("queue", *worker_args(path, url, "--trials", "10000"))
    wait_until(lambda: sum(len(t) for t in all_trials(url).values()) > 50, 180, "the worker to queue trials", every=0.5)
    sent = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(120) == 0, worker.output()
    print(f"SIGTERM to exit: {time.monotonic() - sent:.1f} s")
    trials = [t for study in all_trials(url).values() for t in study]
    assert len(trials) < 2 * 10000 and not [t for t in trials if t.state == TrialState.RUNNING]
