"""Writing the comparison: ``compare.json`` and ``compare.html`` in one folder, through the report's writer.

Example::

    from scaling_optuna.compare import write_comparison

    json_path, html_path = write_comparison(comparison, "compare-digits")
"""

from __future__ import annotations

from pathlib import Path

from scaling_optuna.compare.build import Comparison
from scaling_optuna.report import write_files

__all__ = ["COMPARE_FILES", "comparison_files", "write_comparison"]

COMPARE_FILES = ("compare.json", "compare.html")


def comparison_files(comparison: Comparison) -> dict[str, str]:
    """The comparison's files and what they hold."""
    return {"compare.json": comparison.to_json() + "\n", "compare.html": comparison.to_html()}


def write_comparison(comparison: Comparison, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``compare.json`` and ``compare.html`` into ``out_dir`` (created if missing), each whole.

    Raises:
        UserError: the folder cannot be created or written.
    """
    json_path, html_path = write_files(out_dir, comparison_files(comparison))
    return json_path, html_path
