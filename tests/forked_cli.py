"""``python -m scaling_optuna ARGS`` in a process forked from one that has imported it already.

Every CLI call in the tests is a process of its own, as a user's is: its own exit status,
signals, environment, working directory, standard streams and children. What a fresh
``python`` spends before ``main`` runs (starting the interpreter, importing torch, Optuna,
SQLAlchemy, scipy: 2-3 CPU-seconds) was most of the suite's time. A server, one per test
process, imports those modules once and forks a child per call. Nothing but imports has
run in it (no torch thread pool, no store, no logging set up), so a child starts as a fresh
``python -m scaling_optuna`` would, less the imports: it runs the package's own
``__main__`` and ends as that interpreter would, as far as anything outside the process can
tell (:func:`_finalize`). A call whose environment
changes what Python or torch read as they import (``PYTHONPATH``, thread counts) starts a
fresh interpreter instead.

The server listens on a Unix socket; a request is one datagram (JSON: argv, cwd, env) with
the child's stdin, stdout and stderr as file descriptors, and the answer is the child's pid,
then its exit status (``-N`` for signal N, as :mod:`subprocess` says it).
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import io
import json
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Read as the interpreter or torch start: a call that sets any of these differently gets a fresh interpreter.
_READ_AT_IMPORT = ("PYTHON", "OMP_", "MKL_", "OPENBLAS_", "CUDA_", "TORCH", "LD_")
# What the server imports: everything a command reaches, so that no child imports it again.
_PRELOAD = (
    "scaling_optuna.cli", "scaling_optuna.launcher", "scaling_optuna.experiment", "scaling_optuna.worker",
    "scaling_optuna.preflight", "scaling_optuna.data", "scaling_optuna.train", "scaling_optuna.report",
    "scaling_optuna.report.report", "scaling_optuna.report.page", "scaling_optuna.compare",
    "scaling_optuna.compare.build", "scaling_optuna.fit", "scaling_optuna.dashboard", "scaling_optuna.storages",
    "scaling_optuna.storages._journal", "scaling_optuna.progress", "scaling_optuna.logs", "scaling_optuna.signals",
    "optuna.storages.journal", "optuna.storages._grpc.client", "sqlalchemy.dialects.sqlite", "psycopg2",
    "sklearn.datasets", "plotly.graph_objects", "scipy.optimize", "scipy.stats",
)
_PR_SET_PDEATHSIG = 1


# ---- the server ----------------------------------------------------------------------------

def serve(path: str) -> None:
    """Import, then fork a child per request on the Unix socket ``path`` until the test process is gone."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    # What the imports made stays out of the collector's sight from here on: a child's collections,
    # the last one as it exits above all, would otherwise visit (and so copy, page by page, from
    # this process) the whole heap of torch and the other modules: 0.75 CPU-s a command.
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            listener.close()
            conn.close()
            _child(request, fds)
        for fd in fds:
            os.close(fd)
        conn.send(json.dumps({"pid": pid}).encode())
        threading.Thread(target=_report_exit, args=(conn, pid), daemon=True).start()


def _report_exit(conn: socket.socket, pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    try:
        conn.send(json.dumps({"returncode": code}).encode())
    except OSError:
        pass  # the caller has gone
    conn.close()


def _child(request: dict, fds: list[int]) -> None:
    """Become ``python -m scaling_optuna ARGV`` in ``cwd`` with ``env``; never returns.

    The child ends as the command's own interpreter would (:func:`_finalize`).
    """
    try:
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        # A fresh interpreter's signal dispositions (the server's SIGTERM would otherwise be inherited).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = sys.__stdout__ = _text_stream(1, "strict")
        sys.stderr = sys.__stderr__ = _text_stream(2, "backslashreplace")
        # `python -m` puts the working directory first on the path.
        sys.path[0] = os.getcwd()
        sys.argv = ["-m", *request["argv"]]
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    _finalize(_run_main())


def _finalize(code: int) -> None:
    """End the child as its interpreter's finalization would, as far as anyone can observe: the
    command's threads joined, ``atexit`` run, what it made freed (database connections closed:
    SQLite folds its write-ahead log back then), the streams flushed.

    The rest of finalization, tearing down every module, is left out: it changes nothing outside
    the process, and it writes to every object the imports made, so that the kernel copies most of
    the server's memory into the child first (0.3 CPU-s a command, after ``gc.freeze``). What the
    command left in the package's own caches (an engine per database) is freed as teardown would.
    Each step runs whatever the one before it raised (a signal during the join, say), and the exit
    status stays the command's, as the interpreter's "Exception ignored" does.
    """
    for step in (threading._shutdown, atexit._run_exitfuncs, _clear_package_caches, gc.collect,
                 sys.stdout.flush, sys.stderr.flush):
        try:
            step()
        except BaseException:
            traceback.print_exc()
    os._exit(code)


def _clear_package_caches() -> None:
    for name, module in list(sys.modules.items()):
        if name.startswith("scaling_optuna"):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def _text_stream(fd: int, errors: str) -> io.TextIOWrapper:
    # As PYTHONUNBUFFERED=1 makes them: every write reaches the pipe at once.
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors=errors, write_through=True)


def _run_main() -> int:
    try:
        runpy.run_module("scaling_optuna", run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


# ---- the client ----------------------------------------------------------------------------

class _Server:
    """This test process's server, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: str | None = None
        self._proc: subprocess.Popen | None = None

    def path(self) -> str:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                folder = tempfile.mkdtemp(prefix="so-cli-")
                atexit.register(shutil.rmtree, folder, ignore_errors=True)
                self._path = os.path.join(folder, "socket")
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", f"from tests.forked_cli import serve; serve({self._path!r})"],
                    cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                )
                if self._proc.stdout.readline().strip() != "ready":
                    raise RuntimeError("the CLI server did not start")
            return self._path


_server = _Server()


class ForkedProcess:
    """A started CLI process, used as a :class:`subprocess.Popen` (``text=True``) is.

    ``stdout`` and ``stderr`` take what Popen's take: ``subprocess.PIPE`` (then read them
    as ``process.stdout``, or through ``communicate``), ``DEVNULL``, a file, or ``None``
    (this process's own).
    """

    def __init__(self, args: list[str], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) -> None:
        self.args = [sys.executable, "-m", "scaling_optuna", *args]
        self.returncode: int | None = None
        self.stdout = self.stderr = None
        ends = [os.open(os.devnull, os.O_RDONLY), self._stream("stdout", stdout, 1), self._stream("stderr", stderr, 2)]
        request = {"argv": list(args), "cwd": str(cwd or os.getcwd()), "env": dict(os.environ if env is None else env)}
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._conn.connect(_server.path())
            socket.send_fds(self._conn, [json.dumps(request).encode()], ends)
        finally:
            for fd in ends:
                os.close(fd)
        self.pid = json.loads(self._conn.recv(1 << 16))["pid"]
        self._read: dict[str, list[str]] = {}
        self._readers: list[threading.Thread] = []

    def _stream(self, name: str, how, own: int) -> int:
        """The descriptor the child gets for ``name`` (a new one, which the caller closes once it is sent)."""
        if how == subprocess.PIPE:
            read_end, write_end = os.pipe()
            setattr(self, name, open(read_end, encoding="utf-8", errors="replace"))
            return write_end
        if how == subprocess.DEVNULL:
            return os.open(os.devnull, os.O_WRONLY)
        return os.dup(own if how is None else how if isinstance(how, int) else how.fileno())

    def poll(self) -> int | None:
        if self.returncode is None:
            self._conn.setblocking(False)
            try:
                self._read_status()
            except BlockingIOError:
                pass
            finally:
                if self.returncode is None:
                    self._conn.setblocking(True)
        return self.returncode

    def _read_status(self) -> None:
        answer = self._conn.recv(1 << 16)
        # No answer: the server went before the child did (it is killed with the test process).
        self.returncode = json.loads(answer)["returncode"] if answer else -signal.SIGKILL
        self._conn.close()

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._conn.settimeout(timeout)
            try:
                self._read_status()
            except socket.timeout:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str | None, str | None]:
        """Read the pipes to their end and wait for the process, as Popen's ``communicate``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._readers:
            for name in ("stdout", "stderr"):
                if getattr(self, name) is not None:
                    self._readers.append(threading.Thread(target=self._drain, args=(name,), daemon=True))
                    self._readers[-1].start()
        for reader in self._readers:
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self._read.get("stdout"), self._read.get("stderr")

    def _drain(self, name: str) -> None:
        with getattr(self, name) as pipe:
            self._read[name] = pipe.read()


def needs_fresh_interpreter(env: dict[str, str]) -> bool:
    """Whether ``env`` sets something the server's interpreter read differently as it imported."""
    keys = {key for key in {*env, *os.environ} if key.startswith(_READ_AT_IMPORT)}
    return any(env.get(key) != os.environ.get(key) for key in keys if key != "PYTHONUNBUFFERED")


def start(args: list[str], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
          stdout=subprocess.PIPE, stderr=subprocess.PIPE) -> ForkedProcess | subprocess.Popen:
    """``subprocess.Popen([python, -m, scaling_optuna, *args], text=True, ...)``, forked where it can be."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if needs_fresh_interpreter(full_env):
        return subprocess.Popen([sys.executable, "-m", "scaling_optuna", *args], cwd=cwd, env=full_env,
                                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, text=True)
    return ForkedProcess(args, cwd=cwd, env=full_env, stdout=stdout, stderr=stderr)


def run(args: list[str], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run([python, -m, scaling_optuna, *args], capture_output=True, text=True, ...)``, forked where it can be."""
    process = start(args, cwd=cwd, env=env)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
