"""Shared fixtures: tiny specs, a CLI runner, a throwaway PostgreSQL database, a small file system."""

from __future__ import annotations

import contextlib
import os
import subprocess
import textwrap
import uuid
from pathlib import Path

# One torch thread per test process, and per process a test starts (a command sets its own with
# --threads): the suite runs two processes per core, and OpenMP threads beyond the cores spin at
# their barriers against each other and against whatever else shares the machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from tests import forked_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

TINY_DIGITS = """
name = "{name}"
seed = 0
trials_per_size = {trials}

[data]
dataset = "digits"

[sizes]
counts = {counts}

[search_space]
lr = {{ low = 0.05, high = 0.3, log = true }}
weight_decay = {{ low = 1e-6, high = 1e-4, log = true }}
momentum = {{ low = 0.8, high = 0.95 }}
conv1 = {{ low = 4, high = 12 }}
conv2 = {{ low = 4, high = 12 }}
fc1 = {{ low = 16, high = 48 }}
fc2 = {{ low = 16, high = 48 }}

[default_params]
lr = 0.1
weight_decay = 1e-6
momentum = 0.9
conv1 = 6
conv2 = 8
fc1 = 32
fc2 = 32

[trainer]
max_epochs = {epochs}
patience = 2
batch_size = 16

[sampler]
name = "RandomSampler"
seed = 1

[pruner]
name = "MedianPruner"
n_startup_trials = 2

[remeasure]
repeats = 0
"""
# Re-measuring is off above, so that a test that formats TINY_DIGITS itself pays for its search only.
NO_REMEASURE = "[remeasure]\nrepeats = 0\n"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: two test processes per core (``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides
    where set). Most tests spend much of their time waiting (for a worker process, a heartbeat, a
    grace period, a database), so a second process per core keeps the cores busy meanwhile."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 2 * cores


# The longest tests first (the README run, the multi-host test, then the other slow ones), so that
# none is left to start near the end with the other test processes idle; within each group the
# tests keep the order they were collected in.
LONGEST_FIRST = ("tests/test_readme.py", "tests/test_multihost.py")


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        if item.get_closest_marker("slow") is None:
            return 2
        return 0 if item.nodeid.startswith(LONGEST_FIRST) else 1

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _forget_passwords():
    """Each test starts with the passwords remembered before it: one that tried a password such as
    "name" (hypothesis tries common words) would otherwise mask that word in the tests after it."""
    from scaling_optuna.storages import _url

    before = dict(_url._secrets)
    yield
    with _url._lock:
        _url._secrets.clear()
        _url._secrets.update(before)


@pytest.fixture
def restore_logging():
    """``configure_logging`` changes process-wide state: put it back for the tests that follow."""
    import logging

    import optuna

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    optuna.logging.enable_default_handler()
    optuna.logging.disable_propagation()
    logging.captureWarnings(False)


def write_spec(folder: Path, text: str, name: str = "spec.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def digits_spec_text(
    name: str = "tiny", trials: int = 2, counts=(60, 240), epochs: int = 4, *, whole_epochs: bool = False,
    top: int = 2, repeats: int = 0,
) -> str:
    """The tests' one small digits spec, as TOML text; every test that writes a spec starts from it.

    ``whole_epochs``: no pruning and no early stop, so every trial lasts ``epochs`` epochs
    (long enough to be stopped, killed or cut off mid-way). Re-measuring is off
    (``repeats=0``) unless a test turns it on, so that a test's cost is its search.
    """
    text = TINY_DIGITS.format(name=name, trials=trials, counts=list(counts), epochs=epochs)
    if whole_epochs:
        text = text.replace('name = "MedianPruner"\nn_startup_trials = 2', 'name = "NopPruner"').replace("patience = 2", f"patience = {epochs}")
    return text.replace(NO_REMEASURE, f"[remeasure]\ntop = {top}\nrepeats = {repeats}\n")


@pytest.fixture
def tiny_digits(tmp_path: Path):
    """Write a small digits spec (:func:`digits_spec_text`); returns a factory taking the spec's knobs."""

    def make(name: str = "tiny", trials: int = 2, counts=(60, 240), epochs: int = 4, **knobs) -> Path:
        return write_spec(tmp_path, digits_spec_text(name, trials, counts, epochs, **knobs), f"{name}.toml")

    return make


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``scaling-optuna ARGS`` as a user would, in a process of its own (:func:`tests.forked_cli.run`)."""
    return forked_cli.run(list(args), cwd=cwd, env=env, timeout=timeout)


def admin_connect():
    """An autocommit connection to the PostgreSQL server's own database, as user postgres."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=5)
    conn.autocommit = True
    return conn


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database on 127.0.0.1:5432, dropped afterwards.

    Skips when the server is unreachable, except under CI (CI=true), where it fails.
    """
    try:
        admin = admin_connect()
    except Exception as e:  # psycopg2.OperationalError and friends
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable under CI: {e}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {e}")
    name = f"so_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def store_url(kind: str, folder: Path, request) -> str:
    """A fresh store of ``kind`` (sqlite, journal, postgresql) for a test; PostgreSQL through the ``postgres_url`` fixture."""
    if kind == "postgresql":
        return request.getfixturevalue("postgres_url")
    return {"sqlite": f"sqlite:///{folder / 'store.db'}", "journal": f"journal:///{folder / 'store.log'}"}[kind]


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` (``mount``'s form: ``1m``) mounted on the folder ``path`` while the block runs.

    Skips without root, except under CI (CI=true), where it fails.
    """
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("this test mounts a tmpfs and needs root under CI")
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
