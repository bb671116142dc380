"""SIGTERM and Ctrl-C as a stop request that arrives at once, also while the main thread is busy in C code.

Python runs a signal handler only when the main thread next executes
bytecode; one training step of a wide model, or a long database call, can
keep it in C code for minutes. :class:`StopOnSignals` therefore also has the
interpreter write every signal to a socket (``signal.set_wakeup_fd``) that a
background thread reads: the ``stop`` event is set within milliseconds, and
whatever waits on it (a watchdog, a loop between steps) acts on it. A second
Ctrl-C still interrupts the main thread, with ``KeyboardInterrupt``.

Example::

    stop = threading.Event()
    with StopOnSignals(stop, lambda name: print(f"received {name}: stopping")) as signals:
        signal.raise_signal(signal.SIGTERM)    # as `kill` would; Ctrl-C sends SIGINT
        while not stop.is_set():
            stop.wait(0.1)                     # one step of the work
    if signals.received:
        print("stopped by", signals.received)
"""

from __future__ import annotations

import signal
import socket
import threading
import types
from typing import Any, Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignals:
    """Set ``stop`` on SIGTERM or SIGINT; ``on_signal(name)`` is called once, for the first one.

    Install it from the main thread (``signal.signal`` requires it); leaving
    the block restores the previous handlers.
    """

    def __init__(self, stop: threading.Event, on_signal: Callable[[str], None] | None = None) -> None:
        self.stop, self.on_signal = stop, on_signal
        self.received: str | None = None
        self._handled = False
        self._lock = threading.Lock()
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None

    def __enter__(self) -> "StopOnSignals":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._watcher = threading.Thread(target=self._watch, args=(reader,), name="stop-on-signals", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._sockets is not None:
            reader, writer = self._sockets
            writer.close()  # the watcher reads the end of the stream and returns
            self._watcher.join(1.0)
            reader.close()

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        """The Python-level handler, in the main thread: a Ctrl-C after an earlier signal interrupts at once."""
        if signum == signal.SIGINT and self._handled:
            raise KeyboardInterrupt
        self._handled = True
        self._request(signum)

    def _watch(self, reader: socket.socket) -> None:
        """Read the signal numbers the interpreter writes to the socket as they arrive."""
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in STOP_SIGNALS:
                    self._request(signum)

    def _request(self, signum: int) -> None:
        with self._lock:
            first = self.received is None
            if first:
                self.received = signal.Signals(signum).name
        if first and self.on_signal is not None:
            self.on_signal(self.received)
        self.stop.set()
