"""The report in words: the terminal text, the Markdown note, and the best-per-size table.

Example::

    from scaling_optuna.report.rows import size_rows
    from scaling_optuna.report.text import best_table, render_text

    print(render_text(report))                                   # report.to_text()
    print(best_table(size_rows(exp), hyperparameters=True))      # what `scaling-optuna best` prints
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from scaling_optuna.report._format import band
from scaling_optuna.report._format import count
from scaling_optuna.report._format import percent
from scaling_optuna.report._format import value
from scaling_optuna.report.records import Backtest
from scaling_optuna.report.records import PREDICTION_BAND
from scaling_optuna.report.records import Curve
from scaling_optuna.report.records import ReportData
from scaling_optuna.report.records import SizeRow
from scaling_optuna.report.records import finite

__all__ = ["best_table", "curve_lines", "fit_method_lines", "headline", "render_markdown", "render_text"]


def render_text(report: ReportData) -> str:
    """The terminal report: the table, the answer, the fitted laws with predictions and backtests."""
    out = [
        f"Scaling report: experiment {report.experiment!r} ({report.dataset}, {report.model}), store {report.storage}",
        "",
        best_table(report.rows),
    ]
    if report.majority_error is not None:
        out.append(f"(guessing the majority class: test error {report.majority_error:.4g})")
    out.append("")
    out.extend(headline(report))
    for curve in report.curves.values():
        out.append("")
        out.extend(curve_lines(curve))
    if report.warnings:
        out += ["", "Warnings:"] + [f"  - {w}" for w in report.warnings]
    if report.dashboard:
        out += ["", _dashboard_line(report.dashboard)]
    return "\n".join(out)


def render_markdown(report: ReportData) -> str:
    """A short Markdown summary: the note published into optuna-dashboard."""
    lines = [f"## Scaling law of experiment `{report.experiment}`", "", f"_report of {report.generated_at}_", ""]
    lines += [f"- {line}" for line in headline(report)]
    for curve in report.curves.values():
        text = curve_lines(curve)
        lines += ["", f"**{text[0]}**"] + [f"- {line.strip()}" for line in text[1:]]
    if report.warnings:
        lines += ["", "**Warnings**"] + [f"- {w}" for w in report.warnings]
    return "\n".join(lines)


def best_table(rows: Sequence[SizeRow], *, hyperparameters: bool = False) -> str:
    """The best trial of every size (by validation loss) with its study's trial counts.

    ``hyperparameters=True`` adds the best trial's parameters at the end of each line.
    """
    header = (
        f"{'size':>8} {'best':>5} {'val loss':>9} {'test loss':>9} {'test err':>8} {'params':>8} "
        f"{'untuned err':>11} {'complete':>8} {'pruned':>6} {'failed':>6} {'running':>7}"
    )
    lines = [header + ("  hyperparameters" if hyperparameters else "")]
    for row in rows:
        line = _best_line(row)
        if hyperparameters and row.best is not None:
            line += "  " + ", ".join(f"{k}={_parameter(v)}" for k, v in row.best.params.items())
        lines.append(line)
    return "\n".join(lines)


def _best_line(row: SizeRow) -> str:
    s, b = row.status, row.best
    untuned = finite(row.baseline.test_error) if row.baseline is not None else None
    return (
        f"{s.size:>8} {('-' if b is None else str(b.trial_number)):>5} "
        f"{value(None if b is None else b.val_loss):>9} {value(None if b is None else b.test_loss):>9} "
        f"{value(None if b is None else b.test_error):>8} {value(None if b is None else b.n_params, 'n_params'):>8} "
        f"{value(untuned):>11} {s.complete:>8} {s.pruned:>6} {s.failed:>6} {s.running:>7}"
    )


def _parameter(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def headline(report: ReportData) -> list[str]:
    """The answer in sentences: here now; 2× and 10× would be there; the target needs N."""
    curve = report.curves["test_error"]
    if curve.fit is None:
        return [curve.message]
    fit = curve.fit
    largest = int(max(fit.sizes_used))
    measured = curve.values[curve.sizes.index(largest)]
    now = fit.predict([largest])
    now_band = f", band {now.lower[0]:.4g}–{now.upper[0]:.4g}" if math.isfinite(now.lower[0]) else ""
    lines = [
        f"At {count(largest)} examples the best model's test error is {measured:.4g} "
        f"(fitted curve {now.mean[0]:.4g}{now_band})."
    ]
    for p in curve.predictions:
        lines.append(
            f"With {p.multiple:g}× the data ({count(p.size)} examples) it would be about "
            f"{p.mean:.4g}{band(p.lower, p.upper, '')}" + (f": {p.why}." if p.why else ".")
        )
    if report.target is not None:
        lines.append(report.target.message[0].upper() + report.target.message[1:] + ".")
    return lines


def curve_lines(curve: Curve) -> list[str]:
    """A curve's law (first line), then its plateau, intervals, baseline, predictions and backtests."""
    label = curve.label.capitalize()
    if curve.fit is None:
        return [f"{label}: {curve.message}"]
    fit, metric = curve.fit, curve.metric
    lines = [f"{label}: {curve.law}   [{fit.form} law, {len(fit.sizes_used)} sizes]"]
    lines += [f"  {line}" for line in fit_method_lines(fit)]
    if fit.sizes_excluded:
        lines.append(f"  left out as the small-data plateau: {', '.join(str(int(s)) for s in fit.sizes_excluded)}")
    if fit.intervals:
        lines.append(f"  intervals: {curve.intervals_from}")
    lines += _baseline_lines(curve)
    for p in curve.predictions:
        lines.append(f"  {p.multiple:g}× the largest size ({count(p.size)}): {value(p.mean, metric)}{band(p.lower, p.upper, metric)}")
    if metric != "n_params" and any(math.isfinite(p.lower) for p in curve.predictions):
        lines.append(f"  the 2×/10× bands are {PREDICTION_BAND}")
    if curve.backtest_band and any(bt.points for bt in curve.backtests):
        lines.append(f"  the backtest's bands are {curve.backtest_band}")
    lines += ["  " + _backtest_line(bt, metric) for bt in curve.backtests]
    return lines


def fit_method_lines(fit: Any) -> list[str]:
    """How the fit predicts and how its band was calibrated, and whether it fell back to the last point."""
    lines = []
    if fit.fallback:
        lines.append(f"no curve family fitted: {fit.fallback}")
    if fit.method:
        # a law shows its own floor (γ); an ensemble's is said here
        flattens = f"; the predicted curve flattens at {fit.floor():.3g}" if not fit.law_predicts and not fit.fallback else ""
        lines.append(f"predictions: {fit.method}{flattens}")
    if fit.band_method:
        lines.append(f"band: {fit.band_method}")
    return lines


def _baseline_lines(curve: Curve) -> list[str]:
    if curve.baseline_fit is not None:
        symbol = curve.law.split("(", 1)[0]
        return [
            f"  untuned baseline: {curve.baseline_fit.law.text(symbol)}",
            f"  per-size tuning changes the exponent from β={curve.baseline_fit.beta:.3f} (untuned) "
            f"to β={curve.fit.beta:.3f} (tuned)",
        ]
    if curve.baseline_message:
        return [f"  untuned baseline: {curve.baseline_message}"]
    return []


def _backtest_line(bt: Backtest, metric: str) -> str:
    head = f"backtest, fitted on sizes ≤ {bt.fitted_sizes[-1]} without the largest {bt.held_out}:"
    if bt.fit is None:
        return f"{head} {bt.message}"
    parts = []
    for p in bt.points:
        part = (
            f"at {p.size} predicted {value(p.predicted, metric)}{band(p.lower, p.upper, metric)}, "
            f"measured {value(p.actual, metric)}: {percent(p.error)}"
            + ("" if p.inside is None else f" ({'inside' if p.inside else 'outside'} the band for a measurement)")
        )
        if p.least_squares_error is not None:
            part += f"; least-squares α·m^β+γ {percent(p.least_squares_error)}"
        if p.naive_error is not None:
            part += f"; naive log-log line {percent(p.naive_error)}"
        parts.append(part)
    return head + " " + "; ".join(parts)


def _dashboard_line(info: dict[str, Any]) -> str:
    if info.get("published"):
        return (
            f"Published the scaling plots to optuna-dashboard on study {info['study']!r} (the largest size); "
            f"view them with: scaling-optuna dashboard --storage {info['storage']}"
        )
    return f"Not published to optuna-dashboard: {info.get('error')}"
