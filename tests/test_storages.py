"""The store layer on its own: the wrapper, error classes, masking, stale trials, exactly-once recovery."""

from __future__ import annotations

import contextlib
import inspect
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import optuna
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from scaling_optuna.errors import StorageError
from scaling_optuna.storages import check_url
from scaling_optuna.storages import mask_url
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._errors import fatal_reason
from scaling_optuna.storages._recovery import StaleTrials
from scaling_optuna.storages._recovery import ENDED_ATTR
from scaling_optuna.storages._recovery import HEARTBEAT_ATTR
from scaling_optuna.storages._recovery import REPLACES_ATTR
from scaling_optuna.storages._retry import ONCE_ONLY_WRITES
from scaling_optuna.storages._retry import READS
from scaling_optuna.storages._retry import REPEATABLE_WRITES
from scaling_optuna.storages._retry import RetryingStorage
from scaling_optuna.storages._shared import LOST
from scaling_optuna.storages._shared import describe_error
from scaling_optuna.storages._shared import end_trial
from scaling_optuna.storages._shared import is_transient
from scaling_optuna.storages._shared import queue_replacement
from tests.conftest import store_url
from tests.conftest import tmpfs

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- the wrapper covers Optuna's storage interface exactly ------------------------------------


def test_every_wrapped_method_exists_on_optunas_base_storage_with_the_same_signature():
    for name in READS + REPEATABLE_WRITES + ONCE_ONLY_WRITES:
        assert hasattr(BaseStorage, name), f"Optuna's BaseStorage has no {name} any more"
        ours = inspect.signature(getattr(RetryingStorage, name))
        theirs = inspect.signature(getattr(BaseStorage, name))
        assert list(ours.parameters) == list(theirs.parameters), name


def test_every_storage_method_of_optuna_is_wrapped():
    public = {n for n, v in vars(BaseStorage).items() if callable(v) and not n.startswith("_")}
    wrapped = set(READS + REPEATABLE_WRITES + ONCE_ONLY_WRITES) | {"remove_session", "check_trial_is_updatable"}
    assert public <= wrapped, f"not wrapped: {sorted(public - wrapped)}"
    # Instantiating proves no abstract method is left out (Python refuses otherwise).
    RetryingStorage(optuna.storages.InMemoryStorage())


def test_a_transient_error_is_retried_until_it_clears(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    storage = open_storage(url, create=True)
    study = optuna.create_study(storage=storage, study_name="s")
    blocker = sqlite3.connect(tmp_path / "store.db", timeout=0, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")  # "database is locked" for everyone else, for now
    released = threading.Event()

    def release_soon() -> None:
        released.wait(1.0)
        blocker.execute("COMMIT")

    thread = threading.Thread(target=release_soon)
    thread.start()
    try:
        quick = RetryingStorage(storage.backend, local=True, deadline_s=30)
        # With the lock held this write can only succeed through a retry after the release.
        quick.set_study_user_attr(quick.get_study_id_from_name("s"), "k", 1)
    finally:
        released.set()
        thread.join()
        blocker.close()
    assert study.user_attrs["k"] == 1


def test_sqlite_reads_take_no_write_lock(tmp_path):
    """A read through the store succeeds while another process holds the write lock."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    storage = open_storage(url, create=True)
    optuna.create_study(storage=storage, study_name="s")
    writer = sqlite3.connect(tmp_path / "store.db", timeout=0, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE studies SET study_name = study_name")
    read_while_locked = False
    try:
        reader = open_storage(url, read_only=True)
        reader.get_all_studies()
        reader.get_all_trials(reader.get_study_id_from_name("s"))
        # Still holding the lock: a read that needed it would have waited for this COMMIT.
        read_while_locked = writer.in_transaction
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert read_while_locked


# --- error classes from real stores -------------------------------------------------------------


def test_real_sqlite_errors_are_classified(tmp_path):
    path = tmp_path / "x.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a)")
    con.commit()
    with pytest.raises(sqlite3.OperationalError) as missing:
        con.execute("SELECT * FROM nope")
    with pytest.raises(sqlite3.OperationalError) as syntax:
        con.execute("SELEC 1")
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as readonly:
        ro.execute("INSERT INTO t VALUES (1)")
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError) as locked:
        sqlite3.connect(path, timeout=0).execute("SELECT * FROM t")
    locker.execute("COMMIT")
    assert is_transient(locked.value) and fatal_reason(locked.value) is None
    for error in (missing.value, readonly.value, syntax.value):
        assert not is_transient(error)
        assert fatal_reason(error) is not None
    assert "read-only" in fatal_reason(readonly.value)
    assert "create" in fatal_reason(missing.value)


def test_real_postgresql_errors_are_classified(postgres_url):
    import psycopg2

    with pytest.raises(psycopg2.OperationalError) as unknown_db:
        psycopg2.connect(postgres_url.rsplit("/", 1)[0] + "/no_such_db_" + uuid.uuid4().hex[:6])
    assert not is_transient(unknown_db.value) and "does not exist" in fatal_reason(unknown_db.value)
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(host="127.0.0.1", port=1, user="postgres", dbname="postgres", connect_timeout=2)
    assert is_transient(refused.value) and fatal_reason(refused.value) is None
    storage = open_storage(postgres_url, create=True)
    with pytest.raises(KeyError):
        storage.get_study_id_from_name("no such study")  # Optuna's own answer passes through unchanged


def test_in_memory_and_postgres_scheme_are_refused_with_the_fix():
    with pytest.raises(StorageError, match="sqlite:///scaling-optuna.db"):
        check_url("sqlite:///:memory:")
    with pytest.raises(StorageError, match="postgresql://"):
        check_url("postgres://u:secretpw@h/db")
    with pytest.raises(StorageError, match="malformed"):
        check_url("scaling-optuna.db")


def test_a_full_disk_fails_at_once_with_one_line(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    with tmpfs(mount, "2m"):
        url = f"sqlite:///{mount / 'store.db'}"
        storage = open_storage(url, create=True)
        study = optuna.create_study(storage=storage, study_name="s")
        # Fill what is left of the file system.
        subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'fill'}", "bs=4k", "count=10000"], capture_output=True)
        with pytest.raises(StorageError, match="disk is full"):
            for i in range(200):
                study.set_user_attr(f"k{i}", "x" * 2000)


def test_a_store_on_a_read_only_file_system_can_be_read(tmp_path):
    mount = tmp_path / "archive"
    mount.mkdir()
    with tmpfs(mount, "4m"):
        url = f"sqlite:///{mount / 'store.db'}"
        # Written by another process, which closes the file: a file system with open files cannot turn read-only.
        subprocess.run(
            [sys.executable, "-c", "import optuna, sys; from scaling_optuna.storages import open_storage; "
             "s = optuna.create_study(storage=open_storage(sys.argv[1], create=True), study_name='s'); "
             "s.enqueue_trial({'x': 1.0})", url],
            check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        reader = open_storage(url, read_only=True)
        study_id = reader.get_study_id_from_name("s")
        assert len(reader.get_all_trials(study_id)) == 1
        with pytest.raises(StorageError):
            open_storage(url)  # a worker needs to write: one clear error


# --- passwords never shown ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(password=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=24))
def test_a_password_of_any_printable_characters_is_masked_everywhere(password):
    if set(password) <= {"*"}:
        return
    url = f"postgresql://user:{password}@db.example:5432/exp"
    with contextlib.suppress(StorageError):
        check_url(url)
    for text in (url, f"error: cannot open {url}: refused", f"password={password}", password, f"'{password}'"):
        assert password not in mask_url(text)


def test_a_password_in_the_query_is_masked():
    url = "postgresql://user@db/exp?password=hunter2&sslmode=require"
    assert "hunter2" not in mask_url(url) and "sslmode=require" in mask_url(url)


# --- stale trials and exactly-once recovery -----------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _running(number: int, beat) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(state=TrialState.RUNNING, system_attrs={HEARTBEAT_ATTR: beat} if beat else {})
    trial.number = number
    return trial


def test_stale_state_is_kept_per_study():
    """Checking several studies in turn does not reset what was seen in the others."""
    clock = _Clock()
    stale = StaleTrials(grace_s=30, max_gap_s=20, clock=clock)
    a, b = [_running(0, [1.0, 10, "w"])], [_running(0, [5.0, 10, "v"])]
    for _ in range(8):
        assert stale.check(1, a) == [] or clock.now > 30
        assert stale.check(2, b) == [] or clock.now > 30
        clock.now += 5
    assert [t.number for t in stale.check(1, a)] == [0]
    assert [t.number for t in stale.check(2, b)] == [0]
    # A beat that changes is never stale.
    clock.now += 5
    assert stale.check(1, [_running(0, [2.0, 10, "w"])]) == []


def test_a_failed_check_or_a_gap_in_watching_restarts_the_watch():
    """After a store outage nobody could beat: a silent trial then is not yet stale."""
    clock = _Clock()
    stale = StaleTrials(grace_s=10, max_gap_s=5, clock=clock)
    trial = [_running(0, [1.0, 2, "w"])]
    for _ in range(3):
        stale.check(1, trial)
        clock.now += 4
    stale.forget()  # a check failed: the store was away
    clock.now += 4
    assert stale.check(1, trial) == []
    clock.now += 30  # not watched for longer than max_gap_s: no evidence either
    assert stale.check(1, trial) == []
    for _ in range(3):
        clock.now += 4
        found = stale.check(1, trial)
    assert [t.number for t in found] == [0]  # watched continuously for 12 s > 10 s


def test_a_trial_without_any_beat_gets_two_grace_periods():
    clock = _Clock()
    stale = StaleTrials(grace_s=10, max_gap_s=100, clock=clock)
    silent = [_running(3, None)]
    stale.check(7, silent)
    clock.now = 15
    assert stale.check(7, silent) == []
    clock.now = 21
    assert [t.number for t in stale.check(7, silent)] == [3]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "journal"])
def test_racing_reapers_end_a_trial_once_and_queue_one_replacement(kind, tmp_path, request):
    url = store_url(kind, tmp_path, request)
    storage = open_storage(url, create=True)
    study = optuna.create_study(storage=storage, study_name="race")
    study.enqueue_trial({"x": 0.5})
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study_id = storage.get_study_id_from_name("race")
    winners: list[str] = []
    barrier = threading.Barrier(4)

    def reap(who: str) -> None:
        own = open_storage(url)
        barrier.wait()
        if end_trial(own, study_id, trial.number, LOST, who):
            winners.append(who)
            queue_replacement(own, study_id, own.get_trial(own.get_trial_id_from_study_id_trial_number(study_id, trial.number)), who=who)

    threads = [threading.Thread(target=reap, args=(f"reaper{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trials = study.get_trials(deepcopy=False)
    assert len(winners) == 1
    ended = trials[0]
    assert ended.state == TrialState.FAIL and ended.system_attrs[ENDED_ATTR]["by"] == winners[0]
    replacements = [t for t in trials if t.system_attrs.get(REPLACES_ATTR) == ended.number]
    assert len(replacements) == 1 and replacements[0].state == TrialState.WAITING
    assert replacements[0].system_attrs["fixed_params"] == {"x": 0.5}
    # A repeated call (as after a lost reply) queues nothing more.
    assert queue_replacement(storage, study_id, ended, who="reaper0") is None


def test_a_finished_trial_is_not_ended(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'store.db'}", create=True)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    study.tell(trial, 1.0)
    assert not end_trial(storage, storage.get_study_id_from_name("s"), trial.number, LOST, "me")
    assert study.trials[0].state == TrialState.COMPLETE


def test_a_lost_grpc_proxy_is_described_by_its_status_and_details():
    """gRPC's own text is a multi-line repr whose first line names nothing."""
    import socket
    import warnings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
    with pytest.raises(Exception) as caught:
        proxy.get_all_studies()
    text = describe_error(caught.value)
    assert text.startswith("_InactiveRpcError: UNAVAILABLE: ") and "\n" not in text, text
    assert "Connection refused" in text or "failed to connect" in text, text
    assert is_transient(caught.value)


def test_a_raw_password_with_a_space_is_masked_in_the_url_and_alone():
    check_url("postgresql://u@db/exp?password=Zq/7 x#Pw?k")
    check_url("postgresql://u:x y@db/exp")
    for text in ("postgresql://u@db/exp?password=Zq/7 x#Pw?k", "Zq/7 x#Pw?k", "Zq%2F7+x%23Pw%3Fk", "password=Zq%2F7%20x%23Pw%3Fk"):
        assert "x#Pw" not in mask_url(text) and "Pw%3Fk" not in mask_url(text)
    for text in ("postgresql://u:x y@db/exp", "cannot open postgresql://u:x%20y@db/exp", "u:x+y@db"):
        assert "x y" not in mask_url(text) and "x%20y" not in mask_url(text) and ":x+y@" not in mask_url(text)
    assert mask_url("a box y is no password") == "a box y is no password"  # a short one alone stays: it may be any word


def test_a_grpc_error_is_described_by_its_details():
    import grpc
    from concurrent.futures import ThreadPoolExecutor

    from scaling_optuna.storages._shared import describe_error

    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as raised:
            channel.unary_unary("/no.Such/Method")(b"", timeout=10)
    finally:
        server.stop(grace=None)
    assert str(raised.value).startswith("<_InactiveRpcError of RPC that terminated with:")  # says nothing in its first line
    assert describe_error(raised.value) == "_InactiveRpcError: UNIMPLEMENTED: Method not found!"
