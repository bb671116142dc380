"""Rendering of a :class:`~scaling_optuna.report.Report`: terminal text, Markdown, plotly figures, HTML.

The report's numbers are built by :func:`scaling_optuna.report.build_report`;
this module only turns them into words and pictures, and never fits or reads
the store. The HTML page is self-contained (plotly.js inline), so it works
offline and can be mailed around.

Example::

    from scaling_optuna.report import build_report
    from scaling_optuna.report_render import render_html, render_text

    report = build_report(exp, target=0.02)
    print(render_text(report))                # the same as report.to_text()
    Path("report.html").write_text(render_html(report), encoding="utf-8")
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    # Only for annotations: report.py imports this module, so a runtime import would be a cycle.
    from scaling_optuna.report import Backtest
    from scaling_optuna.report import Curve
    from scaling_optuna.report import Report
    from scaling_optuna.fit import ScalingLawFit

__all__ = [
    "render_figure",
    "render_html",
    "render_markdown",
    "render_text",
]

# The plots of the page, in order.
METRICS = ("test_error", "test_loss", "n_params")
# Extrapolating further than the largest measured size by this factor is what the plots show.
PLOT_REACH = 10

_BLUE, _ORANGE, _GREY, _RED = "#1f5fbf", "#e07b00", "#8a8f98", "#c0392b"


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------


def _count(x: float) -> str:
    """An example count for people: 2,910 / 1.2M / inf."""
    if x is None or not math.isfinite(x):
        return "∞" if x is not None and x > 0 else "-"
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    return f"{int(round(x)):,}"


def _v(x: float | None, metric: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if metric == "n_params":
        return _count(x)
    return f"{x:.4g}"


def _band(lo: float, hi: float, metric: str) -> str:
    if not (math.isfinite(lo) or math.isfinite(hi)):
        return ""
    return f" ({_v(lo, metric)}–{_v(hi, metric)})"


def _pct(x: float) -> str:
    return f"{x:+.0%}"


def _law(fit: ScalingLawFit, metric: str) -> str:
    sym = "ε" if metric == "test_error" else ("L" if metric == "test_loss" else "N")
    text = f"{sym}(m) = {fit.alpha:.3g}·m^{fit.beta:.3f}"
    if fit.form == "saturating":
        text += f" + {fit.gamma:.3g}"
    beta = fit.intervals.get("beta")
    if beta is not None:
        text += f"   β {fit.confidence:.0%} interval {beta[0]:.3f}…{beta[1]:.3f}"
    return text


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------


def _headline(report: Report) -> list[str]:
    """The answer in sentences: here now; 2× and 10× would be there; the target needs N."""
    curve = report.curves["test_error"]
    if curve.fit is None:
        return [curve.message]
    fit = curve.fit
    largest = int(max(fit.sizes_used))
    measured = curve.values[curve.sizes.index(largest)]
    now = fit.predict([largest])
    band = f", band {now.lower[0]:.4g}–{now.upper[0]:.4g}" if np.isfinite(now.lower[0]) else ""
    lines = [
        f"At {_count(largest)} examples the best model's test error is {measured:.4g} "
        f"(fitted curve {now.mean[0]:.4g}{band})."
    ]
    for p in curve.predictions:
        lines.append(
            f"With {p.multiple:g}× the data ({_count(p.size)} examples) it would be about "
            f"{p.mean:.4g}{_band(p.lower, p.upper, '')}."
        )
    if report.target is not None:
        lines.append(report.target.message[0].upper() + report.target.message[1:] + ".")
    return lines


def render_text(report: Report) -> str:
    """The terminal report: the table, the fitted laws, predictions and the backtest.

    Example::

        print(render_text(report))   # the same as report.to_text()
    """
    out: list[str] = []
    out.append(f"Scaling report: experiment {report.experiment!r} ({report.dataset}, {report.model}), store {report.storage}")
    out.append("")
    out.append(
        f"{'size':>8} {'best':>5} {'val loss':>9} {'test loss':>9} {'test err':>8} {'params':>8} "
        f"{'untuned err':>11} {'complete':>8} {'pruned':>6} {'failed':>6} {'running':>7}"
    )
    for row in report.rows:
        s, b = row.status, row.best
        untuned = row.baseline.test_error if row.baseline is not None else None
        out.append(
            f"{s.size:>8} {('-' if b is None else str(b.trial_number)):>5} "
            f"{_v(None if b is None else b.val_loss):>9} {_v(None if b is None else b.test_loss):>9} "
            f"{_v(None if b is None else b.test_error):>8} {_v(None if b is None else b.n_params, 'n_params'):>8} "
            f"{_v(untuned):>11} {s.complete:>8} {s.pruned:>6} {s.failed:>6} {s.running:>7}"
        )
    if report.majority_error is not None:
        out.append(f"(guessing the majority class: test error {report.majority_error:.4g})")
    out.append("")
    out.extend(_headline(report))
    for curve in report.curves.values():
        out.append("")
        out.extend(_curve_text(curve))
    if report.warnings:
        out.append("")
        out.append("Warnings:")
        out.extend(f"  - {w}" for w in report.warnings)
    if report.dashboard:
        out.append("")
        out.append(_dashboard_line(report.dashboard))
    return "\n".join(out)


def render_markdown(report: Report) -> str:
    """A short Markdown summary (the note published into optuna-dashboard).

    Example::

        note = render_markdown(report)   # the same as report.to_markdown()
    """
    lines = [f"## Scaling law of experiment `{report.experiment}`", "", f"_report of {report.generated_at}_", ""]
    lines += [f"- {line}" for line in _headline(report)]
    for curve in report.curves.values():
        text = _curve_text(curve)
        lines += ["", f"**{text[0]}**"] + [f"- {line.strip()}" for line in text[1:]]
    if report.warnings:
        lines += ["", "**Warnings**"] + [f"- {w}" for w in report.warnings]
    return "\n".join(lines)


def _dashboard_line(info: dict[str, Any]) -> str:
    if info.get("published"):
        return (
            f"Published the scaling plots to optuna-dashboard on study {info['study']!r} (the largest size); "
            f"view them with: scaling-optuna dashboard --storage {info['storage']}"
        )
    return f"Not published to optuna-dashboard: {info.get('error')}"


def _curve_text(curve: Curve) -> list[str]:
    label = curve.label.capitalize()
    if curve.fit is None:
        return [f"{label}: {curve.message}"]
    fit, metric = curve.fit, curve.metric
    lines = [f"{label}: {_law(fit, metric)}   [{fit.form} law, {len(fit.sizes_used)} sizes]"]
    if fit.sizes_excluded:
        excluded = ", ".join(str(int(s)) for s in fit.sizes_excluded)
        lines.append(f"  left out as the small-data plateau: {excluded}")
    if fit.intervals:
        lines.append(f"  intervals: {curve.intervals_from}")
    if curve.baseline_fit is not None:
        lines.append(f"  untuned baseline: {_law(curve.baseline_fit, metric)}")
        lines.append(
            f"  per-size tuning changes the exponent from β={curve.baseline_fit.beta:.3f} (untuned) "
            f"to β={fit.beta:.3f} (tuned)"
        )
    elif curve.baseline_message:
        lines.append(f"  untuned baseline: {curve.baseline_message}")
    for p in curve.predictions:
        lines.append(f"  {p.multiple:g}× the largest size ({_count(p.size)}): {_v(p.mean, metric)}{_band(p.lower, p.upper, metric)}")
    for bt in curve.backtests:
        lines.append("  " + _backtest_text(bt, metric))
    return lines


def _backtest_text(bt: Backtest, metric: str) -> str:
    head = f"backtest, fitted on sizes ≤ {bt.fitted_sizes[-1]} without the largest {bt.held_out}:"
    if bt.fit is None:
        return f"{head} {bt.message}"
    parts = []
    for p in bt.points:
        part = (
            f"at {p.size} predicted {_v(p.predicted, metric)}{_band(p.lower, p.upper, metric)}, "
            f"measured {_v(p.actual, metric)}: {_pct(p.error)}"
            + ("" if p.inside is None else f" ({'inside' if p.inside else 'outside'} the band)")
        )
        if p.naive_error is not None:
            part += f"; naive log-log line {_pct(p.naive_error)}"
        parts.append(part)
    return head + " " + "; ".join(parts)


# ---------------------------------------------------------------------------
# Plots and HTML
# ---------------------------------------------------------------------------


def render_figure(report: Report, curve: Curve):
    """The plotly figure of ``curve`` (one of ``report.curves``) against training-set size.

    Example::

        fig = render_figure(report, report.curves["test_error"])   # report.figure("test_error")
        fig.show()
    """
    import plotly.graph_objects as go

    metric, label = curve.metric, curve.label
    fig = go.Figure()
    ys: list[float] = []
    sizes_seen = [r.size for r in report.rows if r.trials]
    all_points = [p for r in report.rows for p in r.trials if (v := p.metric(metric)) is not None and v > 0]
    if all_points:
        fig.add_trace(
            go.Scatter(
                x=[p.size for p in all_points],
                y=[p.metric(metric) for p in all_points],
                mode="markers",
                name="every trial",
                marker=dict(color=_GREY, size=7, opacity=0.45),
                customdata=[[p.number, p.val_loss] for p in all_points],
                hovertemplate="m=%{x}<br>trial %{customdata[0]}<br>" + label + " %{y:.4g}<br>val loss %{customdata[1]:.4g}<extra></extra>",
            )
        )
        ys += [p.metric(metric) for p in all_points]
    fit = curve.fit
    if fit is not None:
        largest = max(fit.sizes_used)
        inner = np.geomspace(min(fit.sizes_used), largest, 50)
        outer = np.geomspace(largest, largest * PLOT_REACH, 30)
        grid = np.concatenate([inner, outer[1:]])
        pred = fit.predict(grid)
        if np.all(np.isfinite(pred.lower)) and np.all(np.isfinite(pred.upper)):
            fig.add_trace(go.Scatter(x=grid, y=pred.upper, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"))
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=pred.lower,
                    mode="lines",
                    line=dict(width=0),
                    fill="tonexty",
                    fillcolor="rgba(31,95,191,0.15)",
                    name=f"{fit.confidence:.0%} band of the fitted curve",
                    hoverinfo="skip",
                )
            )
        n_in = len(inner)
        fig.add_trace(
            go.Scatter(
                x=grid[:n_in], y=pred.mean[:n_in], mode="lines", line=dict(color=_BLUE, width=2.5),
                name=f"fit (tuned): β={fit.beta:.3f}",
                hovertemplate="m=%{x:.0f}<br>fitted %{y:.4g}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=grid[n_in - 1 :],
                y=pred.mean[n_in - 1 :],
                mode="lines", line=dict(color=_BLUE, width=2.5, dash="dash"),
                name=f"extrapolation to {PLOT_REACH}× the largest size",
                hovertemplate="m=%{x:.0f}<br>predicted %{y:.4g}<extra></extra>",
            )
        )
        ys += list(pred.mean)
        if curve.predictions:
            fig.add_trace(
                go.Scatter(
                    x=[p.size for p in curve.predictions],
                    y=[p.mean for p in curve.predictions],
                    mode="markers+text",
                    text=[f"{p.multiple:g}×: {_v(p.mean, metric)}" for p in curve.predictions],
                    textposition="top left",
                    marker=dict(color=_BLUE, symbol="diamond", size=10),
                    error_y=_error_bars([p.mean for p in curve.predictions], [p.lower for p in curve.predictions], [p.upper for p in curve.predictions]),
                    name="predictions at 2× and 10×",
                    hovertemplate="m=%{x:.0f}<br>predicted %{y:.4g}<extra></extra>",
                )
            )
    if curve.baseline_sizes:
        bfit = curve.baseline_fit
        fig.add_trace(
            go.Scatter(
                x=list(curve.baseline_sizes), y=list(curve.baseline_values), mode="markers",
                marker=dict(color=_ORANGE, symbol="square", size=8),
                name="untuned default model",
                hovertemplate="m=%{x}<br>untuned " + label + " %{y:.4g}<extra></extra>",
            )
        )
        ys += list(curve.baseline_values)
        if bfit is not None:
            bgrid = np.geomspace(min(bfit.sizes_used), max(bfit.sizes_used) * PLOT_REACH, 80)
            bmean = bfit.predict(bgrid).mean
            fig.add_trace(
                go.Scatter(
                    x=bgrid, y=bmean, mode="lines", line=dict(color=_ORANGE, width=1.5, dash="dot"),
                    name=f"fit (untuned): β={bfit.beta:.3f}",
                    hovertemplate="m=%{x:.0f}<br>untuned fit %{y:.4g}<extra></extra>",
                )
            )
    if curve.sizes:
        excluded = set(fit.sizes_excluded) if fit is not None else set()
        used = [(s, v) for s, v in zip(curve.sizes, curve.values) if s not in excluded]
        plateau = [(s, v) for s, v in zip(curve.sizes, curve.values) if s in excluded]
        best_by_size = {r.size: r.best for r in report.rows if r.best is not None}
        for points, name, symbol in ((used, "best trial per size (by val loss)", "circle"), (plateau, "best trial, small-data plateau (not fitted)", "circle-open")):
            if not points:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[s for s, _ in points], y=[v for _, v in points], mode="markers",
                    marker=dict(color=_BLUE, symbol=symbol, size=11, line=dict(width=2, color=_BLUE)),
                    name=name,
                    customdata=[[best_by_size[s].trial_number] for s, _ in points],
                    hovertemplate="m=%{x}<br>best trial %{customdata[0]}<br>" + label + " %{y:.4g}<extra></extra>",
                )
            )
        ys += list(curve.values)
    x_hi = max(sizes_seen or [1]) * (PLOT_REACH if fit is not None else 1)
    x_lo = min(sizes_seen or [1])
    if metric == "test_error" and report.majority_error is not None:
        fig.add_trace(
            go.Scatter(
                x=[x_lo, x_hi], y=[report.majority_error] * 2, mode="lines",
                line=dict(color=_GREY, dash="dot", width=1),
                name=f"guessing the majority class ({report.majority_error:.3g})",
                hoverinfo="skip",
            )
        )
        ys.append(report.majority_error)
    if metric == "test_error" and report.target is not None:
        t = report.target
        fig.add_trace(
            go.Scatter(
                x=[x_lo, x_hi], y=[t.target] * 2, mode="lines", line=dict(color=_RED, dash="dash", width=1),
                name=f"target {t.target:g}", hoverinfo="skip",
            )
        )
        ys.append(t.target)
        if t.tuned is not None and t.tuned.reachable:
            fig.add_trace(
                go.Scatter(
                    x=[t.tuned.size], y=[t.target], mode="markers", marker=dict(color=_RED, symbol="x", size=11),
                    name=f"target reached at ≈{_count(t.tuned.size)}",
                    hovertemplate="m=%{x:.0f}<extra></extra>",
                )
            )
    title = f"{label.capitalize()} against training-set size"
    if fit is not None:
        title += f"<br><sup>{html.escape(_law(fit, metric))}</sup>"
    elif curve.message:
        title += f"<br><sup>{html.escape(curve.message)}</sup>"
    fig.update_layout(
        title=dict(text=title, x=0.01),
        template="plotly_white",
        height=520,
        margin=dict(l=70, r=20, t=80, b=60),
        legend=dict(x=1.02, y=1, xanchor="left", font=dict(size=11), traceorder="normal"),
        xaxis=dict(type="log", title="training examples m (log scale)", dtick="D2"),
        yaxis=dict(type="log", title=f"{label} (log scale)"),
    )
    positive = [y for y in ys if y is not None and math.isfinite(y) and y > 0]
    if positive:
        # Keep the data in view: a wide band at 10× may reach far below what was measured.
        lo, hi = math.log10(min(positive)), math.log10(max(positive))
        pad = max(0.08, 0.08 * (hi - lo))
        fig.update_yaxes(range=[lo - pad, hi + pad])
        if hi - lo > 1.3:
            # Over several decades plotly labels every digit; 1-2-5 reads better.
            # Within about one decade its default labels (6k, 8k, 10k...) are the clearer ones.
            fig.update_yaxes(dtick="D2")
    return fig


def _error_bars(mean: list[float], lower: list[float], upper: list[float]) -> dict[str, Any]:
    if not all(math.isfinite(v) for v in lower + upper):
        return dict(visible=False)
    return dict(
        type="data",
        symmetric=False,
        array=[u - m for u, m in zip(upper, mean)],
        arrayminus=[m - lo for m, lo in zip(mean, lower)],
        color=_BLUE,
        thickness=1.5,
    )


_CSS = """
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


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page: plotly.js is embedded, nothing is fetched.

    Example::

        Path("report.html").write_text(render_html(report), encoding="utf-8")
    """
    import plotly.io as pio

    figures = []
    for i, metric in enumerate(METRICS):
        curve = report.curves[metric]
        div = pio.to_html(
            render_figure(report, curve),
            include_plotlyjs=(i == 0),  # once, inline: the page must work offline
            full_html=False,
            div_id=f"plot-{metric.replace('_', '-')}",
            config={"displaylogo": False, "responsive": True},
        )
        figures.append((curve, div))
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Scaling report: {e(report.experiment)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>How {e(report.experiment)} scales with data</h1>",
        f'<div class="meta">dataset {e(str(report.dataset))} · model {e(str(report.model))} · store {e(report.storage)} · '
        f"generated {e(report.generated_at)} · best trial of each size chosen by validation loss; test set never used to select</div>",
        '<div class="answer">' + "".join(f"<p>{e(line)}</p>" for line in _headline(report)) + "</div>",
    ]
    if report.warnings:
        parts.append('<h2>Warnings</h2><div class="warn"><ul>' + "".join(f"<li>{e(w)}</li>" for w in report.warnings) + "</ul></div>")
    for curve, div in figures:
        parts.append(f"<h2>{e(curve.label.capitalize())}</h2>")
        parts.append('<div class="card">' + div + "".join(f'<div class="law">{e(line)}</div>' for line in _curve_text(curve)[1:]) + "</div>")
    parts.append("<h2>Best trial per size</h2>")
    parts.append(_size_table(report))
    backtest = _backtest_table(report.curves["test_error"])
    if backtest:
        parts.append("<h2>Backtest: how far the extrapolation can be trusted</h2>")
        parts.append(backtest)
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _size_table(report: Report) -> str:
    e = html.escape
    head = ["size", "study", "best trial", "val loss", "test loss", "test error", "params", "untuned test error", "complete", "pruned", "failed", "running"]
    rows = []
    for row in report.rows:
        s, b = row.status, row.best
        cells = [
            str(s.size),
            s.study_name,
            "-" if b is None else str(b.trial_number),
            _v(None if b is None else b.val_loss),
            _v(None if b is None else b.test_loss),
            _v(None if b is None else b.test_error),
            _v(None if b is None else b.n_params, "n_params"),
            _v(None if row.baseline is None else row.baseline.test_error),
            str(s.complete),
            str(s.pruned),
            str(s.failed),
            str(s.running),
        ]
        rows.append("<tr>" + "".join(f'<td{" class=l" if i == 1 else ""}>{e(c)}</td>' for i, c in enumerate(cells)) + "</tr>")
    header = "<tr>" + "".join(f'<th{" class=l" if i == 1 else ""}>{e(h)}</th>' for i, h in enumerate(head)) + "</tr>"
    return f"<table>{header}{''.join(rows)}</table>"


def _backtest_table(curve: Curve) -> str:
    e = html.escape
    rows = []
    for bt in curve.backtests:
        for p in bt.points:
            cls = {True: "good", False: "bad", None: "l"}[p.inside]
            rows.append(
                "<tr>"
                f"<td>{bt.held_out}</td><td class=l>{e(', '.join(map(str, bt.fitted_sizes)))}</td><td>{p.size}</td>"
                f"<td>{_v(p.actual)}</td><td>{_v(p.predicted)}{e(_band(p.lower, p.upper, ''))}</td>"
                f"<td class={cls}>{_pct(p.error)}</td><td>{'-' if p.naive is None else _v(p.naive)}</td>"
                f"<td>{'-' if p.naive_error is None else _pct(p.naive_error)}</td>"
                "</tr>"
            )
    if not rows:
        return ""
    header = (
        "<tr><th>held out</th><th class=l>fitted on sizes</th><th>predicted size</th><th>measured test error</th>"
        "<th>law's prediction (band)</th><th>error</th><th>naive log-log line</th><th>naive error</th></tr>"
    )
    return f"<table>{header}{''.join(rows)}</table>"
