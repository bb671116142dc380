"""What reaching a target costs: data to collect and training compute, per experiment.

Compute is measured, not assumed: every finished trial records its training
seconds (``wall_time_s``); a size's study (its search and its re-runs) took
their sum, and a least-squares line of log seconds against log size says how
that grows with the data (:func:`measure_compute`).  The study at the size a
target needs is that line's value there, on the same kind of machine.  Prices
come from ``--cost-per-example`` and ``--cost-per-gpu-hour``, else from the
specs' ``[costs]`` tables (:func:`resolve_rates`).

Example::

    from scaling_optuna.compare.costs import measure_compute, resolve_rates

    compute = measure_compute(exp)            # None before two sizes have finished trials
    compute.exponent, compute.hours(4000)     # seconds grow as m^exponent; device hours of the study at 4,000
    rates = resolve_rates(0.05, None, [exp.spec])
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from optuna.trial import TrialState

from scaling_optuna import _checks
from scaling_optuna.compare.records import Compute
from scaling_optuna.compare.records import Member
from scaling_optuna.compare.records import Option
from scaling_optuna.compare.records import Rates
from scaling_optuna.errors import UserError
from scaling_optuna.experiment import Experiment
from scaling_optuna.fit import DataNeeded
from scaling_optuna.spec import ExperimentSpec

__all__ = ["check_rate", "measure_compute", "options", "resolve_rates"]


def check_rate(value: Any, name: str) -> float | None:
    """A price: ``None``, or a finite number ≥ 0.

    Raises:
        UserError: not a number, negative or not finite, naming ``name``.

    Example::

        >>> check_rate(0.05, "cost_per_example"), check_rate(None, "cost_per_example")
        (0.05, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value) or value < 0:
        raise UserError(f"{name} must be a price: a finite number ≥ 0 such as 0.05, got {_checks.plain(value)}")
    return float(value)


def resolve_rates(per_example: Any, per_gpu_hour: Any, specs: Sequence[ExperimentSpec]) -> Rates:
    """The prices to use: each given one, else the one the specs' ``[costs]`` tables agree on.

    Raises:
        UserError: a price is not a number ≥ 0, or two specs name different ones and none is given.
    """
    chosen: dict[str, float | None] = {}
    sources = []
    for key, given, flag in (("per_example", per_example, "--cost-per-example"), ("per_gpu_hour", per_gpu_hour, "--cost-per-gpu-hour")):
        value = check_rate(given, flag.strip("-").replace("-", "_"))
        if value is not None:
            chosen[key] = value
            sources.append(flag)
            continue
        stated = {spec.name: getattr(spec.costs, key) for spec in specs if getattr(spec.costs, key) is not None}
        if len(set(stated.values())) > 1:
            shown = ", ".join(f"{name} {v:g}" for name, v in stated.items())
            raise UserError(f"the specs' [costs] {key} differ ({shown}); pass {flag} to say which applies")
        chosen[key] = next(iter(stated.values()), None)
        if stated:
            sources.append(f"[costs] {key} of {', '.join(stated)}")
    return Rates(chosen["per_example"], chosen["per_gpu_hour"], "; ".join(sources))


def measure_compute(experiment: Experiment) -> Compute | None:
    """Each size's training seconds (all finished trials' ``wall_time_s``) and their growth; ``None`` under two sizes."""
    sizes, seconds, trials = [], [], []
    for size in experiment.sizes:
        finished = experiment.trials(size, states=(TrialState.COMPLETE, TrialState.PRUNED))
        times = [float(t.user_attrs["wall_time_s"]) for t in finished if isinstance(t.user_attrs.get("wall_time_s"), (int, float))]
        if times and sum(times) > 0:
            sizes.append(size)
            seconds.append(sum(times))
            trials.append(len(times))
    if len(sizes) < 2:
        return None
    x, y = np.log(sizes), np.log(seconds)
    slope, intercept = np.polyfit(x, y, 1)
    # A study does not get cheaper with more data; a falling fit is noise in the timings.
    exponent = max(float(slope), 0.0)
    log_scale = float(np.mean(y - exponent * x)) if exponent != slope else float(intercept)
    return Compute(tuple(sizes), tuple(seconds), tuple(trials), exponent, log_scale)


def options(members: Sequence[Member], needs: dict[str, DataNeeded], rates: Rates) -> tuple[Option, ...]:
    """Every reachable way to the target: the reference with more data, switching to another (with more data: both)."""
    out = []
    for i, member in enumerate(members):
        need = needs.get(member.name)
        if need is None or not need.reachable:
            continue
        label = _label(i, member, members[0].name, need.size)
        collect, hours, cost = _cost(member, need.size, rates)
        low, high = (_cost_at(member, n, rates) for n in (need.lower, need.upper))
        out.append(Option(label, member.name, need.size, need.lower, need.upper, collect, hours, cost, low, high))
    return tuple(out)


def _label(index: int, member: Member, reference: str, examples: float) -> str:
    more = member.pool_size is not None and examples > member.pool_size
    if index == 0:
        return f"more data for {reference}" if more else f"{reference} on the data you have"
    return f"switch to {member.name} and collect more data (both)" if more else f"switch to {member.name}"


def _cost_at(member: Member, examples: float, rates: Rates) -> float:
    """The cost at one end of the data-needed interval (NaN: no such end; inf: never reached)."""
    if math.isnan(examples) or math.isinf(examples):
        return examples
    return _cost(member, examples, rates)[2]


def _cost(member: Member, examples: float, rates: Rates) -> tuple[float, float, float]:
    """(examples to collect, device hours, cost) of training ``member``'s model at ``examples``; the cost leaves out an
    unknown price's part, and is NaN when nothing is priced."""
    collect = max(0.0, examples - member.pool_size) if member.pool_size is not None else math.nan
    measured = member.largest is not None and examples <= member.largest
    if measured:
        hours = 0.0  # a size the experiment has already run reaches it: nothing to train
    else:
        hours = member.compute.hours(examples) if member.compute is not None else math.nan
    if not rates.given:
        return collect, hours, math.nan
    cost = 0.0
    if rates.per_example is not None:
        cost += rates.per_example * collect
    if rates.per_gpu_hour is not None:
        cost += rates.per_gpu_hour * hours
    return collect, hours, cost
