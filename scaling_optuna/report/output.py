"""Writing the report: ``report.json`` and ``report.html`` in one folder, each file whole or not at all.

Each file is written whole under a temporary name in the folder (created
exclusively, so never through a symlink), flushed to disk, and only then
renamed over its final name: a reader never sees half a file, a full disk
leaves the old report in place, and a ``report.html`` that is a symlink is
replaced by the new file, never followed to overwrite what it points at.

:func:`stage_report` writes both files under their temporary names first, so
that a command can find out that its output cannot be written before it does
anything else (``scaling-optuna report`` publishes to optuna-dashboard only
then), and :meth:`StagedReport.commit` renames them.

Example::

    from scaling_optuna.report import write_report

    json_path, html_path = write_report(report, "report-digits")
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from types import TracebackType

from scaling_optuna.errors import UserError
from scaling_optuna.report.report import Report

__all__ = ["StagedReport", "check_output_dir", "stage_report", "write_report"]

FILES = ("report.json", "report.html")


def check_output_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` if missing and check that a file can be written in it.

    Raises:
        UserError: ``out_dir`` is a file, or the folder cannot be created or written.

    Example::

        out = check_output_dir("report-digits")   # before anything else is written anywhere
    """
    out = Path(out_dir)
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file, not a folder; pass a folder for report.json and report.html")
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".write-test-") as probe:
            probe.write(b"report")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        raise _cannot_write(out, e) from None
    for name in FILES:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            raise UserError(f"{target} is a folder; remove it or pass another --out folder")
    return out


class StagedReport:
    """``report.json`` and ``report.html`` written under temporary names in ``out``, until :meth:`commit`.

    Used as a context manager: leaving the block without a commit (an error)
    removes the temporary files, and the folder is as it was.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self._staged: dict[str, Path] = {}

    def write(self, report: Report) -> None:
        """Write (or rewrite) both files under their temporary names.

        Raises:
            UserError: a file cannot be written (a full disk, no permission).
        """
        for name, text in zip(FILES, (report.to_json() + "\n", report.to_html())):
            old = self._staged.pop(name, None)
            self._staged[name] = self._write_new(name, text)
            if old is not None:
                old.unlink(missing_ok=True)

    def commit(self) -> tuple[Path, Path]:
        """Give both files their final names (atomic renames); the paths of report.json and report.html."""
        try:
            for name in FILES:
                os.replace(self._staged[name], self.out / name)
                del self._staged[name]
        except OSError as e:
            raise _cannot_write(self.out, e) from None
        return self.out / FILES[0], self.out / FILES[1]

    def discard(self) -> None:
        """Remove the temporary files."""
        for path in self._staged.values():
            with contextlib.suppress(OSError):
                path.unlink()
        self._staged.clear()

    def __enter__(self) -> StagedReport:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.discard()

    def _write_new(self, name: str, text: str) -> Path:
        path = self.out / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            # O_EXCL: a new file, never an existing one nor the target of a symlink.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as e:
            raise _cannot_write(self.out, e) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            path.unlink(missing_ok=True)
            raise _cannot_write(self.out, e) from None
        return path


def stage_report(report: Report, out_dir: str | Path) -> StagedReport:
    """Check ``out_dir`` and write both files of ``report`` into it under temporary names.

    Raises:
        UserError: the folder cannot be created or written.

    Example::

        with stage_report(report, "report-digits") as staged:
            ...                     # everything is written: now publish elsewhere
            staged.commit()
    """
    staged = StagedReport(check_output_dir(out_dir))
    try:
        staged.write(report)
    except BaseException:
        staged.discard()
        raise
    return staged


def write_report(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (created if missing), each whole or not at all.

    Raises:
        UserError: the folder cannot be created or written.

    Example::

        json_path, html_path = write_report(report, "report-digits")
    """
    with stage_report(report, out_dir) as staged:
        return staged.commit()


def _cannot_write(out: Path, error: OSError) -> UserError:
    return UserError(f"cannot write the report into {out}: {error.strerror or error}; pass another --out folder")
