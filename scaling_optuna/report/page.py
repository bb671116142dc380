"""The report as one self-contained HTML page: plotly.js is embedded, nothing is fetched.

The page works offline and can be mailed around: the answer, one plot per
metric with its law, the best trial per size and the backtest.

Example::

    from pathlib import Path
    from scaling_optuna.report.page import render_html

    Path("report.html").write_text(render_html(report), encoding="utf-8")   # report.to_html()
"""

from __future__ import annotations

import html

import plotly.io as pio

from scaling_optuna.report._format import band
from scaling_optuna.report._format import percent
from scaling_optuna.report._format import value
from scaling_optuna.report.figures import render_figure
from scaling_optuna.report.records import Curve
from scaling_optuna.report.records import ReportData
from scaling_optuna.report.records import SizeRow
from scaling_optuna.report.records import finite
from scaling_optuna.report.text import curve_lines
from scaling_optuna.report.text import headline

__all__ = ["PAGE_CSS", "render_html"]

# The plots of the page, in order.
METRICS = ("test_error", "test_loss", "n_params")

PAGE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 28px 0 8px; }
.meta { color: #5d6470; font-size: 0.9em; margin-bottom: 18px; }
.answer { background: #fff; border-left: 5px solid #1f5fbf; padding: 12px 18px; border-radius: 4px; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
.answer p { margin: 6px 0; font-size: 1.05em; }
.card { background: #fff; border-radius: 6px; box-shadow: 0 1px 2px rgba(0,0,0,.08); padding: 10px 12px; margin: 14px 0; }
.law { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 0.92em; color: #333; margin: 4px 6px; }
table { border-collapse: collapse; background: #fff; font-size: 0.9em; width: 100%; }
th, td { padding: 5px 9px; text-align: right; border-bottom: 1px solid #e3e6ea; }
th { background: #eef1f5; font-weight: 600; }
td.l, th.l { text-align: left; }
.warn { background: #fff6e0; border-left: 5px solid #e0a100; padding: 8px 16px; border-radius: 4px; }
.good { color: #1e7b34; } .bad { color: #b3261e; }
"""

_e = html.escape


def render_html(report: ReportData) -> str:
    """The whole page: the answer, the warnings, a card per metric, the size table and the backtest."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Scaling report: {_e(report.experiment)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{PAGE_CSS}</style></head><body><main>",
        f"<h1>How {_e(report.experiment)} scales with data</h1>",
        f'<div class="meta">dataset {_e(str(report.dataset))} · model {_e(str(report.model))} · store {_e(report.storage)} · '
        f"generated {_e(report.generated_at)} · best trial of each size chosen by validation loss; test set never used to select</div>",
        '<div class="answer">' + "".join(f"<p>{_e(line)}</p>" for line in headline(report)) + "</div>",
    ]
    if report.warnings:
        parts.append('<h2>Warnings</h2><div class="warn"><ul>' + "".join(f"<li>{_e(w)}</li>" for w in report.warnings) + "</ul></div>")
    for i, metric in enumerate(METRICS):
        parts += _card(report, report.curves[metric], include_plotlyjs=(i == 0))
    parts += ["<h2>Best trial per size</h2>", _size_table(report.rows)]
    backtest = _backtest_table(report.curves["test_error"])
    if backtest:
        parts += ["<h2>Backtest: how far the extrapolation can be trusted</h2>", backtest]
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _card(report: ReportData, curve: Curve, *, include_plotlyjs: bool) -> list[str]:
    """A metric's heading, then its plot with the lines of its law below."""
    div = pio.to_html(
        render_figure(report, curve),
        include_plotlyjs=include_plotlyjs,  # once, inline: the page must work offline
        full_html=False,
        div_id=f"plot-{curve.metric.replace('_', '-')}",
        config={"displaylogo": False, "responsive": True},
    )
    laws = "".join(f'<div class="law">{_e(line)}</div>' for line in curve_lines(curve)[1:])
    return [f"<h2>{_e(curve.label.capitalize())}</h2>", '<div class="card">' + div + laws + "</div>"]


_SIZE_COLUMNS = (
    "size", "study", "best trial", "val loss", "test loss", "test error", "params",
    "untuned test error", "complete", "pruned", "failed", "running",
)


def _size_table(rows: list[SizeRow]) -> str:
    # The study name (column 1) is text, so it is left-aligned; the rest are numbers.
    header = "<tr>" + "".join(f'<th{" class=l" if i == 1 else ""}>{_e(h)}</th>' for i, h in enumerate(_SIZE_COLUMNS)) + "</tr>"
    body = []
    for row in rows:
        cells = _size_cells(row)
        body.append("<tr>" + "".join(f'<td{" class=l" if i == 1 else ""}>{_e(c)}</td>' for i, c in enumerate(cells)) + "</tr>")
    return f"<table>{header}{''.join(body)}</table>"


def _size_cells(row: SizeRow) -> list[str]:
    s, b = row.status, row.best
    return [
        str(s.size),
        s.study_name,
        "-" if b is None else str(b.trial_number),
        value(None if b is None else b.val_loss),
        value(None if b is None else b.test_loss),
        value(None if b is None else b.test_error),
        value(None if b is None else b.n_params, "n_params"),
        value(None if row.baseline is None else finite(row.baseline.test_error)),
        str(s.complete),
        str(s.pruned),
        str(s.failed),
        str(s.running),
    ]


def _backtest_table(curve: Curve) -> str:
    rows = []
    for bt in curve.backtests:
        for p in bt.points:
            cls = {True: "good", False: "bad", None: "l"}[p.inside]
            rows.append(
                "<tr>"
                f"<td>{bt.held_out}</td><td class=l>{_e(', '.join(map(str, bt.fitted_sizes)))}</td><td>{p.size}</td>"
                f"<td>{value(p.actual)}</td><td>{value(p.predicted)}{_e(band(p.lower, p.upper, ''))}</td>"
                f"<td class={cls}>{percent(p.error)}</td>"
                f"<td>{'-' if p.least_squares is None else value(p.least_squares)}</td>"
                f"<td>{'-' if p.least_squares_error is None else percent(p.least_squares_error)}</td>"
                f"<td>{'-' if p.naive is None else value(p.naive)}</td>"
                f"<td>{'-' if p.naive_error is None else percent(p.naive_error)}</td>"
                "</tr>"
            )
    if not rows:
        return ""
    header = (
        "<tr><th>held out</th><th class=l>fitted on sizes</th><th>predicted size</th><th>measured test error</th>"
        "<th>prediction (band for a measurement)</th><th>error</th><th>least-squares α·m^β+γ</th><th>its error</th>"
        "<th>naive log-log line</th><th>its error</th></tr>"
    )
    note = f'<p class="meta">The bands here are {_e(curve.backtest_band)}.</p>' if curve.backtest_band else ""
    return f"{note}<table>{header}{''.join(rows)}</table>"
