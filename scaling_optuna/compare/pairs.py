"""One experiment set against another: paired differences, the data-equivalent factor, where the curves cross.

* **Paired differences** at the sizes both measured on the same subset: the
  other's test error less the reference's, each the mean over its runs.  The
  interval adds the noise of each point as the report measures it (its runs'
  spread, the choice among configurations) *less the test set's binomial
  part*, and puts back only the test-set noise a shared test set cannot
  cancel: McNemar's variance ``|Δ|(1 − |Δ|)/n`` at the fewest test examples
  on which two error rates ``Δ`` apart must disagree.  Disagreements beyond
  those are the kind two seeds of one model also have, which the runs'
  spread already measures.
* **Data-equivalent factor** ``k`` (:func:`factors`): the other with ``m``
  examples matches the reference with ``k·m``, from inverting the
  reference's curve at the other's error; its interval from drawing both
  curves from their bands (:mod:`~scaling_optuna.compare.draws`).  For the
  pair each curve is refitted (:func:`paired_fit`) with its points' noise
  treated as the differences treat it: the shared test set moves both curves
  alike, so its binomial part leaves each point, and half the McNemar
  variance of the difference at that size joins each.  The curves' own
  bands (the report's, which the figure shows) hold the test set's noise in
  full: they say where each model's error lies on new data.
* **Crossing** (:func:`crossing`): where the mean curves cross between the
  smallest size both fitted and 10× the largest measured one, with the
  interval of where the drawn curves cross, called significant only when
  each side has sizes where one curve is below the other beyond their bands.

Example::

    from scaling_optuna.compare.pairs import compare_pair

    pair = compare_pair(reference_member, other_member, test_size=359, plateau=0.9, n_draws=4000, seed=0)
    print(pair.factor_at(2), pair.crossing.message)
"""

from __future__ import annotations

import math

import numpy as np

from scaling_optuna.compare.draws import Band
from scaling_optuna.compare.draws import Z95
from scaling_optuna.compare.draws import first_reach
from scaling_optuna.compare.draws import normal_draws
from scaling_optuna.compare.draws import search_grid
from scaling_optuna.compare.records import Crossing
from scaling_optuna.compare.records import Difference
from scaling_optuna.compare.records import Factor
from scaling_optuna.compare.records import Member
from scaling_optuna.compare.records import Pair
from scaling_optuna.errors import UserError
from scaling_optuna.fit import ScalingLawFit
from scaling_optuna.fit import fit_scaling_law
from scaling_optuna.report import count

__all__ = ["CROSSING_REACH", "MULTIPLES", "compare_pair", "crossing", "differences", "factors", "paired_fit"]

MULTIPLES = (2, 10)
# How far beyond the largest measured size a crossing still counts as "near the data" (the plots' reach).
CROSSING_REACH = 10
_CROSSING_POINTS_PER_DECADE = 48


def compare_pair(
    reference: Member, other: Member, *, test_size: int | None, plateau: float | None, n_draws: int, seed: int, n_bootstrap: int = 1000
) -> Pair:
    """``other`` against ``reference``: differences where both measured, and factors and crossing where both fitted."""
    diffs = differences(reference, other, test_size)
    if reference.fit is None or other.fit is None:
        missing = reference if reference.fit is None else other
        return Pair(reference.name, other.name, diffs, (), None, f"no curve for {missing.name} ({missing.curve.message})")
    options = dict(test_size=test_size, plateau=plateau, n_bootstrap=n_bootstrap, seed=seed)
    ref_fit, other_fit = paired_fit(reference, other, **options), paired_fit(other, reference, **options)
    z_ref, z_other = normal_draws(n_draws, seed)
    sizes = sorted(set(other_fit.sizes_used))
    largest = max(reference.largest, other.largest)
    at = [(float(s), None) for s in sizes] + [(float(k * largest), float(k)) for k in MULTIPLES]
    found = factors(ref_fit, other_fit, at, z_ref, z_other)
    cross = crossing((reference.name, ref_fit), (other.name, other_fit), largest, z_ref, z_other)
    return Pair(reference.name, other.name, diffs, found, cross)


def paired_fit(
    member: Member, other: Member, *, test_size: int | None, plateau: float | None, n_bootstrap: int, seed: int
) -> ScalingLawFit:
    """``member``'s curve refitted for its pair with ``other``: at each size both measured, its point's noise less the
    shared test set's binomial part plus half the McNemar variance of the difference there (its own fit on failure)."""
    theirs = _points(other)
    sds = []
    for size, value, sd in zip(member.curve.sizes, member.curve.values, member.curve.value_sd):
        if size not in theirs or not test_size:
            sds.append(sd)
            continue
        delta = abs(theirs[size][0] - value)
        sds.append(math.sqrt(_without_test_set(value, sd, test_size) + delta * (1.0 - delta) / test_size / 2.0))
    value_sd = sds if any(s > 0 for s in sds) else None
    try:
        return fit_scaling_law(member.curve.sizes, member.curve.values, plateau=plateau, value_sd=value_sd, n_bootstrap=n_bootstrap, seed=seed)
    except UserError:
        return member.fit


def differences(reference: Member, other: Member, test_size: int | None) -> tuple[Difference, ...]:
    """The paired difference ``other − reference`` at every size both measured (same fingerprint, checked on load)."""
    ref, oth = _points(reference), _points(other)
    out = []
    for size in sorted(set(ref) & set(oth)):
        (a, a_sd, a_runs), (b, b_sd, b_runs) = ref[size], oth[size]
        delta = b - a
        shared = abs(delta) * (1.0 - abs(delta)) / test_size if test_size else 0.0
        sd = math.sqrt(_without_test_set(a, a_sd, test_size) + _without_test_set(b, b_sd, test_size) + shared)
        out.append(Difference(size, a, b, a_runs, b_runs, delta, delta - Z95 * sd, delta + Z95 * sd))
    return tuple(out)


def _points(member: Member) -> dict[int, tuple[float, float, int]]:
    """Each size's test error (the chosen configuration's mean), its standard error (NaN: unknown) and its runs."""
    sds = dict(zip(member.curve.sizes, member.curve.value_sd))
    out = {}
    for row in member.rows:
        best = row.best
        if best is None or best.test_error is None or not math.isfinite(best.test_error):
            continue
        out[row.size] = (float(best.test_error), float(sds.get(row.size, math.nan)), best.runs)
    return out


def _without_test_set(value: float, sd: float, test_size: int | None) -> float:
    """A point's variance less the test set's binomial part (which a shared test set handles on its own)."""
    binomial = value * (1.0 - value) / test_size if test_size else 0.0
    return max(sd * sd - binomial, 0.0)


def factors(
    reference: ScalingLawFit, other: ScalingLawFit, at: list[tuple[float, float | None]], z_ref: np.ndarray, z_other: np.ndarray
) -> tuple[Factor, ...]:
    """The data-equivalent factor at each ``(size, multiple)`` of ``at``, its interval from the paired draws ``z``."""
    grid = search_grid(reference)
    ref_band = Band.of(reference, grid)
    ref_curves = np.vstack([ref_band.log_mean, ref_band.draw(z_ref)])
    other_band = Band.of(other, np.array([s for s, _ in at]))
    levels = np.vstack([other_band.log_mean, other_band.draw(z_other)])
    out = []
    for i, (size, multiple) in enumerate(at):
        reach, at_start = first_reach(grid, ref_curves, levels[:, i])
        k = reach / size
        # Observed draws, not interpolated ones: a share of draws that never get there makes an edge inf.
        lower, upper = np.quantile(k[1:], [0.025, 0.975], method="inverted_cdf")
        floor = grid[0] / size
        out.append(Factor(size, multiple, float(k[0]), float(lower), float(upper), bool(at_start[0]), bool(lower <= floor * (1 + 1e-9))))
    return tuple(out)


def crossing(
    reference: tuple[str, ScalingLawFit], other: tuple[str, ScalingLawFit], largest: float, z_ref: np.ndarray, z_other: np.ndarray
) -> Crossing:
    """Where two named curves cross between the smallest size both fitted and 10× the ``largest`` measured one."""
    (ref_name, ref_fit), (other_name, other_fit) = reference, other
    start = max(min(ref_fit.sizes_used), min(other_fit.sizes_used))
    end = CROSSING_REACH * largest
    grid = np.geomspace(start, end, int(math.ceil(math.log10(end / start) * _CROSSING_POINTS_PER_DECADE)) + 2)
    ref_band, other_band = Band.of(ref_fit, grid), Band.of(other_fit, grid)
    mean_gap = other_band.log_mean - ref_band.log_mean  # below 0: the other is better
    gaps = other_band.draw(z_other) - ref_band.draw(z_ref)
    low, high = np.quantile(gaps, [0.025, 0.975], axis=0)
    other_better, ref_better = high < 0, low > 0
    where = _first_sign_change(mean_gap[None, :])[0]
    drawn = _first_sign_change(gaps)
    crossed = drawn[drawn >= 0]
    share = len(crossed) / len(drawn)
    lower, upper = (float(v) for v in np.quantile(grid[crossed], [0.025, 0.975], method="inverted_cdf")) if len(crossed) else (math.nan, math.nan)
    names = (ref_name, other_name)
    if where < 0:
        better = names[1] if mean_gap[-1] < 0 else names[0]
        message = _no_crossing(better, grid, other_better if better == names[1] else ref_better)
        return Crossing(start, end, None, lower, upper, share, False, better, better, message)
    before = names[1] if mean_gap[where - 1] < 0 else names[0]
    after = names[0] if before == names[1] else names[1]
    before_sig = (other_better if before == names[1] else ref_better)[:where].any()
    after_sig = (other_better if after == names[1] else ref_better)[where:].any()
    significant = bool(before_sig and after_sig)
    size = float(grid[where])
    message = _crossing_words(size, lower, upper, before, after, significant)
    return Crossing(start, end, size, lower, upper, share, significant, before, after, message)


def _first_sign_change(gaps: np.ndarray) -> np.ndarray:
    """Per row, the first index where the gap's sign differs from the row's first (−1: none)."""
    signs = np.sign(gaps)
    changed = signs != signs[:, :1]
    return np.where(changed.any(axis=1), np.argmax(changed, axis=1), -1)


def _no_crossing(better: str, grid: np.ndarray, significant: np.ndarray) -> str:
    span = f"from {count(grid[0])} to {count(grid[-1])} examples"
    if not significant.any():
        return f"the curves do not cross {span}; {better}'s is lower throughout, but never beyond the bands: no significant difference"
    where = grid[significant]
    return (
        f"the curves do not cross {span}: {better} is better throughout, "
        f"significantly from {count(where[0])} to {count(where[-1])} examples"
    )


def _crossing_words(size: float, lower: float, upper: float, before: str, after: str, significant: bool) -> str:
    shown = f"about {count(size)} examples" + (f" (95% interval {count(lower)}–{count(upper)})" if math.isfinite(lower) else "")
    if significant:
        return f"the curves cross at {shown}: {before} is better below it, {after} past it, each significantly somewhere"
    return (
        f"the fitted curves cross at {shown}, and {after} is lower past it, but on at least one side the difference "
        "stays within the bands: no significant crossover"
    )
