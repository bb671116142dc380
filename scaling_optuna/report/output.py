"""Writing a command's files (``report.json`` and ``report.html``, ``compare.json`` and ``compare.html``), each whole or not at all.

Each file is written whole under a temporary name in the folder (created
exclusively, so never through a symlink), flushed to disk, and only then
renamed over its final name: a reader never sees half a file, a full disk
leaves the old files in place, and a ``report.html`` that is a symlink is
replaced by the new file, never followed to overwrite what it points at.

:func:`stage_files` writes every file under its temporary name first, so
that a command can find out that its output cannot be written before it does
anything else (``scaling-optuna report`` and ``compare`` publish to
optuna-dashboard only then), and :meth:`StagedFiles.commit` renames them.

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
from typing import Mapping

from scaling_optuna.errors import UserError
from scaling_optuna.report.report import Report

__all__ = ["StagedFiles", "check_output_dir", "stage_files", "stage_report", "write_files", "write_report"]

REPORT_FILES = ("report.json", "report.html")


def check_output_dir(out_dir: str | Path, files: tuple[str, ...] = REPORT_FILES) -> Path:
    """Create ``out_dir`` if missing and check that ``files`` can be written in it.

    Raises:
        UserError: ``out_dir`` is a file, a file's name is a folder, or the folder cannot be created or written.

    Example::

        out = check_output_dir("report-digits")   # before anything else is written anywhere
    """
    out = Path(out_dir)
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file, not a folder; pass a folder for {' and '.join(files)}")
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".write-test-") as probe:
            probe.write(b"report")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        raise _cannot_write(out, e, files) from None
    for name in files:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            raise UserError(f"{target} is a folder; remove it or pass another --out folder")
    return out


class StagedFiles:
    """Files written under temporary names in ``out``, until :meth:`commit` gives them their names.

    Used as a context manager: leaving the block without a commit (an error)
    removes the temporary files, and the folder is as it was.
    """

    def __init__(self, out: Path, names: tuple[str, ...]) -> None:
        self.out, self.names = out, names
        self._staged: dict[str, Path] = {}

    def write(self, contents: Mapping[str, str]) -> None:
        """Write (or rewrite) each ``name: text`` under its temporary name.

        Raises:
            UserError: a file cannot be written (a full disk, no permission).
        """
        for name, text in contents.items():
            old = self._staged.pop(name, None)
            self._staged[name] = self._write_new(name, text)
            if old is not None:
                old.unlink(missing_ok=True)

    def commit(self) -> list[Path]:
        """Give every file its final name (atomic renames); their paths, in order."""
        try:
            for name in self.names:
                os.replace(self._staged[name], self.out / name)
                del self._staged[name]
        except OSError as e:
            raise _cannot_write(self.out, e, self.names) from None
        return [self.out / name for name in self.names]

    def discard(self) -> None:
        """Remove the temporary files."""
        for path in self._staged.values():
            with contextlib.suppress(OSError):
                path.unlink()
        self._staged.clear()

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.discard()

    def _write_new(self, name: str, text: str) -> Path:
        path = self.out / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            # O_EXCL: a new file, never an existing one nor the target of a symlink.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as e:
            raise _cannot_write(self.out, e, self.names) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            path.unlink(missing_ok=True)
            raise _cannot_write(self.out, e, self.names) from None
        return path


def stage_files(out_dir: str | Path, contents: Mapping[str, str]) -> StagedFiles:
    """Check ``out_dir`` and write every ``name: text`` of ``contents`` into it under temporary names.

    Example::

        with stage_files("compare-digits", {"compare.json": "{}", "compare.html": "<html></html>"}) as staged:
            ...                     # everything is written: now publish elsewhere
            staged.commit()
    """
    staged = StagedFiles(check_output_dir(out_dir, tuple(contents)), tuple(contents))
    try:
        staged.write(contents)
    except BaseException:
        staged.discard()
        raise
    return staged


def write_files(out_dir: str | Path, contents: Mapping[str, str]) -> list[Path]:
    """Write every ``name: text`` of ``contents`` into ``out_dir`` (created if missing), each whole; their paths."""
    with stage_files(out_dir, contents) as staged:
        return staged.commit()


def report_files(report: Report) -> dict[str, str]:
    """The report's files and what they hold."""
    return {"report.json": report.to_json() + "\n", "report.html": report.to_html()}


def stage_report(report: Report, out_dir: str | Path) -> StagedFiles:
    """:func:`stage_files` for ``report.json`` and ``report.html``; ``staged.write(report_files(report))`` rewrites them."""
    return stage_files(out_dir, report_files(report))


def write_report(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (created if missing), each whole.

    Raises:
        UserError: the folder cannot be created or written.
    """
    json_path, html_path = write_files(out_dir, report_files(report))
    return json_path, html_path


def _cannot_write(out: Path, error: OSError, files: tuple[str, ...]) -> UserError:
    what = "the report" if files == REPORT_FILES else " and ".join(files)
    return UserError(f"cannot write {what} into {out}: {error.strerror or error}; pass another --out folder")
