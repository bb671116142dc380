"""Distributed runs against the real stores: PostgreSQL at 127.0.0.1:5432, SQLite, journal, gRPC proxy.

Every test starts real worker processes with the CLI, as people do on their
machines, with a short heartbeat where a test waits for a dead worker to be
noticed. What they check is in the store afterwards: every study has exactly
its budget of finished trials, nothing is left RUNNING or WAITING, and
retried trials carry the same parameters as the trial they replace.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from tests import forked_cli
from tests.conftest import admin_connect
from tests.conftest import digits_spec_text
from tests.conftest import run_cli
from tests.conftest import write_spec

ROOT = Path(__file__).resolve().parents[1]
# A quick heartbeat where a test waits for a dead worker to be noticed; elsewhere a grace
# long enough that a busy two-core machine does not make a live worker look dead.
HEARTBEAT = ("--heartbeat", "2", "--grace", "20")
FAST_HEARTBEAT = ("--heartbeat", "1", "--grace", "6")
SECRET = "Hunter2Secret"


@pytest.fixture
def spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a digits spec without pruning or early stopping, so trials last ``epochs`` epochs."""

    def make(name: str = "dist", trials: int = 3, counts=(60, 240), epochs: int = 4) -> Path:
        return write_spec(tmp_path, digits_spec_text(name, trials, counts, epochs, whole_epochs=True), f"{name}.toml")

    return make


class Worker:
    """A ``scaling-optuna`` process whose output goes to files (pipes could fill up and block it)."""

    def __init__(self, folder: Path, label: str, *args: str, env: dict | None = None) -> None:
        self.out = folder / f"{label}.out"
        self.err = folder / f"{label}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = forked_cli.start(list(args), stdout=out, stderr=err, env=env, cwd=folder)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def workers(tmp_path: Path):
    """Start workers with ``start(label, *cli_args)``; any still alive are killed at the end."""
    started: list[Worker] = []

    def start(label: str, *args: str, env: dict | None = None) -> Worker:
        w = Worker(tmp_path, label, *args, env=env)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def worker_args(spec_path: Path, url: str, *extra: str, fast: bool = False) -> tuple[str, ...]:
    return ("worker", str(spec_path), "--storage", url, "--threads", "1", *(FAST_HEARTBEAT if fast else HEARTBEAT), *extra)


def create(spec_path: Path, url: str) -> None:
    done = run_cli("create", str(spec_path), "--storage", url, timeout=120)
    assert done.returncode == 0, done.stderr


def all_trials(url: str) -> dict[str, list[FrozenTrial]]:
    """Every study's trials, read directly from the database (or a SQLite file)."""
    storage = optuna.storages.RDBStorage(url)
    try:
        return {
            s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials()
            for s in optuna.get_all_study_summaries(storage)
        }
    finally:
        storage.engine.dispose()  # the tests count the database's connections


def wait_until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def assert_budgets(trials: dict[str, list[FrozenTrial]], budget: int, *, sizes: int) -> None:
    """Every study finished exactly its budget, none left RUNNING/WAITING, no trial re-run twice."""
    assert len(trials) == sizes, list(trials)
    for name, ts in trials.items():
        states = [t.state for t in ts]
        assert TrialState.RUNNING not in states and TrialState.WAITING not in states, (name, states)
        finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
        assert finished == budget, (name, states)
        # No result counted twice: only failed trials are replaced, each by one trial.
        by_number = {t.number: t for t in ts}
        replaced = [t.system_attrs["scaling_optuna:replaces"] for t in ts if "scaling_optuna:replaces" in t.system_attrs]
        assert len(replaced) == len(set(replaced)), (name, replaced)
        for original in replaced:
            assert by_number[original].state == TrialState.FAIL, (name, original)


def retries_of(trials: list[FrozenTrial], number: int) -> list[FrozenTrial]:
    return [t for t in trials if number in t.system_attrs.get("retry_history", ())]


def running_mid_trial(url: str, pid: int | None = None) -> tuple[str, FrozenTrial] | None:
    """A RUNNING trial (of worker ``pid``, if given) that has reported at least one epoch."""
    for name, ts in all_trials(url).items():
        for t in ts:
            if t.state == TrialState.RUNNING and t.intermediate_values:
                if pid is None or str(t.user_attrs.get("worker", "")).endswith(f":{pid}"):
                    return name, t
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_password(url: str, password: str = SECRET) -> str:
    # The local server trusts 127.0.0.1, so any password works and must never show.
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")


def children_of(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


# --- PostgreSQL: several workers -------------------------------------------------------------


@pytest.mark.slow
def test_three_workers_on_postgres_reach_every_budget_and_hide_the_password(spec, postgres_url, tmp_path, workers):
    path = spec("three", trials=4, counts=(100, 200, 400), epochs=5)
    url = with_password(postgres_url)
    run = workers("run", "run", str(path), "--storage", url, "--workers", "3", *HEARTBEAT)
    # While it runs, the workers' command lines (visible to anyone with `ps`) carry no password.
    kids = wait_until(lambda: len(children_of(run.pid)) == 3 and children_of(run.pid), 60, "three workers")
    for kid in kids:
        assert SECRET not in Path(f"/proc/{kid}/cmdline").read_bytes().decode(errors="replace")
    assert run.wait(180) == 0, run.output()
    assert_budgets(all_trials(postgres_url), 4, sizes=3)
    workers_seen = {t.user_attrs.get("worker") for ts in all_trials(postgres_url).values() for t in ts}
    assert len(workers_seen) >= 2, workers_seen  # the work was shared

    # A worker that joins after the end finds nothing to do and says so.
    late = workers("late", *worker_args(path, url))
    assert late.wait(60) == 0, late.output()
    assert "worker done (no trials left): 0 complete" in late.output()
    for text in (run.output(), late.output()):
        assert SECRET not in text
    assert "postgres:***@" in run.output()


def test_unreachable_store_error_is_one_line_without_the_password(spec):
    path = spec("gone")
    done = run_cli("worker", str(path), "--storage", f"postgresql://me:{SECRET}@127.0.0.1:9/db", timeout=60)
    assert done.returncode == 2
    assert SECRET not in done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "me:***@127.0.0.1:9" in done.stderr, done.stderr


def test_grace_not_longer_than_heartbeat_is_a_usage_error(spec):
    done = run_cli("worker", str(spec("g")), "--storage", "sqlite:///nowhere.db", "--heartbeat", "5", "--grace", "5", timeout=60)
    assert done.returncode == 2
    assert "grace period 5 s must be longer than the heartbeat interval 5 s" in done.stderr


def test_proxy_in_front_of_a_proxy_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("SCALING_OPTUNA_STORAGE", raising=False)
    done = run_cli("proxy", "--storage", "grpc://127.0.0.1:13000", timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: the proxy serves a database, not another proxy") and done.stderr.count("\n") == 1


# --- Workers that die ------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkilled_worker_trial_is_failed_by_heartbeat_and_retried_with_same_params(spec, postgres_url, workers):
    path = spec("killed", trials=2, counts=(400,), epochs=30)
    create(path, postgres_url)
    a = workers("a", *worker_args(path, postgres_url, fast=True))
    # Kill it in the middle of the study's last trial: the worker that comes next has
    # nothing new to start, so it must wait out the grace period and re-run that trial.
    def last_trial_running():
        ts = next(iter(all_trials(postgres_url).values()))
        done = sum(t.state == TrialState.COMPLETE for t in ts)
        return done == 1 and running_mid_trial(postgres_url, a.pid)

    name, victim = wait_until(last_trial_running, 120, "the last trial mid-way")
    a.proc.send_signal(signal.SIGKILL)
    a.wait(10)
    assert all_trials(postgres_url)[name][victim.number].state == TrialState.RUNNING

    b = workers("b", *worker_args(path, postgres_url, fast=True))
    assert b.wait(120) == 0, b.output()
    trials = all_trials(postgres_url)[name]
    assert trials[victim.number].state == TrialState.FAIL
    (retry,) = retries_of(trials, victim.number)
    assert retry.state == TrialState.COMPLETE
    assert retry.params == victim.params
    assert retry.user_attrs["worker"].endswith(f":{b.pid}")
    assert_budgets({name: trials}, 2, sizes=1)


@pytest.mark.slow
def test_sigterm_exits_zero_hands_the_trial_back_and_another_worker_reruns_it(spec, postgres_url, workers):
    path = spec("termed", trials=2, counts=(400,), epochs=30)
    create(path, postgres_url)
    a = workers("a", *worker_args(path, postgres_url))
    b = workers("b", *worker_args(path, postgres_url))
    name, victim = wait_until(lambda: running_mid_trial(postgres_url, a.pid), 120, "a trial of worker a mid-way")
    sent = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    code = a.wait(120)
    print(f"SIGTERM to exit: {time.monotonic() - sent:.2f} s")
    # What must hold is measured, not how long it took (benchmarks/reliability.py times it):
    # the worker exits 0, its trial is handed back, and the other worker re-runs it.
    assert code == 0, a.output()
    assert "stopped by signal, trial handed back" in a.output()
    assert f"trial {victim.number} handed back" in a.output()
    assert b.wait(120) == 0, b.output()
    trials = all_trials(postgres_url)[name]
    assert trials[victim.number].state == TrialState.FAIL
    (rerun,) = retries_of(trials, victim.number)
    assert rerun.state == TrialState.COMPLETE and rerun.params == victim.params
    assert rerun.user_attrs["worker"].endswith(f":{b.pid}")
    assert_budgets({name: trials}, 2, sizes=1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_run_hands_back_every_running_trial_and_leaves_no_worker(spec, tmp_path, workers, sig):
    path = spec("owned", trials=3, counts=(400,), epochs=200)
    url = f"sqlite:///{tmp_path / 'owned.db'}"
    command = ("run", str(path), "--storage", url, "--workers", "2", "--threads", "1", *HEARTBEAT)
    run = workers("run", *command)
    kids = wait_until(lambda: len(children_of(run.pid)) == 2 and children_of(run.pid), 60, "two workers")
    wait_until(lambda: sum(1 for _, ts in all_trials(url).items() for t in ts if t.state == TrialState.RUNNING and t.intermediate_values) == 2, 120, "both workers mid-trial")
    run.proc.send_signal(sig)
    assert run.wait(120) == 128 + sig, run.output()
    assert f"stopped by {signal.Signals(sig).name}: running trials were handed back" in run.output()
    assert not [k for k in kids if Path(f"/proc/{k}").exists() and "zombie" not in Path(f"/proc/{k}/status").read_text()]
    (trials,) = all_trials(url).values()
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states, states
    reasons = [t.system_attrs.get("scaling_optuna:ended", {}).get("reason") for t in trials if t.state == TrialState.FAIL]
    assert reasons == ["handed back", "handed back"], reasons

    if sig == signal.SIGINT:
        return  # the rest is the same for either signal
    # What the message says: the same command again finishes the budget.
    again = workers("again", *command)
    assert again.wait(300) == 0, again.output()
    assert_budgets(all_trials(url), 3, sizes=1)


@pytest.mark.slow
def test_run_killed_outright_still_stops_its_workers(spec, tmp_path, workers):
    # Trials far too long to finish on their own: the workers can only leave because they are told to.
    path = spec("orphan", trials=2, counts=(400,), epochs=100_000)
    url = f"sqlite:///{tmp_path / 'orphan.db'}"
    run = workers("run", "run", str(path), "--storage", url, "--workers", "2", "--threads", "1", *HEARTBEAT)
    kids = wait_until(lambda: len(children_of(run.pid)) == 2 and children_of(run.pid), 60, "two workers")
    wait_until(lambda: running_mid_trial(url), 120, "a trial mid-way")
    run.proc.kill()  # no handler runs: the kernel tells the workers (parent-death signal)
    run.wait(30)
    wait_until(lambda: not [k for k in kids if Path(f"/proc/{k}").exists()], 120, "the orphaned workers to exit", every=0.5)
    (trials,) = all_trials(url).values()
    assert TrialState.RUNNING not in [t.state for t in trials], [t.state for t in trials]


# --- A flaky database ------------------------------------------------------------------------


@pytest.mark.slow
def test_workers_survive_connections_cut_and_a_short_outage(spec, postgres_url, workers):
    path = spec("cut", trials=4, counts=(120, 240), epochs=12)
    create(path, postgres_url)
    ws = [workers(f"w{i}", *worker_args(path, postgres_url, "--log-format", "json")) for i in range(2)]
    wait_until(lambda: running_mid_trial(postgres_url), 120, "trials running")
    db = _dbname(postgres_url)
    admin = admin_connect()
    cut = 0

    def terminate() -> int:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (db,),
            )
            return cur.fetchone()[0]

    try:
        for _ in range(8):
            cut += terminate()
            time.sleep(0.3)
        # An outage: no connection at all for 2 s, as while the server restarts.
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
        cut += terminate()
        time.sleep(2)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
        admin.close()
    print(f"connections terminated: {cut}")
    assert cut >= 3
    for w in ws:
        assert w.wait(150) == 0, w.output()
    assert_budgets(all_trials(postgres_url), 4, sizes=2)
    # A log collector gets JSON lines only, and the outage in lines of its own.
    records = [json.loads(line) for w in ws for line in w.err.read_text().splitlines()]
    events = [r.get("event") for r in records]
    print(f"outage events: {sorted({e for e in events if e})}")
    assert {"store_retry", "store_unreachable", "heartbeat_missed"} & set(events), "".join(w.output() for w in ws)
    assert events.count("trial_finished") >= 8


@pytest.mark.slow
def test_worker_cut_off_longer_than_grace_loses_its_trial_to_the_retry_and_carries_on(spec, postgres_url, workers):
    """A network partition around one worker: the others fail its trial as stale and re-run it;
    when the worker is back, it notices, drops its copy of the trial (no double count) and goes on."""
    import uuid

    path = spec("partition", trials=3, counts=(400,), epochs=30)
    create(path, postgres_url)
    role = f"so_cut_{uuid.uuid4().hex[:8]}"
    admin = admin_connect()
    with admin.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN')
    grant = psycopg_connect(postgres_url)
    with grant.cursor() as cur:
        cur.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    try:
        a = workers("a", *worker_args(path, postgres_url.replace("postgres@", f"{role}@"), fast=True))
        name, victim = wait_until(
            lambda: (hit := running_mid_trial(postgres_url, a.pid)) and len(hit[1].intermediate_values) < 20 and hit,
            120,
            "a trial of worker a early on",
        )
        with admin.cursor() as cur:
            cur.execute(f'ALTER ROLE "{role}" NOLOGIN')
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        b = workers("b", *worker_args(path, postgres_url, fast=True))
        # b fails a's trial once its heartbeat is 3 s old, and runs the retry.
        wait_until(lambda: all_trials(postgres_url)[name][victim.number].state == TrialState.FAIL, 60, "the stale trial failed")
        with admin.cursor() as cur:
            cur.execute(f'ALTER ROLE "{role}" LOGIN')
        assert a.wait(120) == 0, a.output()
        assert b.wait(120) == 0, b.output()
    finally:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        with grant.cursor() as cur:
            cur.execute(f'DROP OWNED BY "{role}"')
        grant.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP ROLE "{role}"')
        admin.close()
    assert "ended as lost by another process" in a.output()
    trials = all_trials(postgres_url)[name]
    (retry,) = retries_of(trials, victim.number)
    assert retry.state == TrialState.COMPLETE and retry.params == victim.params
    assert_budgets({name: trials}, 3, sizes=1)


def psycopg_connect(url: str):
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


# --- The one-machine default, the journal and the gRPC proxy ---------------------------------


@pytest.mark.slow
def test_four_workers_on_sqlite_have_no_storage_errors(spec, tmp_path, workers):
    path = spec("lite", trials=6, counts=(60, 120), epochs=3)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    create(path, url)
    # Queued trials are what workers race for: each must run exactly once. Trials a user queues
    # with Optuna's own enqueue_trial run besides the budget's (6 + 3 per study here).
    storage = optuna.storages.RDBStorage(url)
    for s in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        for lr in (0.01, 0.02, 0.03):
            study.enqueue_trial({"lr": lr})
    storage.engine.dispose()
    ws = [workers(f"w{i}", *worker_args(path, url)) for i in range(4)]
    for w in ws:
        assert w.wait(180) == 0, w.output()
    for w in ws:
        text = w.output()
        # Not one retry, lock error or failed trial: workers wait for the lock instead.
        assert "WARNING" not in text and "Traceback" not in text and "[W " not in text, text
    trials = all_trials(url)
    assert not [t for ts in trials.values() for t in ts if t.state == TrialState.FAIL]
    for ts in trials.values():
        assert sorted(t.params["lr"] for t in ts if t.params["lr"] in (0.01, 0.02, 0.03)) == [0.01, 0.02, 0.03]
    assert_budgets(trials, 9, sizes=2)


@pytest.mark.slow
def test_journal_storage_run_completes(spec, tmp_path, workers):
    path = spec("journal", trials=3, counts=(60, 120), epochs=3)
    url = f"journal:///{tmp_path / 'store.log'}"
    run = workers("run", "run", str(path), "--storage", url, "--workers", "2", *HEARTBEAT)
    assert run.wait(180) == 0, run.output()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "store.log")))
    trials = {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials() for s in optuna.get_all_study_summaries(storage)}
    assert_budgets(trials, 3, sizes=2)
    # Journal stores have heartbeats too: each trial recorded at least one.
    assert all("scaling_optuna:heartbeat" in t.system_attrs for ts in trials.values() for t in ts)


@pytest.mark.slow
def test_grpc_proxy_run_completes_and_retries_a_killed_worker(spec, postgres_url, workers):
    path = spec("proxied", trials=2, counts=(400,), epochs=30)
    port = free_port()
    proxy = workers("proxy", "proxy", "--storage", with_password(postgres_url), "--port", str(port), "--grpc-threads", "4", *FAST_HEARTBEAT)
    wait_until(lambda: "listening" in proxy.output() or proxy.proc.poll() is not None, 60, "the proxy")
    assert proxy.proc.poll() is None, proxy.output()
    url = f"grpc://127.0.0.1:{port}"
    create(path, url)
    a = workers("a", *worker_args(path, url, fast=True))
    b = workers("b", *worker_args(path, url, fast=True))
    name, victim = wait_until(lambda: running_mid_trial(postgres_url, a.pid), 120, "a trial of worker a mid-way")
    a.proc.send_signal(signal.SIGKILL)
    a.wait(10)
    assert b.wait(150) == 0, b.output()
    with admin_connect() as admin, admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (_dbname(postgres_url),))
        connections = cur.fetchone()[0]
    print(f"database connections with two gRPC workers: {connections} (all the proxy's)")
    assert connections <= 4 + 2
    trials = all_trials(postgres_url)[name]
    assert trials[victim.number].state == TrialState.FAIL
    (retry,) = retries_of(trials, victim.number)
    assert retry.state == TrialState.COMPLETE and retry.params == victim.params
    assert_budgets({name: trials}, 2, sizes=1)
    assert SECRET not in proxy.output()


# --- Exact budgets, every store notices dead workers -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_six_workers_on_one_trial_budgets_never_overshoot(store, spec, tmp_path, workers, request):
    """Workers only claim queued trials, so however many race, no study ends over its budget."""
    url = f"sqlite:///{tmp_path / 'store.db'}" if store == "sqlite" else request.getfixturevalue("postgres_url")
    path = spec("race", trials=1, counts=(60, 90, 120), epochs=2)
    create(path, url)
    # A longer grace than the other tests: eight busy processes on two cores must not look dead.
    args = ("worker", str(path), "--storage", url, "--threads", "1", "--heartbeat", "2", "--grace", "12")
    ws = [workers(f"w{i}", *args) for i in range(6)]
    for w in ws:
        assert w.wait(180) == 0, w.output()
    trials = all_trials(url)
    ended = {n: [(t.state.name, t.system_attrs.get("scaling_optuna:ended")) for t in ts] for n, ts in trials.items()}
    assert all(len(ts) == 1 for ts in trials.values()), ended
    assert_budgets(trials, 1, sizes=3)


@pytest.mark.slow
def test_journal_store_reruns_the_trial_of_a_killed_worker(spec, tmp_path, workers):
    path = spec("journal_kill", trials=2, counts=(400,), epochs=30)
    log = tmp_path / "store.log"
    url = f"journal:///{log}"
    create(path, url)
    a = workers("a", *worker_args(path, url, fast=True))
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(log)))

    def journal_trials() -> dict[str, list[FrozenTrial]]:
        return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials() for s in optuna.get_all_study_summaries(storage)}

    def a_mid_trial():
        for name, ts in journal_trials().items():
            for t in ts:
                if t.state == TrialState.RUNNING and t.intermediate_values and str(t.user_attrs.get("worker", "")).endswith(f":{a.pid}"):
                    return name, t
        return None

    name, victim = wait_until(a_mid_trial, 120, "a trial of worker a mid-way")
    a.proc.send_signal(signal.SIGKILL)
    a.wait(10)
    b = workers("b", *worker_args(path, url, fast=True))
    assert b.wait(180) == 0, b.output()
    trials = journal_trials()[name]
    assert trials[victim.number].state == TrialState.FAIL
    (retry,) = retries_of(trials, victim.number)
    assert retry.state == TrialState.COMPLETE and retry.params == victim.params
    assert "stopped beating" in b.output()
    assert_budgets({name: trials}, 2, sizes=1)


@pytest.mark.slow
def test_sigterm_during_an_outage_stops_the_worker_before_the_store_is_back(spec, postgres_url, workers):
    """A stop request is not held up by retries: the worker leaves while the database is still away."""
    path = spec("outage_term", trials=2, counts=(400,), epochs=30)
    create(path, postgres_url)
    a = workers("a", *worker_args(path, postgres_url))
    wait_until(lambda: running_mid_trial(postgres_url, a.pid), 120, "a trial mid-way")
    db = _dbname(postgres_url)
    admin = admin_connect()
    try:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))
        wait_until(lambda: "store" in a.output() or "not recorded" in a.output(), 60, "the worker to notice the outage")
        a.proc.send_signal(signal.SIGTERM)
        code = a.wait(60)
        with admin.cursor() as cur:
            cur.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (db,))
            still_away = not cur.fetchone()[0]
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
        admin.close()
    assert still_away and code is not None, a.output()
    assert "Traceback" not in a.output()


@pytest.mark.slow
def test_a_plain_study_with_a_matching_name_is_refused(spec, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    study = optuna.create_study(study_name="dg-n0000100", storage=url, direction="maximize")
    study.optimize(lambda t: t.suggest_float("foo", 0, 1), n_trials=1)
    path = spec("dg", trials=2, counts=(100,), epochs=2)
    result = run_cli("create", str(path), "--storage", url)
    assert result.returncode == 2 and "not created by scaling-optuna" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    again = optuna.load_study(study_name="dg-n0000100", storage=url)
    assert len(again.trials) == 1 and "experiment" not in again.user_attrs  # untouched
    best = run_cli("best", str(path), "--storage", url)
    assert best.returncode == 2 and "foo" not in best.stdout


# --- docker-compose.yml ----------------------------------------------------------------------


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


_VAR = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(m: re.Match) -> str:
        value = env.get(m["name"]) or ""
        if value:
            return value
        if m["op"] == "-":
            return m["arg"]
        if m["op"] == "?":
            raise AssertionError(f"compose needs {m['name']}: {m['arg']}")
        return ""

    return _VAR.sub(one, text.replace("$$", "\0")).replace("\0", "$")


def test_compose_file_is_sound():
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "create", "worker", "dashboard"} <= set(services)
    pg = services["postgres"]
    image, _, tag = pg["image"].partition(":")
    assert image == "postgres" and re.match(r"\d+(\.\d+)?", tag), pg["image"]  # pinned official image
    assert "healthcheck" in pg
    volume = pg["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]  # a named volume
    assert "${POSTGRES_PASSWORD" in str(pg["environment"]["POSTGRES_PASSWORD"])
    for name in ("create", "worker", "dashboard"):  # the password is never pasted into the URL
        assert "PASSWORD" not in services[name]["environment"]["SCALING_OPTUNA_STORAGE"], name
    for service in services.values():
        for port in service.get("ports", []):
            assert interpolate(str(port), {}).startswith("127.0.0.1:"), port  # this machine only by default
            assert interpolate(str(port), {}).count(":") == 2, port  # an explicit address, never all interfaces
    for name in ("create", "worker"):
        assert any(str(v).split(":")[1] == "/app/data" for v in services[name]["volumes"]), name  # shared data cache
    assert services["worker"]["depends_on"]["create"]["condition"] == "service_completed_successfully"
    assert services["create"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "container_name" not in services["worker"]  # or --scale would fail
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "PASSWORD" not in dockerfile.upper().replace("POSTGRES_PASSWORD", "")
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#"))
    assert "POSTGRES_PASSWORD" in example
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


@pytest.mark.slow
def test_compose_services_commands_run_locally(spec, postgres_url, tmp_path, workers):
    """Run what the create, worker and dashboard services run, against the local PostgreSQL."""
    services = _compose()["services"]
    path = spec("compose", trials=2, counts=(60, 120), epochs=3)
    port = free_port()
    password = f"{SECRET} /@:%?#'\""  # characters a URL would need encoded: none is, none needs to be
    env = {"POSTGRES_PASSWORD": password, "SCALING_OPTUNA_SPEC": str(path), "DASHBOARD_PORT": str(port), "THREADS": "1", "LOG_FORMAT": "json"}

    def command(service: str) -> list[str]:
        cmd = services[service]["command"]
        argv = [interpolate(str(a), env) for a in (cmd if isinstance(cmd, list) else cmd.split())]
        assert argv[0] == "scaling-optuna", argv
        return [sys.executable, "-m", "scaling_optuna", *argv[1:]]

    def environment(service: str) -> dict[str, str]:
        values = {k: interpolate(str(v), env) for k, v in services[service].get("environment", {}).items()}
        # Inside compose the database is the host "postgres"; here it is the test database.
        # The password travels beside the URL, as libpq's PGPASSWORD, so no character of it needs encoding.
        assert values["SCALING_OPTUNA_STORAGE"] == "postgresql://optuna@postgres:5432/optuna", values
        assert values["PGPASSWORD"] == password
        values["SCALING_OPTUNA_STORAGE"] = postgres_url
        assert values["SCALING_OPTUNA_ARTIFACTS"].startswith("/app/data/")  # on the shared volume
        values["SCALING_OPTUNA_ARTIFACTS"] = str(tmp_path / "artifacts")
        return values

    created = subprocess.run(command("create"), env={**os.environ, **environment("create")}, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert created.returncode == 0, created.stderr
    ws = [workers(f"worker{i}", *command("worker")[3:], env=environment("worker")) for i in range(2)]
    dashboard_env = {**os.environ, **environment("dashboard"), "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "dashboard.log", "w") as log:
        dashboard = subprocess.Popen(command("dashboard"), env=dashboard_env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        for w in ws:
            assert w.wait(180) == 0, w.output()
        assert_budgets(all_trials(postgres_url), 2, sizes=2)
        body = wait_until(lambda: _get(f"http://127.0.0.1:{port}/api/studies"), 60, "the dashboard")
        assert "compose-n0000060" in body and "compose-n0000120" in body
    finally:
        dashboard.terminate()
        dashboard.wait(10)
    assert len(list((tmp_path / "artifacts").iterdir())) >= 2  # the workers kept their best weights there
    assert SECRET not in (tmp_path / "dashboard.log").read_text() + "".join(w.output() for w in ws) + created.stdout + created.stderr


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None
