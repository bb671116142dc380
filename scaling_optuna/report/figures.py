"""The report's plotly figures: one metric against training-set size, log-log.

Each figure shows every trial, the best trial per size, the fitted curve with
its band extrapolated to :data:`PLOT_REACH` × the largest size, the untuned
default model's points and curve, and for the test error the majority-class
error and the target.

Example::

    from scaling_optuna.report.figures import render_figure

    fig = render_figure(report, report.curves["test_error"])   # report.figure("test_error")
    fig.write_html("test_error.html")   # or fig.show()
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable

import numpy as np
import plotly.graph_objects as go

from scaling_optuna.report._format import count
from scaling_optuna.report._format import value
from scaling_optuna.report.records import Curve
from scaling_optuna.report.records import ReportData
from scaling_optuna.report.records import usable

__all__ = ["PLOT_REACH", "render_figure"]

# Extrapolating further than the largest measured size by this factor is what the plots show.
PLOT_REACH = 10

_BLUE, _ORANGE, _GREY, _RED = "#1f5fbf", "#e07b00", "#8a8f98", "#c0392b"


class _Plot:
    """A figure and the y values drawn on it, which decide the y range."""

    def __init__(self) -> None:
        self.figure = go.Figure()
        self.ys: list[float] = []

    def add(self, trace: go.Scatter, ys: Iterable[float] = ()) -> None:
        self.figure.add_trace(trace)
        self.ys.extend(ys)


def render_figure(report: ReportData, curve: Curve) -> go.Figure:
    """The plotly figure of ``curve`` (one of ``report.curves``) against training-set size."""
    plot = _Plot()
    _add_trials(plot, report, curve)
    if curve.fit is not None:
        _add_fit(plot, curve)
    if curve.baseline_sizes:
        _add_baseline(plot, curve)
    if curve.sizes:
        _add_best(plot, report, curve)
    if curve.metric == "test_error":
        _add_references(plot, report, curve)
    _lay_out(plot, curve)
    return plot.figure


def _add_trials(plot: _Plot, report: ReportData, curve: Curve) -> None:
    trials = [t for r in report.rows for t in r.trials if usable(t.metric(curve.metric)) is not None]
    if not trials:
        return
    ys = [t.metric(curve.metric) for t in trials]
    plot.add(
        go.Scatter(
            x=[t.size for t in trials],
            y=ys,
            mode="markers",
            name="every trial",
            marker=dict(color=_GREY, size=7, opacity=0.45),
            customdata=[[t.trial_number, t.val_loss] for t in trials],
            hovertemplate="m=%{x}<br>trial %{customdata[0]}<br>" + curve.label + " %{y:.4g}<br>val loss %{customdata[1]:.4g}<extra></extra>",
        ),
        ys,
    )


def _add_fit(plot: _Plot, curve: Curve) -> None:
    """The fitted curve over the measured sizes, its dashed extrapolation, the band and the 2×/10× predictions."""
    fit = curve.fit
    largest = max(fit.sizes_used)
    inner = np.geomspace(min(fit.sizes_used), largest, 50)
    outer = np.geomspace(largest, largest * PLOT_REACH, 30)
    grid = np.concatenate([inner, outer[1:]])
    pred = fit.predict(grid)
    if np.all(np.isfinite(pred.lower)) and np.all(np.isfinite(pred.upper)):
        plot.add(go.Scatter(x=grid, y=pred.upper, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"))
        plot.add(
            go.Scatter(
                x=grid, y=pred.lower, mode="lines", line=dict(width=0), fill="tonexty", fillcolor="rgba(31,95,191,0.15)",
                name=f"{fit.confidence:.0%} band of the fitted curve", hoverinfo="skip",
            )
        )
    n_in = len(inner)
    plot.add(
        go.Scatter(
            x=grid[:n_in], y=pred.mean[:n_in], mode="lines", line=dict(color=_BLUE, width=2.5),
            name=f"fit (tuned): β={fit.beta:.3f}",
            hovertemplate="m=%{x:.0f}<br>fitted %{y:.4g}<extra></extra>",
        )
    )
    plot.add(
        go.Scatter(
            x=grid[n_in - 1 :], y=pred.mean[n_in - 1 :], mode="lines", line=dict(color=_BLUE, width=2.5, dash="dash"),
            name=f"extrapolation to {PLOT_REACH}× the largest size",
            hovertemplate="m=%{x:.0f}<br>predicted %{y:.4g}<extra></extra>",
        ),
        pred.mean,
    )
    if curve.predictions:
        _add_predictions(plot, curve)


def _add_predictions(plot: _Plot, curve: Curve) -> None:
    p = curve.predictions
    plot.add(
        go.Scatter(
            x=[e.size for e in p], y=[e.mean for e in p], mode="markers+text",
            text=[f"{e.multiple:g}×: {value(e.mean, curve.metric)}" for e in p], textposition="top left",
            marker=dict(color=_BLUE, symbol="diamond", size=10),
            error_y=_error_bars([e.mean for e in p], [e.lower for e in p], [e.upper for e in p]),
            name="predictions at 2× and 10×",
            hovertemplate="m=%{x:.0f}<br>predicted %{y:.4g}<extra></extra>",
        )
    )


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


def _add_baseline(plot: _Plot, curve: Curve) -> None:
    """The untuned default model's points, and its dotted curve when it has one."""
    plot.add(
        go.Scatter(
            x=list(curve.baseline_sizes), y=list(curve.baseline_values), mode="markers",
            marker=dict(color=_ORANGE, symbol="square", size=8),
            name="untuned default model",
            hovertemplate="m=%{x}<br>untuned " + curve.label + " %{y:.4g}<extra></extra>",
        ),
        curve.baseline_values,
    )
    fit = curve.baseline_fit
    if fit is None:
        return
    grid = np.geomspace(min(fit.sizes_used), max(fit.sizes_used) * PLOT_REACH, 80)
    plot.add(
        go.Scatter(
            x=grid, y=fit.predict(grid).mean, mode="lines", line=dict(color=_ORANGE, width=1.5, dash="dot"),
            name=f"fit (untuned): β={fit.beta:.3f}",
            hovertemplate="m=%{x:.0f}<br>untuned fit %{y:.4g}<extra></extra>",
        )
    )


def _add_best(plot: _Plot, report: ReportData, curve: Curve) -> None:
    """The best trial per size: filled where fitted, open where left out as the small-data plateau."""
    excluded = set(curve.fit.sizes_excluded) if curve.fit is not None else set()
    best_trial = {r.size: r.best.trial_number for r in report.rows if r.best is not None}
    points = list(zip(curve.sizes, curve.values))
    groups = (
        ([p for p in points if p[0] not in excluded], "best trial per size (by val loss)", "circle"),
        ([p for p in points if p[0] in excluded], "best trial, small-data plateau (not fitted)", "circle-open"),
    )
    for group, name, symbol in groups:
        if not group:
            continue
        plot.add(
            go.Scatter(
                x=[s for s, _ in group], y=[v for _, v in group], mode="markers",
                marker=dict(color=_BLUE, symbol=symbol, size=11, line=dict(width=2, color=_BLUE)),
                name=name,
                customdata=[[best_trial[s]] for s, _ in group],
                hovertemplate="m=%{x}<br>best trial %{customdata[0]}<br>" + curve.label + " %{y:.4g}<extra></extra>",
            )
        )
    plot.ys.extend(curve.values)


def _add_references(plot: _Plot, report: ReportData, curve: Curve) -> None:
    """Horizontal lines across the plotted sizes: the majority-class error and the target."""
    sizes_seen = [r.size for r in report.rows if r.trials] or [1]
    x = [min(sizes_seen), max(sizes_seen) * (PLOT_REACH if curve.fit is not None else 1)]
    if report.majority_error is not None:
        plot.add(
            go.Scatter(
                x=x, y=[report.majority_error] * 2, mode="lines", line=dict(color=_GREY, dash="dot", width=1),
                name=f"guessing the majority class ({report.majority_error:.3g})", hoverinfo="skip",
            ),
            [report.majority_error],
        )
    target = report.target
    if target is None:
        return
    plot.add(
        go.Scatter(
            x=x, y=[target.target] * 2, mode="lines", line=dict(color=_RED, dash="dash", width=1),
            name=f"target {target.target:g}", hoverinfo="skip",
        ),
        [target.target],
    )
    if target.tuned is not None and target.tuned.reachable:
        plot.add(
            go.Scatter(
                x=[target.tuned.size], y=[target.target], mode="markers", marker=dict(color=_RED, symbol="x", size=11),
                name=f"target reached at ≈{count(target.tuned.size)}",
                hovertemplate="m=%{x:.0f}<extra></extra>",
            )
        )


def _lay_out(plot: _Plot, curve: Curve) -> None:
    title = f"{curve.label.capitalize()} against training-set size"
    if curve.fit is not None:
        how = curve.fit.method.split(" (", 1)[0] if curve.fit.method else ""
        title += f"<br><sup>{html.escape(curve.law)}" + (f"<br>predicted by {html.escape(how)}" if how else "") + "</sup>"
    elif curve.message:
        title += f"<br><sup>{html.escape(curve.message)}</sup>"
    plot.figure.update_layout(
        title=dict(text=title, x=0.01),
        template="plotly_white",
        height=520,
        margin=dict(l=70, r=20, t=80, b=60),
        legend=dict(x=1.02, y=1, xanchor="left", font=dict(size=11), traceorder="normal"),
        xaxis=dict(type="log", title="training examples m (log scale)", dtick="D2"),
        yaxis=dict(type="log", title=f"{curve.label} (log scale)"),
    )
    positive = [y for y in plot.ys if y is not None and math.isfinite(y) and y > 0]
    if not positive:
        return
    # Keep the data in view: a wide band at 10× may reach far below what was measured.
    lo, hi = math.log10(min(positive)), math.log10(max(positive))
    pad = max(0.08, 0.08 * (hi - lo))
    plot.figure.update_yaxes(range=[lo - pad, hi + pad])
    if hi - lo > 1.3:
        # Over several decades plotly labels every digit; 1-2-5 reads better.
        # Within about one decade its default labels (6k, 8k, 10k...) are the clearer ones.
        plot.figure.update_yaxes(dtick="D2")
