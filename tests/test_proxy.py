"""The gRPC storage proxy holds its port alone: a second proxy on a taken port exits 2 and writes nothing.

gRPC servers set SO_REUSEPORT by default, so before this check a second
proxy started on a taken port, both served it, and the kernel split the
workers' requests between two different databases.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import run_cli

ENV = {k: v for k, v in os.environ.items() if k != "SCALING_OPTUNA_STORAGE"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proxy(folder: Path, db: str, port: int) -> tuple[subprocess.Popen, Path]:
    log = folder / f"{db}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scaling_optuna", "proxy", "--storage", f"sqlite:///{folder / db}", "--port", str(port), "--grpc-threads", "2"],
            stdout=out, stderr=subprocess.STDOUT, env={**ENV, "PYTHONUNBUFFERED": "1"}, cwd=folder,
        )
    return proc, log


def _wait_listening(proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if "listening" in log.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"proxy not listening after {timeout} s: {log.read_text()}")


@pytest.fixture
def first_proxy(tmp_path):
    port = _free_port()
    proc, log = _proxy(tmp_path, "first.db", port)
    try:
        _wait_listening(proc, log)
        yield port
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_second_proxy_on_a_taken_port_exits_2_with_one_line_and_writes_nothing(first_proxy, tmp_path, tiny_digits):
    second = run_cli("proxy", "--storage", f"sqlite:///{tmp_path / 'second.db'}", "--port", str(first_proxy), timeout=60, env=ENV)
    assert second.returncode == 2, second.stdout + second.stderr
    assert second.stderr.count("\n") == 1, second.stderr
    assert second.stderr.startswith(f"error: the proxy cannot listen on 127.0.0.1:{first_proxy}: the port is in use")
    assert "listening" not in second.stdout
    assert not (tmp_path / "second.db").exists()  # refused before the store was touched

    # The first proxy still serves the port, alone: what a client writes lands in its database.
    spec = tiny_digits(name="held")
    created = run_cli("create", str(spec), "--storage", f"grpc://127.0.0.1:{first_proxy}", timeout=120, env=ENV)
    assert created.returncode == 0, created.stderr
    names = {s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'first.db'}")}
    assert names == {"held-n0000060", "held-n0000240"}


def test_a_proxy_holds_its_port_even_against_a_server_that_asks_to_share_it(first_proxy):
    """Optuna's own proxy (SO_REUSEPORT on, as in every gRPC server by default) cannot join the port either."""
    import grpc
    from concurrent.futures import ThreadPoolExecutor

    intruder = grpc.server(ThreadPoolExecutor(max_workers=1))
    try:
        bound = intruder.add_insecure_port(f"127.0.0.1:{first_proxy}")
    except RuntimeError:
        bound = 0
    finally:
        intruder.stop(None)
    assert bound == 0


def test_a_port_held_by_another_program_is_refused(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = run_cli("proxy", "--storage", f"sqlite:///{tmp_path / 'p.db'}", "--port", str(port), timeout=60, env=ENV)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "the port is in use" in done.stderr, done.stderr
    assert not (tmp_path / "p.db").exists()
