"""The comparison in words: the terminal text and the Markdown note.

Example::

    from scaling_optuna.compare.text import render_text

    print(render_text(comparison))       # comparison.to_text()
"""

from __future__ import annotations

import math

from scaling_optuna.compare.records import ComparisonData
from scaling_optuna.compare.records import Factor
from scaling_optuna.compare.records import Member
from scaling_optuna.compare.records import NO_DIFFERENCE
from scaling_optuna.compare.records import Option
from scaling_optuna.compare.records import Pair
from scaling_optuna.compare.records import TargetPart
from scaling_optuna.report import count
from scaling_optuna.report import value

__all__ = [
    "better_words", "factor_words", "k_text", "member_line", "money_text", "pair_lines", "rates_words", "render_markdown", "render_text", "summary",
    "target_lines",
]


def render_text(c: ComparisonData) -> str:
    """The terminal text: the experiments, each pair's differences, factors and crossing, the target and the plan."""
    sizes = c.shared_sizes
    span = f"{count(sizes[0])} … {count(sizes[-1])} examples" if sizes else "no size in common to all"
    out = [
        f"Comparing {len(c.members)} experiments on the same data ({c.dataset}, the same nested subsets: {span}), store {c.storage}",
        "",
    ]
    out += [member_line(m) for m in c.members]
    for pair in c.pairs:
        out += [""] + pair_lines(pair)
    if c.target is not None:
        out += [""] + target_lines(c.target)
    if c.warnings:
        out += ["", "Warnings:"] + [f"  - {w}" for w in c.warnings]
    if c.dashboard:
        out += ["", _dashboard_line(c.dashboard)]
    return "\n".join(out)


def render_markdown(c: ComparisonData) -> str:
    """A short Markdown summary: the note published into optuna-dashboard on each compared experiment's largest study."""
    lines = [f"## Comparison: {' vs '.join(f'`{n}`' for n in c.names)}", "", f"_compare of {c.generated_at}_", ""]
    lines += [f"- {line}" for line in summary(c)]
    lines += [""] + [f"- {member_line(m).strip()}" for m in c.members]
    if c.target is not None:
        lines += ["", f"**Target test error {c.target.target:g}**"] + [f"- {line.strip()}" for line in target_lines(c.target)[1:]]
    if c.warnings:
        lines += ["", "**Warnings**"] + [f"- {w}" for w in c.warnings]
    return "\n".join(lines)


def summary(c: ComparisonData) -> list[str]:
    """The answer in sentences: per pair, the factor at 2× and where the curves cross; then the cheapest way to the target."""
    lines = []
    for pair in c.pairs:
        factor = pair.factor_at(2)
        lines.append(factor_words(pair, factor) if factor is not None else f"{pair.other} against {pair.reference}: {pair.message}")
        if pair.crossing is not None:
            lines.append(_sentence(pair.crossing.message))
    if c.target is not None and c.target.cheapest is not None:
        lines.append(f"Test error {c.target.target:g}: the cheapest way is {c.target.cheapest}.")
    if c.target is not None and c.target.plan is not None:
        lines.append(_sentence(c.target.plan.message))
    return lines


def member_line(m: Member) -> str:
    """One experiment: its model, its sizes, its last point, its law with the exponent's interval, its floor."""
    head = f"  {m.name} ({m.model}): "
    if not m.curve.sizes:
        return head + "no measured test error"
    last = m.curve.sizes[-1]
    line = head + f"{len(m.curve.sizes)} sizes, test error {value(m.curve.values[-1])} at {count(last)} examples"
    fit = m.fit
    if fit is None:
        return line + f"; {m.curve.message}"
    floor = fit.floor()
    flat = f"the predicted curve flattens at {floor:.3g}" if floor > 0 else "the predicted curve keeps falling (no floor)"
    gamma = fit.intervals.get("gamma")
    if fit.form == "saturating" and gamma:
        flat += f" (the law's floor γ {fit.gamma:.3g}, 95% interval {gamma[0]:.3g}…{gamma[1]:.3g})"
    return line + f"; {m.curve.law}; {flat}"


def pair_lines(pair: Pair) -> list[str]:
    """A pair: its paired differences, its data-equivalent factors, the verdict in words and the crossing."""
    out = [f"{pair.other} against {pair.reference}:"]
    if pair.differences:
        out.append(f"  measured on the same subsets: test error, and {pair.other} − {pair.reference} with its 95% interval")
        width = max(len(pair.reference), len(pair.other), 8)
        out.append(f"  {'size':>8}  {pair.reference:>{width}}  {pair.other:>{width}}  difference")
        for d in pair.differences:
            interval = f" ({d.lower:+.3g}…{d.upper:+.3g})" if math.isfinite(d.lower) else " (no interval)"
            out.append(
                f"  {d.size:>8}  {value(d.reference):>{width}}  {value(d.other):>{width}}  "
                f"{d.difference:+.3g}{interval}  {d.verdict(pair.reference, pair.other)}"
            )
    if not pair.factors:
        return out + [f"  {pair.message}"]
    out.append(f"  data-equivalent factor: {pair.other} with m examples matches {pair.reference} with k·m (95% interval)")
    for f in pair.factors:
        where = f"{count(f.size)}" + (f" ({f.multiple:g}×)" if f.multiple else "")
        out.append(f"  {where:>16}  k {k_text(f.k, f.at_most)} ({k_text(f.lower, f.lower_at_most)}–{k_text(f.upper)})  {better_words(pair, f.better)}")
    factor = pair.factor_at(2)
    if factor is not None:
        out.append("  " + factor_words(pair, factor))
    if pair.crossing is not None:
        out.append("  " + _sentence(pair.crossing.message))
    return out


def factor_words(pair: Pair, f: Factor) -> str:
    """The factor at a size in a sentence, with what it means."""
    where = f"With {f.multiple:g}× the data ({count(f.size)} examples)" if f.multiple else f"At {count(f.size)} examples"
    if math.isinf(f.k):
        said = f"{where}, {pair.other} reaches an error {pair.reference}'s curve never gets to"
    else:
        said = (
            f"{where}, {pair.other} does what {pair.reference} does with {k_text(f.k, f.at_most)}× as many "
            f"({count(f.k * f.size)} examples; 95% interval ×{k_text(f.lower, f.lower_at_most)}–{k_text(f.upper)})"
        )
    return f"{said}: {better_words(pair, f.better)}."


def better_words(pair: Pair, better: str | None) -> str:
    """A factor's ``better`` (``"other"``, ``"reference"`` or ``None``) in words."""
    if better == "other":
        return f"{pair.other} is better"
    if better == "reference":
        return f"{pair.reference} is better"
    return NO_DIFFERENCE


def k_text(k: float, at_most: bool = False) -> str:
    """A data-equivalent factor to 2 digits: ``0.45``, ``≤1`` (at most), ``∞``.

    Example::

        >>> k_text(0.4512), k_text(1.0, at_most=True), k_text(float("inf"))
        ('0.45', '≤1', '∞')
    """
    if math.isnan(k):
        return "-"
    if math.isinf(k):
        return "∞"
    return ("≤" if at_most else "") + f"{k:.2g}"


def target_lines(t: TargetPart) -> list[str]:
    """The examples each experiment needs, the ways there with their costs, the cheapest, and the plan."""
    out = [f"Target test error {t.target:g}:"]
    for name, need in t.needs.items():
        if not need.reachable:
            out.append(f"  {name}: never reaches it ({need.message})")
        elif need.already:
            out.append(f"  {name}: already there at its smallest fitted size")
        else:
            interval = f" (95% interval {count(need.lower)}–{count(need.upper)})" if not math.isnan(need.lower) else ""
            out.append(f"  {name} needs about {count(need.size)} examples{interval}")
    if t.message:
        out.append(f"  {t.message}")
    if t.options:
        out.append(f"  ways there, {rates_words(t)}:")
        out += [f"    {_option_line(o, t)}" for o in t.options]
    if t.cheapest is not None:
        out.append(f"  {'cheapest' if t.rates.given else 'fewest examples'}: {t.cheapest}")
    if t.plan is not None:
        out.append(f"  plan: {t.plan.message}")
    return out


def rates_words(t: TargetPart) -> str:
    """The prices used and where they came from, or how to give them."""
    r = t.rates
    if not r.given:
        return "without prices (pass --cost-per-example and --cost-per-gpu-hour, or a [costs] table in the spec)"
    parts = []
    if r.per_example is not None:
        parts.append(f"{r.per_example:g} per example")
    if r.per_gpu_hour is not None:
        parts.append(f"{r.per_gpu_hour:g} per device hour")
    return f"at {' and '.join(parts)} ({r.source}); device hours of one size's study, measured and grown with size"


def _option_line(o: Option, t: TargetPart) -> str:
    hours = "no new training" if o.device_hours == 0 else (f"{o.device_hours:.3g} device hours" if math.isfinite(o.device_hours) else "unmeasured training time")
    line = f"{o.label}: {count(o.examples)} examples, collect {count(o.collect)}, {hours}"
    if t.rates.given and math.isfinite(o.cost):
        line += f": cost {o.cost:.4g} (95% interval {money_text(o.cost_lower)}–{money_text(o.cost_upper)})"
    return line


def money_text(x: float) -> str:
    """A cost to 4 digits (``-``: unknown, ``∞``: never reached)."""
    if math.isnan(x):
        return "-"
    return "∞" if math.isinf(x) else f"{x:.4g}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _dashboard_line(infos: list[dict]) -> str:
    done = [i["study"] for i in infos if i.get("published")]
    if len(done) == len(infos):
        return f"Published the comparison to optuna-dashboard on {', '.join(repr(s) for s in done)} (each experiment's largest size)"
    failed = next(i for i in infos if not i.get("published"))
    return f"Not published to optuna-dashboard: {failed.get('error')}"
