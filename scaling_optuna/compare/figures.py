"""The comparison's plotly figure: every experiment's test error against size on one log-log plot.

Each experiment gets a colour: its measured points (the chosen configuration's
mean over its runs, with the 95 % interval of the point's noise), its fitted
curve over the data, dashed on to :data:`~scaling_optuna.report.figures.PLOT_REACH`
× its largest size, and the curve's 95 % band.  Guessing the majority class,
the target and a crossing of the curves are marked.

Example::

    from scaling_optuna.compare.figures import render_figure

    render_figure(comparison).write_html("compare.html")   # comparison.figure()
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from scaling_optuna.compare.records import ComparisonData
from scaling_optuna.compare.records import Member
from scaling_optuna.report import count
from scaling_optuna.report.figures import PLOT_REACH

__all__ = ["COLOURS", "render_figure"]

COLOURS = ("#1f5fbf", "#e07b00", "#2e8b57", "#8e44ad", "#c0392b", "#17a2b8")
_GREY, _RED = "#8a8f98", "#c0392b"


def render_figure(c: ComparisonData) -> go.Figure:
    """Every experiment's points, curve and band; the majority-class error, the target and the crossings."""
    fig = go.Figure()
    ys: list[float] = []
    for i, member in enumerate(c.members):
        colour = COLOURS[i % len(COLOURS)]
        if member.fit is not None:
            ys += _add_curve(fig, member, colour)
        ys += _add_points(fig, member, colour)
    _add_references(fig, c, ys)
    for pair in c.pairs:
        cross = pair.crossing
        if cross is not None and cross.size is not None:
            fig.add_trace(go.Scatter(
                x=[cross.size], y=[_level_at(c, pair.reference, cross.size)], mode="markers",
                marker=dict(symbol="x", size=12, color=_GREY), name=f"{pair.other} and {pair.reference} cross" + ("" if cross.significant else " (not significant)"),
                hovertemplate="m=%{x:.0f}<extra></extra>",
            ))
    _lay_out(fig, c, ys)
    return fig


def _add_points(fig: go.Figure, m: Member, colour: str) -> list[float]:
    sds = list(m.curve.value_sd) or [math.nan] * len(m.curve.sizes)
    fig.add_trace(go.Scatter(
        x=list(m.curve.sizes), y=list(m.curve.values), mode="markers", name=f"{m.name}: measured",
        marker=dict(color=colour, size=10), legendgroup=m.name,
        error_y=dict(type="data", array=[1.96 * s if math.isfinite(s) else 0 for s in sds], color=colour, thickness=1.2),
        hovertemplate="m=%{x}<br>" + m.name + " test error %{y:.4g}<extra></extra>",
    ))
    return list(m.curve.values)


def _add_curve(fig: go.Figure, m: Member, colour: str) -> list[float]:
    fit = m.fit
    largest = max(fit.sizes_used)
    inner = np.geomspace(min(fit.sizes_used), largest, 40)
    grid = np.concatenate([inner, np.geomspace(largest, largest * PLOT_REACH, 25)[1:]])
    pred = fit.predict(grid)
    if np.all(np.isfinite(pred.lower)) and np.all(np.isfinite(pred.upper)):
        fig.add_trace(go.Scatter(x=grid, y=pred.upper, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip", legendgroup=m.name))
        fig.add_trace(go.Scatter(
            x=grid, y=pred.lower, mode="lines", line=dict(width=0), fill="tonexty", fillcolor=_transparent(colour),
            name=f"{m.name}: 95% band", hoverinfo="skip", legendgroup=m.name,
        ))
    n = len(inner)
    fig.add_trace(go.Scatter(
        x=grid[:n], y=pred.mean[:n], mode="lines", line=dict(color=colour, width=2.5), legendgroup=m.name,
        name=f"{m.name}: fit, β={fit.beta:.3f}", hovertemplate="m=%{x:.0f}<br>fitted %{y:.4g}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=grid[n - 1:], y=pred.mean[n - 1:], mode="lines", line=dict(color=colour, width=2.5, dash="dash"), legendgroup=m.name,
        name=f"{m.name}: extrapolated to {PLOT_REACH}×", hovertemplate="m=%{x:.0f}<br>predicted %{y:.4g}<extra></extra>",
    ))
    return list(pred.mean)


def _add_references(fig: go.Figure, c: ComparisonData, ys: list[float]) -> None:
    sizes = [s for m in c.members for s in m.curve.sizes] or [1]
    x = [min(sizes), max(sizes) * PLOT_REACH]
    if c.majority_error is not None:
        fig.add_trace(go.Scatter(
            x=x, y=[c.majority_error] * 2, mode="lines", line=dict(color=_GREY, dash="dot", width=1),
            name=f"guessing the majority class ({c.majority_error:.3g})", hoverinfo="skip",
        ))
        ys.append(c.majority_error)
    if c.target is not None:
        fig.add_trace(go.Scatter(
            x=x, y=[c.target.target] * 2, mode="lines", line=dict(color=_RED, dash="dash", width=1),
            name=f"target {c.target.target:g}", hoverinfo="skip",
        ))
        ys.append(c.target.target)
        reached = [(n, need.size) for n, need in c.target.needs.items() if need.reachable and math.isfinite(need.size)]
        if reached:
            fig.add_trace(go.Scatter(
                x=[s for _, s in reached], y=[c.target.target] * len(reached), mode="markers+text",
                text=[f"{n}: ≈{count(s)}" for n, s in reached], textposition="bottom center",
                marker=dict(color=_RED, symbol="x", size=10), name="target reached at", hovertemplate="m=%{x:.0f}<extra></extra>",
            ))


def _level_at(c: ComparisonData, name: str, size: float) -> float:
    member = next(m for m in c.members if m.name == name)
    return float(member.fit.predict([size]).mean[0])


def _transparent(colour: str) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},0.15)"


def _lay_out(fig: go.Figure, c: ComparisonData, ys: list[float]) -> None:
    fig.update_layout(
        title=dict(text=f"Test error against training-set size: {' vs '.join(c.names)}<br><sup>same data and subsets ({c.dataset}); bands are 95%</sup>", x=0.01),
        template="plotly_white", height=560, margin=dict(l=70, r=20, t=80, b=60),
        legend=dict(x=1.02, y=1, xanchor="left", font=dict(size=11)),
        xaxis=dict(type="log", title="training examples m (log scale)", dtick="D2"),
        yaxis=dict(type="log", title="test error (log scale)"),
    )
    positive = [y for y in ys if y is not None and math.isfinite(y) and y > 0]
    if positive:
        lo, hi = math.log10(min(positive)), math.log10(max(positive))
        pad = max(0.08, 0.08 * (hi - lo))
        fig.update_yaxes(range=[lo - pad, hi + pad])
