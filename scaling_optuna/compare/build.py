"""Comparing experiments on one data ladder: :func:`compare_experiments` and :class:`Comparison`.

Every experiment is read and fitted as the report does it
(:func:`~scaling_optuna.report.curves.fit_curve` on the chosen configuration
of every size, with each point's noise); the first experiment is the
reference every other is set against (:mod:`~scaling_optuna.compare.pairs`).
Before anything is fitted the experiments must share their data: at every
size two of them both have, their studies' data fingerprints (the subset,
the validation and the test set) must be equal.

Example::

    import scaling_optuna

    comparison = scaling_optuna.compare_experiments(["studies/digits.toml", "studies/digits-mlp.toml"], target=0.02)
    print(comparison.to_text())
    comparison.to_dict()["pairs"][0]["verdict"]
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import plotly.graph_objects as go

from scaling_optuna import _checks
from scaling_optuna.compare.costs import check_rate
from scaling_optuna.compare.costs import measure_compute
from scaling_optuna.compare.costs import options
from scaling_optuna.compare.costs import resolve_rates
from scaling_optuna.compare.figures import render_figure
from scaling_optuna.compare.page import render_html
from scaling_optuna.compare.pairs import compare_pair
from scaling_optuna.compare.plan import collection_plan
from scaling_optuna.compare.records import ComparisonData
from scaling_optuna.compare.records import Member
from scaling_optuna.compare.records import Rates
from scaling_optuna.compare.records import TargetPart
from scaling_optuna.compare.text import render_markdown
from scaling_optuna.compare.text import render_text
from scaling_optuna.errors import UserError
from scaling_optuna.experiment import Experiment
from scaling_optuna.experiment import load_experiment
from scaling_optuna.report import count
from scaling_optuna.report import validate_target
from scaling_optuna.report.curves import fit_curve
from scaling_optuna.report.rows import majority_error
from scaling_optuna.report.rows import recorded_test_size
from scaling_optuna.report.rows import size_rows
from scaling_optuna.report.rows import skipped_sizes
from scaling_optuna.report.rows import study_attrs
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.storages import mask_url

__all__ = ["Comparison", "compare_experiments"]

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class Comparison(ComparisonData):
    """Everything the comparison shows, and how it is shown. Build it with :func:`compare_experiments`.

    Example::

        comparison.to_dict()["pairs"][0]["factors"][-1]["k"]
        comparison.figure().write_html("compare.html")   # or .show()
    """

    def to_text(self) -> str:
        """What ``scaling-optuna compare`` prints."""
        return render_text(self)

    def to_markdown(self) -> str:
        """A short Markdown summary (the note published into optuna-dashboard)."""
        return render_markdown(self)

    def to_html(self) -> str:
        """A self-contained page (plotly embedded inline) that works offline."""
        return render_html(self)

    def figure(self) -> go.Figure:
        """Every experiment's test error against size on one log-log plot, with its fitted curve and band."""
        return render_figure(self)


def compare_experiments(
    experiments: Sequence[Experiment | ExperimentSpec | str | Path],
    storage: str | None = None,
    *,
    target: float | None = None,
    cost_per_example: float | None = None,
    cost_per_gpu_hour: float | None = None,
    seed: int = 0,
    n_draws: int = 4000,
    n_bootstrap: int = 1000,
) -> Comparison:
    """Set every experiment after the first against the first, on the sizes they share.

    ``experiments`` are open experiments or specs (read from ``storage``,
    default each spec's). ``target`` is a test error: the examples each
    needs, and with prices (``cost_per_example``, ``cost_per_gpu_hour``, else
    the specs' ``[costs]``) the cheapest way there and a collection plan.
    ``seed`` and ``n_draws`` fix the draws behind the factors' and crossing's intervals.

    Raises:
        UserError: fewer than two experiments, one twice, one without studies or
            without a measured test error, data that differ (fingerprints), a bad
            target or price.

    Example::

        comparison = compare_experiments([exp_cnn, exp_mlp], target=0.02, cost_per_example=0.1)
        print(comparison.pairs[0].verdict, comparison.target.cheapest)
    """
    target_value = validate_target(target)
    _check_options(cost_per_example=cost_per_example, cost_per_gpu_hour=cost_per_gpu_hour, seed=seed, n_draws=n_draws, n_bootstrap=n_bootstrap)
    opened = _open(experiments, storage)
    shared = check_same_data(opened)
    rates = resolve_rates(cost_per_example, cost_per_gpu_hour, [e.spec for e in opened])
    attrs = study_attrs(opened[0])
    majority, test_size = majority_error(attrs), recorded_test_size(attrs)
    target_value = validate_target(target_value, majority_error=majority)
    warnings: list[str] = []
    members = tuple(_member(e, majority, test_size, warnings, n_bootstrap=n_bootstrap, seed=seed) for e in opened)
    pairs = tuple(
        compare_pair(members[0], other, test_size=test_size, plateau=majority, n_draws=n_draws, seed=seed + i, n_bootstrap=n_bootstrap)
        for i, other in enumerate(members[1:], 1)
    )
    for message in warnings:
        _log.warning(message)
    return Comparison(
        members=members,
        pairs=pairs,
        target=None if target_value is None else target_part(members, target_value, rates),
        storage=", ".join(dict.fromkeys(mask_url(e.storage_url) for e in opened)),
        generated_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        dataset=attrs.get("dataset"),
        majority_error=majority,
        test_size=test_size,
        shared_sizes=shared,
        warnings=warnings,
    )


def _check_options(*, cost_per_example: Any, cost_per_gpu_hour: Any, seed: Any, n_draws: Any, n_bootstrap: Any) -> None:
    check_rate(cost_per_example, "cost_per_example")
    check_rate(cost_per_gpu_hour, "cost_per_gpu_hour")
    _checks.count(n_draws, "n_draws", minimum=100, example=4000)
    _checks.count(n_bootstrap, "n_bootstrap")
    _checks.count(seed, "seed", example=0)


def _open(experiments: Sequence[Any], storage: str | None) -> list[Experiment]:
    if isinstance(experiments, (str, Path, Experiment, ExperimentSpec)) or len(experiments) < 2:
        raise UserError("compare needs two or more experiments on the same data: pass e.g. studies/digits.toml studies/digits-mlp.toml")
    opened = [e if isinstance(e, Experiment) else load_experiment(e, storage) for e in experiments]
    names = [e.spec.name for e in opened]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"experiment {twice[0]!r} is given twice; compare it with another experiment (a copy needs a name of its own)")
    return opened


def check_same_data(experiments: Sequence[Experiment]) -> tuple[int, ...]:
    """The sizes every experiment has, after checking that all share their data at the sizes any two share.

    Raises:
        UserError: a study records no fingerprint, two experiments share no size, or a fingerprint differs.
    """
    prints = [_fingerprints(e) for e in experiments]
    first, reference = experiments[0].spec.name, prints[0]
    for exp, theirs in zip(experiments[1:], prints[1:]):
        common = sorted(set(reference) & set(theirs))
        if not common:
            raise UserError(
                f"experiments {first!r} ({_sizes(reference)}) and {exp.spec.name!r} ({_sizes(theirs)}) share no training-set "
                "size, so nothing shows they use the same subsets; give their specs the same [sizes]"
            )
        differ = [s for s in common if reference[s] != theirs[s]]
        if differ:
            size = differ[0]
            raise UserError(
                f"experiments {first!r} and {exp.spec.name!r} were trained on different data: at {count(size)} examples their "
                f"subsets' fingerprints differ ({reference[size]} and {theirs[size]}); give both specs the same [data], seed "
                "and validation split, so that they train on the same nested subsets"
            )
    return tuple(sorted(set.intersection(*(set(p) for p in prints))))


def _fingerprints(experiment: Experiment) -> dict[int, str]:
    out = {}
    for size, study in experiment.studies.items():
        value = study.user_attrs.get("fingerprint")
        if not isinstance(value, str):
            raise UserError(
                f"study {study.study_name!r} records no data fingerprint (a store created by an older version); "
                f"run 'scaling-optuna create {experiment.spec.path or 'SPEC'}' on its store once to record it"
            )
        out[size] = value
    return out


def _sizes(prints: dict[int, str]) -> str:
    sizes = sorted(prints)
    return f"sizes {count(sizes[0])}…{count(sizes[-1])}" if len(sizes) > 1 else f"size {count(sizes[0])}"


def _member(
    experiment: Experiment, majority: float | None, test_size: int | None, warnings: list[str], *, n_bootstrap: int, seed: int
) -> Member:
    """An experiment's rows and its test-error curve, fitted as the report fits it; its warnings named after it."""
    rows = size_rows(experiment)
    own = skipped_sizes(rows)
    if all(row.best is None or row.best.test_error is None for row in rows):
        raise UserError(
            f"experiment {experiment.spec.name!r} has no finished trial with a test error yet; "
            f"let its workers finish (scaling-optuna status {experiment.spec.path or 'SPEC'}) and compare again"
        )
    curve = fit_curve(rows, "test_error", plateau=majority, warnings=own, n_bootstrap=n_bootstrap, seed=seed, test_size=test_size)
    warnings.extend(f"{experiment.spec.name}: {w}" for w in own)
    attrs = study_attrs(experiment)
    pool = attrs.get("pool_size")
    return Member(
        name=experiment.spec.name,
        spec_path=experiment.spec.path,
        dataset=attrs.get("dataset"),
        model=attrs.get("model"),
        pool_size=int(pool) if isinstance(pool, int) else None,
        rows=tuple(rows),
        curve=curve,
        compute=measure_compute(experiment),
    )


def target_part(members: Sequence[Member], target: float, rates: Rates) -> TargetPart:
    """The examples each experiment needs for ``target``, the ways there with their costs, the cheapest and its plan."""
    needs = {m.name: m.fit.data_needed(target) for m in members if m.fit is not None}
    ways = options(members, needs, rates)
    priced = [o for o in ways if not math.isnan(o.cost)]  # NaN: not priced
    if priced:
        cheapest = min(priced, key=lambda o: (o.cost, o.examples))
    else:
        cheapest = min(ways, key=lambda o: o.examples, default=None)
    if cheapest is None:
        message = f"no compared experiment reaches test error {target:g} by its fitted curve: a better model is needed first"
        return TargetPart(target, needs, rates, ways, None, None, message)
    chosen = next(m for m in members if m.name == cheapest.experiment)
    plan = collection_plan(chosen, target, needs[chosen.name])
    return TargetPart(target, needs, rates, ways, cheapest.label, plan)
