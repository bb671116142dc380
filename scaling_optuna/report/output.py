"""Writing the report: ``report.json`` and ``report.html`` in one folder.

:func:`check_output_dir` creates the folder and writes a test file into it, so
that a command can find out that its output cannot be written before it does
anything else (``scaling-optuna report`` calls it before publishing to
optuna-dashboard).

Example::

    from scaling_optuna.report import write_report

    json_path, html_path = write_report(report, "report-digits")
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from scaling_optuna.errors import UserError
from scaling_optuna.report.report import Report

__all__ = ["check_output_dir", "write_report"]


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
    return out


def write_report(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (created if missing).

    Raises:
        UserError: the folder cannot be created or written.

    Example::

        json_path, html_path = write_report(report, "report-digits")
    """
    out = check_output_dir(out_dir)
    json_path, html_path = out / "report.json", out / "report.html"
    try:
        json_path.write_text(report.to_json() + "\n", encoding="utf-8")
        html_path.write_text(report.to_html(), encoding="utf-8")
    except OSError as e:
        raise _cannot_write(out, e) from None
    return json_path, html_path


def _cannot_write(out: Path, error: OSError) -> UserError:
    return UserError(f"cannot write the report into {out}: {error.strerror or error}; pass another --out folder")
