"""Faults a store meets on a cluster, on real files and servers: a journal torn by a full disk or a killed
writer, a fleet of workers opening a fresh store at the same moment, a disk that fills under a run."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import time
import uuid
from pathlib import Path

import optuna
import pytest

from scaling_optuna.errors import StorageError
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._journal import WholeRecordsBackend
from tests import forked_cli
from tests.conftest import admin_connect
from tests.conftest import run_cli
from tests.conftest import tmpfs
from tests.first_open import open_together

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _records(path: Path) -> list[dict]:
    """Every line of a journal, parsed: fails on a damaged one."""
    text = path.read_bytes()
    assert text.endswith(b"\n"), "the journal ends in an unfinished record"
    return [json.loads(line) for line in text.splitlines()]


# --- the journal: whole records or nothing ---------------------------------------------------------


def test_a_torn_journal_tail_is_set_aside_and_the_next_commands_work(tiny_digits, tmp_path):
    """A last record cut short (a writer killed mid-write) is moved aside on open, with a warning naming the file."""
    spec = str(tiny_digits("torn"))
    log = tmp_path / "store.log"
    url = f"journal:///{log}"
    created = run_cli("create", spec, "--storage", url, cwd=tmp_path, timeout=120)
    assert created.returncode == 0, created.stderr
    whole = log.read_bytes()
    last = whole.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    log.write_bytes(whole + last[: len(last) // 2])  # half a record, no newline

    again = run_cli("create", spec, "--storage", url, "--trials", "3", cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stderr
    aside = list(tmp_path.glob("store.log.torn-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == last[: len(last) // 2]
    assert "moved it to " in again.stderr and aside[0].name in again.stderr and "Traceback" not in again.stderr
    status = run_cli("status", spec, "--storage", url, cwd=tmp_path, timeout=120)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert _records(log)[: whole.count(b"\n")] == [json.loads(line) for line in whole.splitlines()]


def test_a_journal_write_on_a_full_disk_leaves_nothing_and_names_the_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    with tmpfs(mount, "256k"):
        log = mount / "store.log"
        storage = open_storage(f"journal:///{log}", create=True)
        study = optuna.create_study(storage=storage, study_name="s")
        subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'fill'}", "bs=4k", "count=1000"], capture_output=True)
        before = log.read_bytes()
        with pytest.raises(StorageError, match="disk is full"):
            for i in range(200):
                study.set_user_attr(f"k{i}", "x" * 3000)  # larger than any space a 4 KiB block can leave
        assert _records(log)  # whole records only: the failed one was cut back
        written = log.read_bytes()
        assert written.startswith(before)
        (mount / "fill").unlink()
        # Space is back: the same store takes writes again, and a fresh open reads everything.
        study.set_user_attr("after", 1)
        reread = optuna.load_study(study_name="s", storage=open_storage(f"journal:///{log}"))
        assert reread.user_attrs["after"] == 1 and len(_records(log)) == written.count(b"\n") + 1


def test_a_journal_damaged_before_its_end_is_one_clear_error(tmp_path):
    log = tmp_path / "store.log"
    study = optuna.create_study(storage=open_storage(f"journal:///{log}", create=True), study_name="s")
    study.set_user_attr("a", 1)
    study.set_user_attr("b", 2)
    lines = log.read_bytes().splitlines(keepends=True)
    # What an earlier version left: a record cut short with the next one glued on, and more after it.
    log.write_bytes(b"".join(lines[:-2]) + lines[-2][:10] + lines[-2] + lines[-1])
    with pytest.raises(StorageError, match=f"damaged record on line {len(lines) - 1} ") as raised:
        open_storage(f"journal:///{log}")
    assert "\n" not in str(raised.value)


def test_a_torn_tail_on_a_full_disk_is_read_past_and_set_aside_once_there_is_room(tmp_path, caplog):
    mount = tmp_path / "small"
    mount.mkdir()
    with tmpfs(mount, "256k"):
        log = mount / "store.log"
        optuna.create_study(storage=open_storage(f"journal:///{log}", create=True), study_name="s")
        whole = log.read_bytes()
        log.write_bytes(whole + b'{"op_code":4,"worker_id":"cut sh')
        subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'fill'}", "bs=4k", "count=1000"], capture_output=True)
        with caplog.at_level(logging.WARNING, logger="scaling_optuna.storage"):
            storage = open_storage(f"journal:///{log}")  # no room for the torn part: it stays, and is skipped
        assert "cannot be set aside" in caplog.text
        study = optuna.load_study(study_name="s", storage=storage)
        (mount / "fill").unlink()
        study.set_user_attr("after", 1)  # the append sets the torn part aside first
        assert len(list(mount.glob("store.log.torn-*"))) == 1
        assert _records(log)[-1]["user_attr"] == {"after": 1}


# --- a fleet opening a fresh store at once -------------------------------------------------------


@pytest.mark.slow
def test_ten_fresh_sqlite_stores_opened_by_two_processes_at_once(tmp_path):
    urls = [f"sqlite:///{tmp_path / f'fresh{i}.db'}" for i in range(10)]
    assert open_together(urls) == []
    for url in urls:
        assert len(optuna.storages.RDBStorage(url).get_all_studies()) == 0


@pytest.mark.slow
def test_ten_fresh_postgresql_databases_opened_by_two_processes_at_once():
    admin = admin_connect()
    names = [f"so_first_open_{uuid.uuid4().hex[:10]}" for _ in range(10)]
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'CREATE DATABASE "{name}"')
        urls = [f"postgresql://postgres@127.0.0.1:5432/{name}" for name in names]
        assert open_together(urls) == []
        for url in urls:
            storage = optuna.storages.RDBStorage(url)
            assert storage.get_all_studies() == [] and storage.get_current_version() == storage.get_head_version()
            storage.engine.dispose()
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# --- a full disk under a run -----------------------------------------------------------------------


def test_a_worker_on_a_full_sqlite_disk_says_the_disk_is_full_and_status_still_reads(tiny_digits, tmp_path):
    spec = str(tiny_digits("full"))
    mount = tmp_path / "small"
    mount.mkdir()
    with tmpfs(mount, "2m"):
        url = f"sqlite:///{mount / 'store.db'}"
        assert run_cli("create", spec, "--storage", url, cwd=tmp_path, timeout=120).returncode == 0
        subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'fill'}", "bs=4k", "count=1000"], capture_output=True)
        worker = run_cli("worker", spec, "--storage", url, cwd=tmp_path, timeout=120)
        assert worker.returncode == 2 and worker.stderr.count("\n") == 1, worker.stderr
        assert f"the disk holding {mount / 'store.db'} is full; free space on it" in worker.stderr
        status = run_cli("status", spec, "--storage", url, cwd=tmp_path, timeout=120)
        assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr


@pytest.mark.slow
def test_the_write_ahead_log_stays_small_during_a_run(tiny_digits, tmp_path):
    """SQLite's default let the log grow to 3 MB beside a store of 140 KB in this run."""
    from scaling_optuna.storages._sqlite import WAL_SIZE_LIMIT

    spec = str(tiny_digits("wal", trials=4, counts=(60, 120, 240), epochs=8))
    store = tmp_path / "store.db"
    run = forked_cli.start(["run", spec, "--storage", f"sqlite:///{store}", "--workers", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL)
    largest = 0
    wal = tmp_path / "store.db-wal"
    while run.poll() is None:
        with contextlib.suppress(OSError):
            largest = max(largest, wal.stat().st_size)
        time.sleep(0.05)
    assert run.returncode == 0, run.stderr.read()
    # It passes the limit while readers hold the log (700 KB seen on a busy machine); SQLite's default reached 3 MB here.
    assert 0 < largest <= 3 * WAL_SIZE_LIMIT, largest


@pytest.mark.slow
def test_sigterm_right_after_a_full_disk_says_what_stays_running_and_the_next_run_recovers_it(tiny_digits, tmp_path):
    # every trial runs all its epochs: none can end between the full disk and the signal
    spec = str(tiny_digits("term", trials=2, counts=(240,), epochs=100, whole_epochs=True))
    mount = tmp_path / "small"
    mount.mkdir()
    with tmpfs(mount, "3m"):
        # A journal grows with every write, so a full disk stops the hand-back for sure.
        url = f"journal:///{mount / 'store.log'}"
        heartbeat = ("--heartbeat", "1", "--grace", "4")
        run = forked_cli.start(["run", spec, "--storage", url, "--workers", "2", *heartbeat], cwd=tmp_path)
        try:
            for line in run.stdout:
                if "· 2 running" in line:
                    break
            subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'fill'}", "bs=4k", "count=1000"], capture_output=True)
            _fill_last_page(mount / "store.log")
            run.send_signal(signal.SIGTERM)
            _, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 128 + signal.SIGTERM
        assert "were handed back" not in err
        running = _running(url)
        assert running and f"{len(running)} running trial(s) could not be handed back" in err and "stay RUNNING" in err, err
        (mount / "fill").unlink()
        again = run_cli("run", spec, "--storage", url, "--workers", "1", *heartbeat, cwd=tmp_path, timeout=300)
        assert again.returncode == 0, again.stderr
        study = optuna.load_study(study_name="term-n0000240", storage=open_storage(url))
        finished = [t for t in study.get_trials() if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL]
        assert len(finished) == 2 and not _running(url)
        rerun = {t.system_attrs.get("scaling_optuna:replaces") for t in finished}
        assert {t.number for t in running} <= rerun | {t.number for t in finished}  # each one re-run (or finished)


def _fill_last_page(journal: Path) -> None:
    """Use up the room left in the journal's last page with the smallest valid records.

    A full tmpfs still takes an append that fits in the file's last page, so a hand-back
    could land there; after this every record needs a page the disk does not have.
    """
    storage = optuna.storages.JournalStorage(WholeRecordsBackend(str(journal)))
    study_id = storage.get_all_studies()[0]._study_id
    for _ in range(4096):  # a record is tens of bytes: a page holds fewer than this many
        try:
            storage.set_study_user_attr(study_id, "f", 0)
        except OSError:
            return
    raise AssertionError("the journal kept taking records on a full disk")


def _running(url: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url, read_only=True)
    studies = [s.study_name for s in storage.get_all_studies()]
    return [
        t
        for name in studies
        for t in optuna.load_study(study_name=name, storage=storage).get_trials(states=(optuna.trial.TrialState.RUNNING,))
    ]
