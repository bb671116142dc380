"""Trials ended outside the workers: failed or completed by hand, deleted with their study.

Users of optuna-dashboard and of Optuna's API change trials by hand. Each test
makes the change the way such a user does (the real dashboard server's "tell"
endpoint, or Optuna's storage API, which the dashboard calls), on SQLite and
PostgreSQL, against real workers, and checks the store afterwards: every study
at its budget, one replacement per trial that needs one, nobody left waiting,
and log lines that say what was done.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

import scaling_optuna
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._shared import ENDED_ATTR
from scaling_optuna.storages._shared import REPLACES_ATTR
from scaling_optuna.storages._shared import WITHDRAWN
from scaling_optuna.storages._shared import Sweep
from scaling_optuna.worker import _loop
from scaling_optuna.worker import run_worker
from tests.conftest import digits_spec_text
from tests.conftest import run_cli
from tests.conftest import store_url
from tests.conftest import write_spec
from tests.test_distributed import Worker
from tests.test_distributed import wait_until

optuna.logging.set_verbosity(optuna.logging.WARNING)

FAST = ("--heartbeat", "1", "--grace", "4")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def started(tmp_path):
    """Start ``scaling-optuna`` processes with ``start(label, *args)``; any still alive are killed at the end."""
    procs: list[Worker] = []

    def start(label: str, *args: str) -> Worker:
        procs.append(Worker(tmp_path, label, *args, env={"SCALING_OPTUNA_STORAGE": ""}))
        return procs[-1]

    yield start
    for p in procs:
        p.stop()


def _spec(folder: Path, name: str, trials: int = 3, counts=(60,), epochs: int = 2) -> Path:
    return write_spec(folder, digits_spec_text(name, trials, counts, epochs, whole_epochs=True), f"{name}.toml")


def _trials(url: str, name: str) -> list[FrozenTrial]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def _set_state(url: str, name: str, number: int, state: TrialState, values: list[float] | None = None) -> int:
    """What optuna-dashboard's "tell" does, through Optuna's storage API; returns the trial id."""
    storage = optuna.storages.RDBStorage(url)
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(name), number)
        storage.set_trial_state_values(trial_id, state, values)
        return trial_id
    finally:
        storage.engine.dispose()


def _json(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _replacements(trials: list[FrozenTrial], number: int) -> list[FrozenTrial]:
    return [t for t in trials if t.system_attrs.get(REPLACES_ATTR) == number and t.state != TrialState.FAIL]


def _assert_at_budget(trials: list[FrozenTrial], budget: int) -> None:
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, states
    # a trial completed by hand has no measurement: it does not count
    measured = [t for t in trials if t.state == TrialState.PRUNED or (t.state == TrialState.COMPLETE and "test_error" in t.user_attrs)]
    assert len(measured) == budget, states


def _running_mid_trial(url: str, name: str) -> FrozenTrial | None:
    return next((t for t in _trials(url, name) if t.state == TrialState.RUNNING and t.intermediate_values), None)


# --- A queued trial failed by hand ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("state", [TrialState.FAIL, TrialState.COMPLETE], ids=["failed", "completed"])
def test_a_queued_trial_failed_or_completed_by_hand_is_replaced_once_and_the_worker_finishes(url, tmp_path, started, state):
    """The case of the issue: the study used to stay short and the worker to wait until killed."""
    spec = _spec(tmp_path, "byhand")
    scaling_optuna.create_experiment(spec, url)
    baseline = _trials(url, "byhand-n0000060")[0]
    _set_state(url, "byhand-n0000060", baseline.number, state, [0.001] if state == TrialState.COMPLETE else None)

    worker = started("w", "--log-format", "json", "worker", str(spec), "--storage", url, "--threads", "1", *FAST)
    assert worker.wait(180) == 0, worker.output()
    trials = _trials(url, "byhand-n0000060")
    _assert_at_budget(trials, 3)
    (replacement,) = _replacements(trials, baseline.number)
    # It re-runs what was queued: the untuned baseline, which the report needs.
    assert replacement.user_attrs.get("baseline") is True and replacement.params == baseline.system_attrs["fixed_params"]
    records = _json(worker.err.read_text())
    (line,) = [r for r in records if r.get("event") == "trial_ended_outside"]
    assert line["trial"] == baseline.number and line["replaced_by"] == replacement.number
    how = "failed" if state == TrialState.FAIL else "completed, without a measurement,"
    assert f"was {how} outside scaling-optuna" in line["message"] and "while queued" in line["message"], line
    assert not any("re-run is queued" in r["message"] for r in records)
    assert "worker done (no trials left): 3 complete" in worker.out.read_text()


# --- A running trial failed or completed by hand -----------------------------------------------


def _dashboard(started, url: str) -> str:
    board = started("dashboard", "dashboard", "--storage", url, "--port", "0")
    found = wait_until(lambda: re.search(r"on (http://\S+/)", board.output()), 60, "the dashboard")
    return found.group(1)


def _tell(base: str, trial_id: int, body: dict) -> None:
    """optuna-dashboard's own "fail trial" / "complete trial" request."""
    request = urllib.request.Request(
        f"{base}api/trials/{trial_id}/tell", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 204


def _change_a_running_trial(url: str, board: str | None, name: str, state: TrialState) -> FrozenTrial:
    """Fail or complete the first trial that runs mid-way: through the dashboard ``board``, else Optuna's API."""
    victim = wait_until(lambda: _running_mid_trial(url, name), 120, "a trial mid-way")
    body = {"state": "Fail"} if state == TrialState.FAIL else {"state": "Complete", "values": [0.001]}
    if board is not None:
        storage = optuna.storages.RDBStorage(url)
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(name), victim.number)
        storage.engine.dispose()
        _tell(board, trial_id, body)
    else:
        _set_state(url, name, victim.number, state, body.get("values"))
    return victim


def _worker_and_dashboard(url: str, spec: Path, started) -> tuple[Worker, str | None]:
    """A worker, and on SQLite optuna-dashboard (started first: it takes longer than a trial)."""
    board = _dashboard(started, url) if url.startswith("sqlite") else None
    return started("w", "--log-format", "json", "worker", str(spec), "--storage", url, "--threads", "1", *FAST), board


def _change_mid_run(url: str, tmp_path: Path, started, name: str, state: TrialState) -> tuple[Worker, FrozenTrial, list[FrozenTrial]]:
    """Run a worker on a one-size study, fail or complete its first trial mid-way; the worker, that trial, the trials after."""
    spec = _spec(tmp_path, name, trials=2, counts=(240,), epochs=40)
    scaling_optuna.create_experiment(spec, url)
    worker, board = _worker_and_dashboard(url, spec, started)
    victim = _change_a_running_trial(url, board, f"{name}-n0000240", state)
    assert worker.wait(240) == 0, worker.output()
    trials = _trials(url, f"{name}-n0000240")
    _assert_at_budget(trials, 2)
    return worker, victim, trials


@pytest.mark.slow
def test_a_running_trial_failed_by_hand_stops_and_is_replaced_once(url, tmp_path, started):
    worker, victim, trials = _change_mid_run(url, tmp_path, started, "stuck", TrialState.FAIL)
    assert trials[victim.number].state == TrialState.FAIL and ENDED_ATTR not in trials[victim.number].system_attrs
    (replacement,) = _replacements(trials, victim.number)
    assert replacement.state == TrialState.COMPLETE and replacement.params == victim.params
    records = _json(worker.err.read_text())
    (line,) = [r for r in records if r.get("trial") == victim.number and r.get("event", "").startswith("trial_")]
    assert line["event"] == "trial_taken_over"
    assert "failed outside scaling-optuna" in line["message"] and f"as trial {replacement.number}" in line["message"], line
    assert "worker done (no trials left): 2 complete, 0 pruned, 0 failed, 0 handed back, 1 taken over" in worker.out.read_text()


@pytest.mark.slow
def test_a_running_trial_completed_by_hand_is_replaced_and_the_report_leaves_it_out(url, tmp_path, started):
    worker, victim, trials = _change_mid_run(url, tmp_path, started, "done", TrialState.COMPLETE)
    # The hand-completed trial has no measurement: one trial re-runs its parameters, and the budget is whole.
    assert trials[victim.number].value == 0.001 and "test_error" not in trials[victim.number].user_attrs
    (replacement,) = _replacements(trials, victim.number)
    assert replacement.state == TrialState.COMPLETE and replacement.params == victim.params and len(trials) == 3
    (line,) = [r for r in _json(worker.err.read_text()) if r.get("trial") == victim.number and r.get("event") == "trial_taken_over"]
    assert "completed outside scaling-optuna" in line["message"] and f"as trial {replacement.number}" in line["message"], line
    assert [s.finished for s in scaling_optuna.load_experiment(tmp_path / "done.toml", storage=url).status()] == [2]
    # Its value is the lowest, but it has no test error: the report's ranking (and best_model) skip it.
    exp = scaling_optuna.load_experiment(tmp_path / "done.toml", storage=url)
    assert exp.best_trial(240).trial_number != victim.number and exp.best_model(240) is not None


# --- A study deleted --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_study_deleted_with_its_queued_trials_is_dropped_and_the_worker_finishes_the_rest(url, tmp_path, started):
    spec = _spec(tmp_path, "gone", trials=2, counts=(60, 240), epochs=10)
    scaling_optuna.create_experiment(spec, url)
    worker = started("w", "--log-format", "json", "worker", str(spec), "--storage", url, "--threads", "1", *FAST)
    # Workers take the largest size first: size 60's trials are all still queued.
    wait_until(lambda: _running_mid_trial(url, "gone-n0000240"), 120, "a trial of size 240 mid-way")
    optuna.delete_study(study_name="gone-n0000060", storage=url)  # optuna-dashboard's "delete study" does this
    assert worker.wait(240) == 0, worker.output()

    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["gone-n0000240"]
    _assert_at_budget(_trials(url, "gone-n0000240"), 2)
    records = _json(worker.err.read_text())
    (line,) = [r for r in records if r.get("event") == "study_deleted"]
    assert line["size"] == 60 and "its queued trials will not run" in line["message"]
    assert "Traceback" not in worker.err.read_text()
    assert "worker done (no trials left): 2 complete" in worker.out.read_text()


# --- Workers with nothing to claim ------------------------------------------------------------


def test_a_waiting_worker_says_so_every_interval_and_leaves_when_the_trials_end(url, tmp_path, monkeypatch, caplog):
    from scaling_optuna.data import load_dataset
    from scaling_optuna.spec import load_spec
    from scaling_optuna.worker import Outcome
    from scaling_optuna.worker._objective import DeviceData
    from scaling_optuna.worker._objective import TrialRunner
    import torch

    monkeypatch.setattr(_loop, "WAITING_NOTE_S", 0.5)
    path = _spec(tmp_path, "wait", trials=1, counts=(60,))
    scaling_optuna.create_experiment(path, url)
    spec = load_spec(path)
    tensors = DeviceData.on(load_dataset(spec), torch.device("cpu"))

    def make(who: str) -> _loop.Worker:
        stop = threading.Event()
        return _loop.Worker(spec, open_storage(url, stop=stop), url, TrialRunner(spec, tensors, stop, who), stop=stop, heartbeat_interval=1, grace_s=30, who=who)

    busy, idle = make("busy"), make("idle")
    busy.heartbeat.start()
    entry, claimed = busy._claim_next()
    left = threading.Event()
    waiter = threading.Thread(target=lambda: (idle._claim_next(), left.set()))
    with caplog.at_level(logging.INFO, logger="scaling_optuna.worker"):
        waiter.start()
        wait_until(lambda: sum(getattr(r, "event", None) == "waiting" for r in caplog.records) >= 3, 30, "three notes")
        assert not left.is_set()  # a trial still runs elsewhere
        claimed.trial.set_user_attr("test_error", 0.1)  # as the trainer records it: a measured trial
        busy._settle(entry, claimed, Outcome(TrialState.COMPLETE, value=0.5))
        busy.heartbeat.close()
        waiter.join(30)
    assert left.is_set()  # the trial it waited for ended: nothing is left, so it leaves
    notes = [r.getMessage() for r in caplog.records if getattr(r, "event", None) == "waiting"]
    assert all("waiting for 1 running trial(s) of other workers (size 60: 1)" in n for n in notes), notes


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "journal"])
def test_racing_sweeps_replace_a_trial_failed_outside_once(kind, tmp_path, request, caplog):
    url = store_url(kind, tmp_path, request)
    storage = open_storage(url, create=True)
    study = optuna.create_study(storage=storage, study_name="race")
    study.set_user_attr("trials_per_size", 2)
    study.enqueue_trial({"x": 0.5})
    study.enqueue_trial({"x": 0.25})
    study_id = storage.get_study_id_from_name("race")
    storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, 1), TrialState.FAIL)
    barrier = threading.Barrier(4)

    def sweep(who: str) -> None:
        own = Sweep(open_storage(url), grace_s=30, interval_s=10, who=who, log=logging.getLogger("scaling_optuna.test"))
        barrier.wait()
        own.study(study_id, "race")

    with caplog.at_level(logging.WARNING, logger="scaling_optuna.test"):
        threads = [threading.Thread(target=sweep, args=(f"sweeper{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    trials = study.get_trials(deepcopy=False)
    (standing,) = _replacements(trials, 1)
    assert standing.state == TrialState.WAITING and standing.system_attrs["fixed_params"] == {"x": 0.25}
    # Any replacement queued at the same moment was withdrawn, and never counts.
    others = [t for t in trials if t.system_attrs.get(REPLACES_ATTR) == 1 and t.number != standing.number]
    assert all(t.system_attrs[ENDED_ATTR]["reason"] == WITHDRAWN for t in others)
    (line,) = [r for r in caplog.records if getattr(r, "event", None) == "trial_ended_outside"]
    assert line.replaced_by == standing.number
    assert sum(t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE) for t in trials) == 2


def test_a_replacement_queued_twice_runs_once(tmp_path):
    """Two processes queued one each at the same moment: the worker that claims the later one withdraws it."""
    path = _spec(tmp_path, "twice", trials=2, counts=(60,))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    exp = scaling_optuna.create_experiment(path, url)
    storage, study = exp.storage, exp.studies[60]
    study_id = storage.get_study_id_from_name(study.study_name)
    storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, 1), TrialState.FAIL)
    for who in ("a", "b"):  # what two sweeps that both missed the other's replacement add
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={REPLACES_ATTR: 1, "scaling_optuna:queued_by": who}))
    summary = run_worker(path, url, threads=1, heartbeat_interval=1, grace_period=4)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.FAIL]
    assert trials[3].system_attrs[ENDED_ATTR]["reason"] == WITHDRAWN
    assert summary.complete == 2


# --- The gRPC proxy notices too ---------------------------------------------------------------


@pytest.mark.slow
def test_the_proxy_replaces_a_queued_trial_failed_by_hand_and_notes_a_deleted_study(tmp_path, started):
    from tests.test_proxy import _free_port

    port = _free_port()
    db = f"sqlite:///{tmp_path / 'behind.db'}"
    proxy = started("proxy", "--log-format", "json", "proxy", "--storage", db, "--port", str(port), *FAST)
    wait_until(lambda: "listening" in proxy.output() or proxy.proc.poll() is not None, 60, "the proxy")
    spec = _spec(tmp_path, "prox", trials=2, counts=(60, 120))
    assert run_cli("create", str(spec), "--storage", f"grpc://127.0.0.1:{port}").returncode == 0
    _set_state(db, "prox-n0000060", 1, TrialState.FAIL)
    replaced = wait_until(lambda: _replacements(_trials(db, "prox-n0000060"), 1), 60, "the proxy's replacement")
    assert len(replaced) == 1 and replaced[0].state == TrialState.WAITING
    optuna.delete_study(study_name="prox-n0000120", storage=db)
    wait_until(lambda: "study_deleted" in proxy.err.read_text(), 60, "the proxy's note")
    records = _json(proxy.err.read_text())
    (line,) = [r for r in records if r.get("event") == "trial_ended_outside"]
    assert line["size"] == 60 and line["replaced_by"] == replaced[0].number
    (gone,) = [r for r in records if r.get("event") == "study_deleted"]
    assert gone["study"] == "prox-n0000120"
    assert len(_replacements(_trials(db, "prox-n0000060"), 1)) == 1  # and only one, however many sweeps since
