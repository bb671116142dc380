"""Writing the report: ``report.json`` and ``report.html`` in one folder (and any other command's files the same way).

:func:`check_output_dir` creates the folder and writes a test file into it, so
that a command can find out that its output cannot be written before it does
anything else (``scaling-optuna report`` and ``compare`` call it before
publishing to optuna-dashboard). :func:`write_files` is the writer both use.

Example::

    from scaling_optuna.report import write_report

    json_path, html_path = write_report(report, "report-digits")
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

from scaling_optuna.errors import UserError
from scaling_optuna.report.report import Report

__all__ = ["check_output_dir", "write_files", "write_report"]

REPORT_FILES = ("report.json", "report.html")


def check_output_dir(out_dir: str | Path, files: tuple[str, ...] = REPORT_FILES) -> Path:
    """Create ``out_dir`` if missing and check that a file can be written in it (``files`` name what goes there).

    Raises:
        UserError: ``out_dir`` is a file, or the folder cannot be created or written.

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
    return out


def write_files(out_dir: str | Path, contents: Mapping[str, str]) -> list[Path]:
    """Write each ``name: text`` of ``contents`` into ``out_dir`` (created if missing); the paths, in order.

    Raises:
        UserError: the folder cannot be created or written.

    Example::

        write_files("compare-digits", {"compare.json": comparison.to_json(), "compare.html": comparison.to_html()})
    """
    names = tuple(contents)
    out = check_output_dir(out_dir, names)
    paths = []
    try:
        for name, text in contents.items():
            path = out / name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
    except OSError as e:
        raise _cannot_write(out, e, names) from None
    return paths


def write_report(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (created if missing).

    Raises:
        UserError: the folder cannot be created or written.

    Example::

        json_path, html_path = write_report(report, "report-digits")
    """
    json_path, html_path = write_files(out_dir, {"report.json": report.to_json() + "\n", "report.html": report.to_html()})
    return json_path, html_path


def _cannot_write(out: Path, error: OSError, files: tuple[str, ...]) -> UserError:
    what = "the report" if files == REPORT_FILES else " and ".join(files)
    return UserError(f"cannot write {what} into {out}: {error.strerror or error}; pass another --out folder")
