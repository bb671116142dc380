"""Optuna's journal file as a store: whole records or nothing, and a torn tail set aside.

Optuna's ``JournalFileBackend`` appends one JSON record a line. A write cut
short (a full disk) or a writer killed mid-write leaves a last line without
its newline; the next append is glued onto it, and from then on every read of
the file fails on that line. Here:

- an append that fails is cut back to where it began, under the journal's
  lock, so a failed write leaves nothing behind (and its error names the
  full disk, not a decoding failure later);
- on open, and before every append, a tail without its newline (a writer
  killed mid-write) is moved to a file beside the journal,
  ``<journal>.torn-<time>-<pid>``, with a warning naming it: the record it
  began was never acknowledged to its writer, which counts it as failed.

Example::

    backend = WholeRecordsBackend("exp.log")   # on a file system every machine shares
    storage = optuna.storages.JournalStorage(backend)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import JournalFileOpenLock

_log = logging.getLogger("scaling_optuna.storage")
# How far back from the end a torn tail is looked for: a record (one trial's
# parameters and attributes) is a few kilobytes; a tail longer than this is read whole.
_TAIL_CHUNK = 1 << 16


class WholeRecordsBackend(JournalFileBackend):
    """Optuna's journal file whose appends are whole records or nothing (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        # The open-based lock works on NFS, where symlink locks may not.
        self.lock = JournalFileOpenLock(path)
        super().__init__(path, lock_obj=self.lock)
        if _writable(Path(path)):
            with self._locked():
                set_aside_torn_tail(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock.acquire()
        try:
            yield
        finally:
            self.lock.release()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        with self._locked():
            set_aside_torn_tail(self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                start = os.fstat(fd).st_size
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                except BaseException:
                    os.ftruncate(fd, start)  # frees what was written: this works on a full disk too
                    raise
            finally:
                os.close(fd)


def set_aside_torn_tail(path: str) -> Path | None:
    """Move a last line without its newline to ``<path>.torn-…``; the file it went to, or None.

    Call it holding the journal's lock: an append in progress also ends
    without a newline until it is done. A tail that cannot be moved (the disk
    is full, the folder read-only) is left where it is, with a warning:
    Optuna's reader skips an unfinished last line, and the next append tries again.
    """
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        cut = _last_line_end(f, size)
        if cut == size:
            return None
        f.seek(cut)
        torn = f.read()
        aside = Path(f"{path}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        try:
            aside.write_bytes(torn)
        except OSError as e:
            with contextlib.suppress(OSError):
                aside.unlink()
            _log.warning(
                "journal %s ends in an unfinished record (%d bytes) that cannot be set aside (%s); it is skipped",
                path, len(torn), e.strerror or e,
            )
            return None
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    _log.warning(
        "journal %s ended in an unfinished record (%d bytes: a write cut short by a full disk or a killed "
        "process); moved it to %s", path, len(torn), aside,
        extra={"event": "journal_torn_tail", "journal": path, "moved_to": str(aside), "bytes": len(torn)},
    )
    return aside


def damaged_line(path: Path) -> int | None:
    """The number (from 1) of the first line of the journal that is not a whole JSON record, if any."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                json.loads(line)
            except ValueError:
                return number
    return None


def _last_line_end(f: Any, size: int) -> int:
    """The offset just past the file's last newline (0 when it has none)."""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        f.seek(start)
        chunk = f.read(end - start)
        newline = chunk.rfind(b"\n")
        if newline != -1:
            return start + newline + 1
        end = start
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _writable(path: Path) -> bool:
    # The lock file goes beside the journal, so the folder must be writable too.
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
