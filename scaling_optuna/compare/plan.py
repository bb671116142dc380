"""The next round of data collection toward a target, with a margin, in the spirit of Mahmood et al. (2022).

Mahmood et al. ("How Much More Data Do I Need?", CVPR 2022) and the LOC
method (NeurIPS 2022) found that collecting once, exactly what a fitted curve
says a target needs, often falls short, and that a margin and rounds do
better.  The plan takes the fitted answer and multiplies it by the larger of
two margins:

* the **band**: where 3 in 4 of the curve band's curves have reached the
  target (their 75th percentile, read as :mod:`~scaling_optuna.compare.draws`
  reads a band);
* the **backtest**: where the curve, refitted without its largest sizes,
  predicted less error than was then measured, the data that gap is worth at
  the curve's local slope, ``(measured / predicted)^(1/|slope|)``.

A round collects at most up to :data:`ROUND_REACH` × the largest measured
size: beyond it the band is too wide to plan on, and a new measured size
narrows it.  Either way the advice ends the same: run the new size once its
examples exist, and compare again.

Example::

    from scaling_optuna.compare.plan import collection_plan

    plan = collection_plan(member, 0.02, member.fit.data_needed(0.02))
    if plan is not None:                 # None: the experiment never reaches 0.02
        print(plan.collect, plan.message)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from scaling_optuna.compare.draws import Band
from scaling_optuna.compare.draws import first_reach
from scaling_optuna.compare.draws import search_grid
from scaling_optuna.compare.records import Member
from scaling_optuna.compare.records import Plan
from scaling_optuna.fit import DataNeeded
from scaling_optuna.fit import ScalingLawFit
from scaling_optuna.report import Curve
from scaling_optuna.report import count

__all__ = ["PLAN_QUANTILE", "ROUND_REACH", "collection_plan"]

ROUND_REACH = 4
PLAN_QUANTILE = 0.75
_Z_PLAN = 0.6744897501960817  # the standard normal's 75th percentile


def collection_plan(member: Member, target: float, need: DataNeeded) -> Plan | None:
    """How many examples ``member``'s experiment should collect next toward ``target`` (``None``: it never gets there)."""
    fit = member.fit
    if fit is None or not need.reachable or member.largest is None:
        return None
    estimate = float(need.size)
    grid = search_grid(fit)
    reach, _ = first_reach(grid, Band.of(fit, grid).draw(np.array([_Z_PLAN])), np.array([math.log(target)]))
    band_margin = max(float(reach[0]), estimate) / estimate
    backtest_margin, worst = _backtest_margin(member.curve, fit, estimate)
    total = estimate * max(band_margin, backtest_margin)
    largest, pool = member.largest, member.pool_size if member.pool_size is not None else member.largest
    capped = total > ROUND_REACH * largest
    round_total = float(min(total, ROUND_REACH * largest))
    collect = max(0, math.ceil(round_total - pool))
    plan = Plan(member.name, target, pool, largest, estimate, band_margin, backtest_margin, total, round_total, capped, collect, "")
    return dataclasses.replace(plan, message=_words(plan, need, worst))


def _backtest_margin(curve: Curve, fit: ScalingLawFit, estimate: float) -> tuple[float, float]:
    """The data factor the backtest's worst shortfall is worth at the curve's slope there, and that shortfall (≥ 1)."""
    ratios = [p.actual / p.predicted for bt in curve.backtests for p in bt.points if p.predicted > 0]
    worst = max([1.0, *ratios])
    if worst <= 1.0:
        return 1.0, 1.0
    near = fit.predict([estimate / 1.1, estimate * 1.1]).mean
    slope = math.log(near[1] / near[0]) / math.log(1.21)
    return (worst ** (1.0 / -slope) if slope < -1e-6 else math.inf), worst


def _words(plan: Plan, need: DataNeeded, worst: float) -> str:
    name, total = plan.experiment, count(plan.round_total)
    if need.already or plan.estimate <= plan.largest:
        return f"{name} reaches test error {plan.target:g} at a size it has measured (about {count(plan.estimate)} examples): nothing to collect"
    margin = _margin_words(plan, worst)
    if plan.capped:
        how = (
            f"the estimate {count(plan.estimate)} with {margin} is {count(plan.total)}, more than {ROUND_REACH}× the largest "
            f"size measured ({count(plan.largest)}), where the band is too wide to plan on: this round goes to {total}"
        )
    else:
        how = f"the estimate {count(plan.estimate)} with {margin}"
    if plan.collect > 0:
        head = f"collect {count(plan.collect)} more examples for {name} ({total} in all: {how})"
    else:
        head = f"{name}'s pool of {count(plan.pool_size)} examples already holds enough for {total} ({how})"
    return head + f"; once they are there, add {total} to the spec's [sizes] counts, run that size, and compare again before collecting more"


def _margin_words(plan: Plan, worst: float) -> str:
    factor = max(plan.band_margin, plan.backtest_margin)
    if not math.isfinite(factor):
        return "a margin without bound (the curve is flat where it would reach the target)"
    if plan.backtest_margin > plan.band_margin:
        why = f"its backtest measured up to {worst - 1:.0%} more error than the refitted curve predicted"
    else:
        why = f"{PLAN_QUANTILE * 4:.0f} in 4 of its band's curves reach the target by then"
    return f"a margin of ×{factor:.2f} ({why})"
