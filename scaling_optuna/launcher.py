"""``run``'s worker processes: children that stop with it and cannot outlive it.

A SIGTERM or SIGINT that reaches ``run`` is passed on to every worker, which
hands its running trial back at its next training step and exits; a second
SIGINT is passed on too, and interrupts the workers at once. Workers run in a
session of their own, so a terminal's Ctrl-C reaches them once, through
``run``, not twice. Should ``run`` itself die without a word (SIGKILL, an
out-of-memory kill), Linux sends each worker SIGTERM, so no trial is left
running without its owner: the worker asks for that itself as it starts
(:func:`die_with_launcher`), which a ``preexec_fn`` could not do safely in a
launcher whose torch threads are running.

Example::

    with WorkerGroup([["python", "-m", "scaling_optuna", "worker", "spec.toml"]] * 2, env) as group:
        while group.alive():
            time.sleep(1)
    if group.stop_signal:
        print("stopped: running trials were handed back")
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import types
from typing import Any
from typing import Mapping
from typing import Sequence

_PR_SET_PDEATHSIG = 1
# The launcher's pid, which a worker it starts reads to stop with it.
LAUNCHER_ENV = "SCALING_OPTUNA_LAUNCHER_PID"
_FORWARDED = (signal.SIGTERM, signal.SIGINT)


class WorkerGroup:
    """Worker processes started together, stopped together.

    Used as a context manager: on entry the workers start and the signal
    handlers that forward SIGTERM/SIGINT to them are installed; on exit the
    handlers are restored and any worker still running is stopped the same
    way and waited for, so leaving the block (also by an exception) leaves no
    worker behind.
    """

    def __init__(self, commands: Sequence[Sequence[str]], env: Mapping[str, str] | None = None) -> None:
        self._commands = [list(command) for command in commands]
        self._env = dict(env) if env is not None else None
        self.processes: list[subprocess.Popen] = []
        self.stop_signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "WorkerGroup":
        for sig in _FORWARDED:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._forward)
        try:
            # No preexec_fn: Python code between fork and exec in a process with running threads
            # (torch's) can deadlock or abort the child. The child reads its launcher from the environment.
            env = {**(self._env if self._env is not None else os.environ), LAUNCHER_ENV: str(os.getpid())}
            for command in self._commands:
                self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env, start_new_session=True))
        except BaseException:
            self._stop_all(signal.SIGTERM)
            self._restore()
            raise
        if self.stop_signal is not None:  # it came while the later workers were still starting
            self._signal_all(self.stop_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if any(p.poll() is None for p in self.processes):
                self._stop_all(signal.SIGTERM)
        finally:
            self._restore()

    def alive(self) -> bool:
        """Whether any worker is still running."""
        return any(p.poll() is None for p in self.processes)

    def returncodes(self) -> list[int | None]:
        return [p.returncode for p in self.processes]

    def _forward(self, signum: int, frame: types.FrameType | None) -> None:
        self.stop_signal = signum
        self._signal_all(signum)

    def _signal_all(self, signum: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def _stop_all(self, signum: int) -> None:
        self._signal_all(signum)
        for process in self.processes:
            # Short waits in a loop: a signal to ``run`` meanwhile is handled (and forwarded) at once.
            while process.poll() is None:
                try:
                    process.wait(0.5)
                except subprocess.TimeoutExpired:
                    pass

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def die_with_launcher() -> None:
    """In a worker a :class:`WorkerGroup` started: receive SIGTERM when the launcher dies (Linux; elsewhere nothing).

    Called first thing as the process starts; a process not started by a
    launcher (no :data:`LAUNCHER_ENV`) is left alone.
    """
    parent = os.environ.pop(LAUNCHER_ENV, "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)

