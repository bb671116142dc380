"""The comparison's numbers as plain records, and their JSON form (the content of ``compare.json``).

Nothing here reads the store or fits: :mod:`~scaling_optuna.compare.pairs`,
:mod:`~scaling_optuna.compare.costs` and :mod:`~scaling_optuna.compare.plan`
fill these records; the text, figure and page modules show them.  In a pair
the *reference* is the first experiment compared (A) and *other* the one set
against it (B).

Example::

    comparison = scaling_optuna.compare_experiments(["studies/digits.toml", "studies/digits-mlp.toml"])
    pair = comparison.pairs[0]
    pair.factors[0].k, pair.factors[0].lower, pair.factors[0].upper
    [d.verdict(pair.reference, pair.other) for d in pair.differences]
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any

from scaling_optuna._json import json_number
from scaling_optuna._json import jsonable
from scaling_optuna.report import Curve
from scaling_optuna.report import SizeRow

if TYPE_CHECKING:
    from scaling_optuna.fit import DataNeeded
    from scaling_optuna.fit import ScalingLawFit

__all__ = ["ComparisonData", "Compute", "Crossing", "Difference", "Factor", "Member", "Option", "Pair", "Plan", "Rates", "TargetPart"]

NO_DIFFERENCE = "no significant difference"
# How a paired difference's interval treats the noise of its two points, in words (compare.json and the page say it).
PAIRED_NOISE = (
    "each point is the chosen configuration's mean test error over its runs; the 95% interval of a difference adds "
    "both points' run-to-run and selection noise (as the report measures them, less the test set's binomial part) "
    "and the test-set noise a shared test set cannot cancel: McNemar's variance |Δ|(1−|Δ|)/n at the fewest test "
    "examples two error rates Δ apart must disagree on"
)


@dataclasses.dataclass(frozen=True)
class Compute:
    """The training seconds of each size's study (every finished trial's ``wall_time_s``) and their growth with size.

    ``exponent`` and ``log_scale`` are the least-squares line of log seconds
    against log size: the study at ``m`` examples takes about
    ``exp(log_scale) · m^exponent`` seconds (the growth is taken as 0 where
    the measured one falls).
    """

    sizes: tuple[int, ...]
    seconds: tuple[float, ...]
    trials: tuple[int, ...]
    exponent: float
    log_scale: float

    def hours(self, size: float) -> float:
        """Device hours of one size's study (its search and re-runs, as this experiment ran them) at ``size`` examples."""
        return math.exp(self.log_scale + self.exponent * math.log(size)) / 3600.0

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Member:
    """One compared experiment: its rows, its fitted test-error curve (the report's), and its training compute."""

    name: str
    spec_path: str | None
    dataset: str | None
    model: str | None
    pool_size: int | None
    rows: tuple[SizeRow, ...]
    curve: Curve
    compute: Compute | None

    @property
    def fit(self) -> ScalingLawFit | None:
        return self.curve.fit

    @property
    def largest(self) -> int | None:
        """The largest size with a measured test error."""
        return max(self.curve.sizes) if self.curve.sizes else None

    def to_dict(self) -> dict[str, Any]:
        fit = self.fit
        return {
            "name": self.name,
            "spec": self.spec_path,
            "dataset": self.dataset,
            "model": self.model,
            "pool_size": self.pool_size,
            "sizes": list(self.curve.sizes),
            "test_error": [json_number(v) for v in self.curve.values],
            "test_error_sd": [json_number(v) for v in self.curve.value_sd],
            "runs": [row.best.runs for row in self.rows if row.best is not None and row.size in self.curve.sizes],
            "law": self.curve.law,
            "exponent": None if fit is None else _interval(fit.beta, *fit.intervals.get("beta", (math.nan, math.nan))),
            "floor": None if fit is None else {"predicted": json_number(fit.floor()), "law_gamma": _interval(fit.gamma, *fit.intervals.get("gamma", (math.nan, math.nan)))},
            "fit": None if fit is None else fit.to_dict(),
            "message": self.curve.message,
            "compute": None if self.compute is None else self.compute.to_dict(),
        }


@dataclasses.dataclass(frozen=True)
class Difference:
    """Both experiments measured ``size`` on the same subset: ``other − reference`` of their test errors, 95 % interval.

    The interval is NaN where a point's noise is unknown (a test error of 0, which no curve uses).
    """

    size: int
    reference: float
    other: float
    reference_runs: int
    other_runs: int
    difference: float
    lower: float
    upper: float

    @property
    def significant(self) -> bool:
        return self.lower > 0 or self.upper < 0

    def verdict(self, reference: str, other: str) -> str:
        """``"A is better"``, ``"B is better"`` or ``"no significant difference"``."""
        if not self.significant:
            return NO_DIFFERENCE
        return f"{other if self.upper < 0 else reference} is better"

    def to_dict(self) -> dict[str, Any]:
        return {**jsonable(dataclasses.asdict(self)), "significant": self.significant}


@dataclasses.dataclass(frozen=True)
class Factor:
    """The data-equivalent factor at ``size``: the other with ``size`` examples matches the reference with ``k · size``.

    ``multiple`` is 2 or 10 for the sizes beyond the data (× the largest
    measured size), ``None`` at a measured size.  ``at_most``: the reference
    is already at the other's error at its own smallest fitted size, so ``k``
    is at most what is shown (nothing is said of smaller sets);
    ``lower_at_most`` the same of the interval's lower end.  ``k`` is ``inf``
    where the reference never gets there.
    """

    size: float
    multiple: float | None
    k: float
    lower: float
    upper: float
    at_most: bool = False
    lower_at_most: bool = False

    @property
    def better(self) -> str | None:
        """``"other"`` when the interval is above 1, ``"reference"`` below 1, else ``None``."""
        if self.lower > 1.0:
            return "other"
        if self.upper < 1.0:
            return "reference"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**jsonable(dataclasses.asdict(self)), "better": self.better}


@dataclasses.dataclass(frozen=True)
class Crossing:
    """Where the two fitted curves cross between ``start`` and ``end`` (the data, and on to 10× its largest size).

    ``size`` is where the mean curves first cross (``None``: they do not);
    ``lower``/``upper`` the 95 % interval of where the drawn curves cross,
    over the ``share`` of draws that cross at all.  ``significant``: each
    side of the crossing has sizes where one curve is significantly below
    the other.  ``better_before``/``better_after`` name the better experiment
    on each side (significantly or not).
    """

    start: float
    end: float
    size: float | None
    lower: float
    upper: float
    share: float
    significant: bool
    better_before: str | None
    better_after: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Pair:
    """``other`` set against ``reference``: paired differences, data-equivalent factors, crossing and verdict."""

    reference: str
    other: str
    differences: tuple[Difference, ...]
    factors: tuple[Factor, ...]
    crossing: Crossing | None
    message: str = ""

    def factor_at(self, multiple: float) -> Factor | None:
        """The factor at ``multiple`` × the largest measured size (2 or 10)."""
        return next((f for f in self.factors if f.multiple == multiple), None)

    @property
    def verdict(self) -> str | None:
        """The experiment better at 2× the largest size (the factor's interval excludes 1), else ``None``."""
        factor = self.factor_at(2)
        if factor is None or factor.better is None:
            return None
        return self.other if factor.better == "other" else self.reference

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "other": self.other,
            "differences": [d.to_dict() for d in self.differences],
            "factors": [f.to_dict() for f in self.factors],
            "crossing": None if self.crossing is None else self.crossing.to_dict(),
            "verdict": self.verdict,
            "message": self.message,
        }


@dataclasses.dataclass(frozen=True)
class Rates:
    """What one collected example and one device hour cost (``None``: not given), and where each came from."""

    per_example: float | None = None
    per_gpu_hour: float | None = None
    source: str = ""

    @property
    def given(self) -> bool:
        return self.per_example is not None or self.per_gpu_hour is not None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Option:
    """One way to the target: ``experiment``'s model trained on ``examples``, with the data and compute that takes.

    ``collect`` is the examples beyond the pool the experiment already has;
    ``device_hours`` the study at that size (0 where a measured size already
    reaches the target); ``cost`` with its interval from the data-needed
    interval (NaN where a rate is missing: ``cost`` then holds what is known).
    """

    label: str
    experiment: str
    examples: float
    examples_lower: float
    examples_upper: float
    collect: float
    device_hours: float
    cost: float
    cost_lower: float
    cost_upper: float

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Plan:
    """The next round of data collection for ``experiment`` toward ``target``.

    ``estimate`` is the fitted curve's answer; ``band_margin`` the factor to
    where 3 in 4 of the band's curves have reached the target; ``backtest_margin``
    the factor by which the curve's own backtest says it fell short (1: it did
    not); ``total`` the estimate times the larger margin; ``round_total`` that,
    at most :data:`~scaling_optuna.compare.plan.ROUND_REACH` × the largest
    measured size (``capped``); ``collect`` what that needs beyond the pool.
    """

    experiment: str
    target: float
    pool_size: int
    largest: int
    estimate: float
    band_margin: float
    backtest_margin: float
    total: float
    round_total: float
    capped: bool
    collect: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class TargetPart:
    """What a target test error takes: the examples each experiment needs, the ways there and their costs, the plan."""

    target: float
    needs: dict[str, DataNeeded]
    rates: Rates
    options: tuple[Option, ...]
    cheapest: str | None
    plan: Plan | None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "needs": {name: need.to_dict() for name, need in self.needs.items()},
            "rates": self.rates.to_dict(),
            "options": [o.to_dict() for o in self.options],
            "cheapest": self.cheapest,
            "plan": None if self.plan is None else self.plan.to_dict(),
            "message": self.message,
        }


def _interval(value: float, lower: float, upper: float) -> dict[str, Any]:
    return {"value": json_number(value), "lower": json_number(lower), "upper": json_number(upper)}


@dataclasses.dataclass
class ComparisonData:
    """Everything a comparison shows, as numbers; :class:`~scaling_optuna.compare.Comparison` adds its renderings.

    ``members`` are the experiments in the order given, the first the
    reference of every pair; ``shared_sizes`` the sizes every one measured
    on the same subset (equal data fingerprints).
    """

    members: tuple[Member, ...]
    pairs: tuple[Pair, ...]
    target: TargetPart | None
    storage: str
    generated_at: str
    dataset: str | None
    majority_error: float | None
    test_size: int | None
    shared_sizes: tuple[int, ...]
    warnings: list[str]
    dashboard: list[dict[str, Any]] | None = None

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def to_dict(self) -> dict[str, Any]:
        """The content of ``compare.json``: JSON-serialisable (inf as ``"inf"``, NaN as ``None``)."""
        return {
            "experiments": [m.to_dict() for m in self.members],
            "storage": self.storage,
            "generated_at": self.generated_at,
            "dataset": self.dataset,
            "majority_error": json_number(self.majority_error),
            "test_size": self.test_size,
            "shared_sizes": list(self.shared_sizes),
            "paired_differences": PAIRED_NOISE,
            "pairs": [p.to_dict() for p in self.pairs],
            "target": None if self.target is None else self.target.to_dict(),
            "warnings": list(self.warnings),
            "dashboard": self.dashboard,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)
