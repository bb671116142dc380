"""The comparison as one self-contained HTML page (``compare.html``): plotly.js is embedded, nothing is fetched.

Example::

    from pathlib import Path
    from scaling_optuna.compare.page import render_html

    Path("compare.html").write_text(render_html(comparison), encoding="utf-8")   # comparison.to_html()
"""

from __future__ import annotations

import html
import math

import plotly.io as pio

from scaling_optuna.compare.figures import render_figure
from scaling_optuna.compare.records import PAIRED_NOISE
from scaling_optuna.compare.records import ComparisonData
from scaling_optuna.compare.records import Pair
from scaling_optuna.compare.records import TargetPart
from scaling_optuna.compare.text import better_words
from scaling_optuna.compare.text import k_text
from scaling_optuna.compare.text import member_line
from scaling_optuna.compare.text import money_text
from scaling_optuna.compare.text import rates_words
from scaling_optuna.compare.text import summary
from scaling_optuna.compare.text import target_lines
from scaling_optuna.report import count
from scaling_optuna.report import value
from scaling_optuna.report.page import PAGE_CSS

__all__ = ["render_html"]

_e = html.escape


def render_html(c: ComparisonData) -> str:
    """The whole page: the answer, the plot, the experiments, each pair's tables, the target and the warnings."""
    title = " vs ".join(c.names)
    figure = pio.to_html(
        render_figure(c), include_plotlyjs=True, full_html=False, div_id="plot-compare",
        config={"displaylogo": False, "responsive": True},
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Comparison: {_e(title)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{PAGE_CSS}</style></head><body><main>",
        f"<h1>More data or another model: {_e(title)}</h1>",
        f'<div class="meta">dataset {_e(str(c.dataset))} · store {_e(c.storage)} · generated {_e(c.generated_at)} · '
        "the same nested subsets (data fingerprints checked); each size's point is its chosen configuration by validation loss</div>",
        '<div class="answer">' + "".join(f"<p>{_e(line)}</p>" for line in summary(c)) + "</div>",
        '<div class="card">' + figure + "".join(f'<div class="law">{_e(member_line(m).strip())}</div>' for m in c.members) + "</div>",
    ]
    for pair in c.pairs:
        parts += _pair(pair)
    if c.target is not None:
        parts += _target(c.target)
    if c.warnings:
        parts.append('<h2>Warnings</h2><div class="warn"><ul>' + "".join(f"<li>{_e(w)}</li>" for w in c.warnings) + "</ul></div>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _pair(pair: Pair) -> list[str]:
    out = [f"<h2>{_e(pair.other)} against {_e(pair.reference)}</h2>"]
    if pair.differences:
        rows = "".join(
            f"<tr><td>{d.size}</td><td>{value(d.reference)} ({d.reference_runs} run{'s' if d.reference_runs != 1 else ''})</td>"
            f"<td>{value(d.other)} ({d.other_runs} run{'s' if d.other_runs != 1 else ''})</td>"
            f"<td>{d.difference:+.3g}</td><td>{_interval(d.lower, d.upper, '+.3g')}</td>"
            f"<td class=l>{_e(d.verdict(pair.reference, pair.other))}</td></tr>"
            for d in pair.differences
        )
        out += [
            f"<p class=meta>Measured on the same subsets: {_e(PAIRED_NOISE)}.</p>",
            f"<table><tr><th>size</th><th>{_e(pair.reference)}</th><th>{_e(pair.other)}</th><th>difference</th>"
            f"<th>95% interval</th><th class=l>verdict</th></tr>{rows}</table>",
        ]
    if pair.factors:
        rows = "".join(
            f"<tr><td>{count(f.size)}{f' ({f.multiple:g}×)' if f.multiple else ''}</td><td>{k_text(f.k, f.at_most)}</td>"
            f"<td>{k_text(f.lower, f.lower_at_most)}–{k_text(f.upper)}</td><td class=l>{_e(better_words(pair, f.better))}</td></tr>"
            for f in pair.factors
        )
        out += [
            f"<p class=meta>Data-equivalent factor: {_e(pair.other)} with m examples matches {_e(pair.reference)} with k·m "
            "(the reference's curve inverted at the other's error; the interval from drawing both curves from their bands).</p>",
            f"<table><tr><th>m</th><th>k</th><th>95% interval</th><th class=l>verdict</th></tr>{rows}</table>",
        ]
    if pair.crossing is not None:
        out.append(f"<p>{_e(pair.crossing.message[:1].upper() + pair.crossing.message[1:])}.</p>")
    elif pair.message:
        out.append(f"<p>{_e(pair.message)}</p>")
    return out


def _target(t: TargetPart) -> list[str]:
    """The examples each needs and the plan in words, the ways there as a table."""
    lines = [line.strip() for line in target_lines(t)[1:]]
    words = [line for line in lines if not line.startswith(("ways there", *(f"{o.label}:" for o in t.options)))]
    out = [f"<h2>Target test error {t.target:g}</h2>", '<div class="card">'] + [f"<p>{_e(line)}</p>" for line in words] + ["</div>"]
    if t.options:
        rows = "".join(
            f"<tr><td class=l>{_e(o.label)}</td><td>{count(o.examples)}</td><td>{count(o.examples_lower)}–{count(o.examples_upper)}</td>"
            f"<td>{count(o.collect)}</td><td>{o.device_hours:.3g}</td><td>{money_text(o.cost)}</td><td>{money_text(o.cost_lower)}–{money_text(o.cost_upper)}</td></tr>"
            for o in t.options
        )
        out += [
            f"<p class=meta>The ways there, {_e(rates_words(t))}.</p>",
            "<table><tr><th class=l>way</th><th>examples</th><th>95% interval</th><th>to collect</th><th>device hours</th>"
            f"<th>cost</th><th>95% interval</th></tr>{rows}</table>",
        ]
    return out


def _interval(lower: float, upper: float, spec: str) -> str:
    return "-" if math.isnan(lower) else f"{lower:{spec}}…{upper:{spec}}"

