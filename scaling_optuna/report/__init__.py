"""The report of an experiment: where the learning curve is, and what more data buys.

For every size the best trial by validation loss is taken (the test set is
never used to select), and the power law ε(m) ≈ α·m^β + γ is fitted to its
test error and test loss against the training-set size, with bootstrap
intervals. The report answers "at this size we are here; with 2× and 10× the
data we would be there; to reach a target error we need about N examples
(between N1 and N2)", and shows how far that can be trusted: a backtest refits
without the largest size(s) and predicts them. The untuned default model
(every study's first trial) gets its own curve, so the effect of per-size
tuning on the exponent is visible, and the best model's parameter count is
fitted against the data size too (the paper's model-size exponent).

The report reads the store only and works while workers are still running:
sizes without a finished trial are skipped with a warning.

Modules, each depending only on those above it:

========================  ==========================================================
``records``               the numbers as plain records, and their JSON form
``rows``                  reading the store: one row per size
``budget``                warnings when the trial budget was spent where it could not help
``curves``                the fits, predictions, backtests and the target answer
``text``                  the terminal text, the Markdown note, the best-per-size table
``reruns``                the re-measured configurations of every size, mean ± sd over their runs
``figures``               the plotly figures
``page``                  the self-contained HTML page
``report``                :class:`Report` and :func:`build_report`
``output``                :func:`write_report`, :func:`write_files`, :func:`stage_files` (every file whole, via a rename)
``summary``               a curve given as numbers (``scaling-optuna fit``)
========================  ==========================================================

Example::

    import scaling_optuna

    report = scaling_optuna.build_report("studies/digits.toml", target=0.02)
    print(report.to_text())
    scaling_optuna.write_report(report, "report-digits")   # report.json and report.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaling_optuna._lazy import lazy_names

if TYPE_CHECKING:
    from scaling_optuna.report._format import band
    from scaling_optuna.report._format import count
    from scaling_optuna.report._format import edges
    from scaling_optuna.report._format import value
    from scaling_optuna.report.budget import budget_warnings
    from scaling_optuna.report.curves import validate_target
    from scaling_optuna.report.output import check_output_dir
    from scaling_optuna.report.output import report_files
    from scaling_optuna.report.output import stage_files
    from scaling_optuna.report.output import stage_report
    from scaling_optuna.report.output import write_files
    from scaling_optuna.report.output import write_report
    from scaling_optuna.report.records import Backtest
    from scaling_optuna.report.records import BacktestPoint
    from scaling_optuna.report.records import Curve
    from scaling_optuna.report.records import Extrapolation
    from scaling_optuna.report.records import ReportData
    from scaling_optuna.report.records import SizeRow
    from scaling_optuna.report.records import TargetAnswer
    from scaling_optuna.report.report import Report
    from scaling_optuna.report.report import build_report
    from scaling_optuna.report.summary import curve_summary

# Imported on first use: `scaling-optuna best` reads rows and prints a table, and
# should not wait for SciPy (the fits) or plotly (the figures) to load.
_LAZY = {
    "Backtest": "records",
    "BacktestPoint": "records",
    "Curve": "records",
    "Extrapolation": "records",
    "Report": "report",
    "ReportData": "records",
    "SizeRow": "records",
    "TargetAnswer": "records",
    # numbers for people, as the report writes them (comparisons write theirs the same way)
    "band": "_format",
    "count": "_format",
    "edges": "_format",
    "value": "_format",
    "budget_warnings": "budget",
    "build_report": "report",
    "check_output_dir": "output",
    "curve_summary": "summary",
    "report_files": "output",
    "stage_files": "output",
    "stage_report": "output",
    "validate_target": "curves",
    "write_files": "output",
    "write_report": "output",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names("scaling_optuna.report", _LAZY, globals())
