"""Derive every data-fitted constant of the fit's predictor from the calibration half of the LCDB dev curves.

Writes ``scaling_optuna/fit/_calibration.py``.  Only datasets with an even
OpenML id are read (see ``_lcdb.py`` for the split and the protocol); the
figures of ``extrapolation_lcdb.py`` come from the other half.  The tasks are
the extrapolations of settings 1/4, 1/8 and 1/16 pooled, each fitted to the
points ``fit_scaling_law`` itself would give the ensemble (after its plateau
rule; curves that clearly rise are predicted by the law and left out).

What is chosen, in order, each printed with its figures on the calibration half:

1. **Point weights and loss**: ``(m/m_max)^p`` with ``p`` in 0, 0.5, 1, 2, and
   the squared or the soft-L1 log loss; for each, the family weights that
   minimise the mean absolute error of the weighted mean of the families'
   predictions (softmax weights, Nelder–Mead, three starts).  The smallest
   ``p`` whose error is within 1 % of the best wins (with its better loss):
   LCDB curves are means over many seeds, and a heavier weight on the largest
   sizes amplifies the noise of a single training run's curve.
2. **Misfit tilt**: the weights multiplied by ``exp(−log(rms/best)/τ)``, with
   ``rms`` a family's weighted log residual on the fitted points and ``best``
   the smallest among the families (floored at 0.1 %); τ in none, 2, 1, 0.5,
   0.25, weights refitted for each.  A sanity rule (a family that cannot
   follow the observed points should not extrapolate them: on a clean power
   law, ``ilog2`` misses the points thirty times worse than ``pow2``), so the
   strongest (smallest) τ that raises the error by at most 1 % is kept.
3. **Within-curve tilt**: the weights multiplied by ``exp(−score/τ)``, with
   ``score`` a family's mean absolute log error when the curve's own last
   points (above ``m_max/2``) are predicted from the rest; τ in none, 0.2, 0.05,
   weights refitted for each.  An accuracy device, so kept only if it lowers
   the error by at least 1 %.  Printed beside them, not used: the median of
   the families, the one family best at the backtest, and the ensemble's drop
   beyond the data damped.
4. **Band**: for ``κ`` and ``λ`` on a grid, the split-conformal quantiles of
   ``(log truth − log prediction) / s`` (see ``scaling_optuna/fit/_ensemble.py``)
   and the mean log width of the 95 % band; the narrowest wins.  Its quantile
   table (0.5 %…99.5 %) is then made to hold for new *datasets*: the curves of
   a dataset err together, so the datasets are resampled and each quantile is
   taken where 90 % of the resamples lie inside it (without this, the band
   held 95 % of the calibration curves but 87–90 % of the evaluation ones).

Families with a weight below 1 % are dropped (and the rest renormalised), so
that the fit does not spend time on curves that do not count.

Run (about 15 minutes on one core)::

    python benchmarks/calibrate_fit.py [--lcdb ../shared/learning-curves/lcdb-dev.csv.gz] [--out scaling_optuna/fit/_calibration.py] [--cache DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lcdb import DEFAULT_PATH  # noqa: E402
from _lcdb import ROOT  # noqa: E402
from _lcdb import SETTINGS  # noqa: E402
from _lcdb import extrapolation_tasks  # noqa: E402
from _lcdb import load_curves  # noqa: E402

from scaling_optuna.fit import FAMILIES  # noqa: E402
from scaling_optuna.fit import fit_scaling_law  # noqa: E402
from scaling_optuna.fit._ensemble import CALIBRATED  # noqa: E402
from scaling_optuna.fit._ensemble import backtest_errors  # noqa: E402
from scaling_optuna.fit._ensemble import fit_ensemble  # noqa: E402
from scaling_optuna.fit._ensemble import fit_members  # noqa: E402
from scaling_optuna.fit._ensemble import _MISFIT_FLOOR as MISFIT_FLOOR  # noqa: E402
from scaling_optuna.fit._families import evaluate  # noqa: E402

DEFAULT_OUT = ROOT / "scaling_optuna" / "fit" / "_calibration.py"
POWERS = (0.0, 0.5, 1.0, 2.0)
LOSSES = (None, 0.05)  # squared log loss, soft-L1 with scale 0.05
MISFIT_TILTS = (None, 2.0, 1.0, 0.5, 0.25)
TILTS = (None, 0.2, 0.05)
DRIFTS = (0.0, 0.02, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5)
GAINS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
LEVELS = np.round(np.arange(1, 200) / 200.0, 4)  # 0.005 … 0.995
MIN_WEIGHT = 0.01
RESAMPLES = 400  # dataset resamples for the band's quantiles
ROBUST_LEVEL = 0.9  # ... taken at their 90 % point on the wide side
MAX_POWER_COST = 0.01  # the smallest point-weight power within 1 % of the best error is taken
MIN_TILT_GAIN = 0.01  # a within-curve tilt must lower the mean absolute error by 1 % to be kept
MAX_MISFIT_COST = 0.01  # the misfit tilt is kept unless it raises the mean absolute error by more than 1 %


def _ensemble_points(tasks):
    """(task, sizes, values) for the tasks the ensemble predicts, with the points it is fitted to."""
    out, by_law = [], 0
    for task in tasks:
        fit = fit_scaling_law(task.sizes, task.values, n_bootstrap=0)
        if fit._ensemble is None:
            by_law += 1
            continue
        out.append((task, np.array(fit.sizes_used), np.array(fit.values_used)))
    return out, by_law


def _family_table(points, settings):
    """Per task and family: the prediction at the target, the backtest score and the in-sample rms (NaN: not fitted)."""
    n, k = len(points), len(FAMILIES)
    pred, score, rms = np.full((n, k), np.nan), np.full((n, k), np.nan), np.full((n, k), np.nan)
    for i, (task, m, y) in enumerate(points):
        fitted = fit_members(m, y, settings, FAMILIES)
        errors, _, _ = backtest_errors(m, y, settings, FAMILIES)
        point_w = (m / m[-1]) ** settings.size_weight_power
        for j, name in enumerate(FAMILIES):
            if name in fitted:
                pred[i, j] = evaluate(name, fitted[name], np.array([task.target_size]), m_ref=m[-1])[0]
                r = np.log(y) - np.log(np.maximum(evaluate(name, fitted[name], m, m_ref=m[-1]), 1e-300))
                rms[i, j] = math.sqrt(float(np.sum(point_w * r * r) / np.sum(point_w)))
            if name in errors:
                score[i, j] = float(np.mean(np.abs(errors[name])))
    return pred, score, rms


def _cached_table(cache, power, robust, points, settings):
    """The family table, read from ``cache`` when an earlier run wrote it for the same tasks."""
    if cache is None:
        return _family_table(points, settings)
    path = Path(cache) / f"table-p{power:g}-{'soft' if robust else 'sq'}-n{len(points)}.npz"
    if path.is_file():
        with np.load(path) as f:
            return f["pred"], f["score"], f["rms"]
    table = _family_table(points, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, pred=table[0], score=table[1], rms=table[2])
    return table


def _combine(weights, table, misfit_tilt=None, tilt=None):
    """The ensemble's prediction per task, as ``fit_ensemble`` makes it (families without a fit left out)."""
    w = _member_weights(weights, table, misfit_tilt, tilt)
    return (w * np.nan_to_num(table[0], nan=0.0)).sum(axis=1)


def _member_weights(weights, table, misfit_tilt=None, tilt=None):
    """Per task, each family's weight in the ensemble (0 for a family without a fit; rows sum to 1)."""
    pred, score, rms = table
    w = np.where(np.isfinite(pred), weights[None, :], 0.0)
    active = w > 0
    if misfit_tilt:
        floored = np.maximum(np.where(active & np.isfinite(rms), rms, np.inf), MISFIT_FLOOR)
        best = floored.min(axis=1, keepdims=True)
        misfit = np.maximum(np.log(np.where(active, floored, best) / best), 0.0)
        w = w * np.exp(-misfit / misfit_tilt)
    if tilt:
        finite = active & np.isfinite(score)
        best = np.where(finite, score, np.inf).min(axis=1, keepdims=True)
        best = np.where(np.isfinite(best), best, 0.0)
        w = w * np.where(finite, np.exp(-(np.where(finite, score, 0.0) - best) / tilt), 1.0)
    return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)


def _fit_weights(table, truth, misfit_tilt=None, tilt=None):
    k = table[0].shape[1]

    def objective(z):
        w = np.exp(z - z.max())
        return float(np.mean(np.abs(_combine(w / w.sum(), table, misfit_tilt, tilt) - truth)))

    best = None
    for start in range(3):
        z0 = np.random.default_rng(start).normal(scale=0.1, size=k)
        res = optimize.minimize(objective, z0, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-8})
        if best is None or res.fun < best.fun:
            best = res
    w = np.exp(best.x - best.x.max())
    w = w / w.sum()
    w = np.where(w >= MIN_WEIGHT, w, 0.0)
    return w / w.sum()


def _metrics(pred, truth):
    with np.errstate(divide="ignore"):
        lr = np.abs(np.log(pred / truth))
    return 100 * np.mean(np.abs(pred - truth)), float(np.median(lr)), float(np.mean(lr < math.log(1.2)))


def _fmt(metrics):
    return f"MAE {metrics[0]:.2f} pts, median |log ratio| {metrics[1]:.3f}, within 20% {metrics[2]:.1%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lcdb", type=Path, default=DEFAULT_PATH, help="lcdb-dev.csv.gz (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the constants module to write (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="a quick check: only the first N tasks of each setting")
    parser.add_argument("--cache", type=Path, help="keep the family fits here and reuse them (the fitting code must not have changed)")
    args = parser.parse_args(argv)
    started = time.monotonic()

    curves = load_curves(args.lcdb)
    points, setting_of = [], []
    for fraction in SETTINGS:
        tasks, zero = extrapolation_tasks(curves, fraction, "calibration")
        tasks = tasks[: args.limit] if args.limit else tasks
        pts, by_law = _ensemble_points(tasks)
        print(f"setting 1/{fraction}: {len(tasks)} calibration tasks ({zero} curves left out for a zero error), "
              f"{by_law} predicted by the law (the curve rises, or too few points), {len(pts)} for the ensemble")
        points += pts
        setting_of += [fraction] * len(pts)
    setting_of = np.array(setting_of)
    truth = np.array([task.truth for task, _, _ in points])
    datasets = len({task.openmlid for task, _, _ in points})
    print(f"{len(points)} tasks from {datasets} datasets\n")

    print("1. point weights and loss (weights refitted for each; calibration half, settings pooled)")
    tables, results = {}, {}
    for power in POWERS:
        for robust in LOSSES:
            settings = replace(CALIBRATED, size_weight_power=power, robust=robust, misfit_tilt=None, tilt=None)
            table = _cached_table(args.cache, power, robust, points, settings)
            weights = _fit_weights(table, truth)
            metrics = _metrics(_combine(weights, table), truth)
            tables[power, robust], results[power, robust] = table, (metrics, weights)
            named = ", ".join(f"{n} {w:.2f}" for n, w in zip(FAMILIES, weights) if w > 0)
            print(f"   p={power:<4g} loss={'soft-L1 0.05' if robust else 'squared':<13} {_fmt(metrics)}   [{named}]")
    # LCDB curves are means over up to 125 seeds, far smoother than one training run: the weight on the
    # largest sizes, which amplifies their noise, is taken no heavier than the calibration half demands.
    best_error = min(r[0][0] for r in results.values())
    power, robust = min((key for key in results if results[key][0][0] <= (1.0 + MAX_POWER_COST) * best_error),
                        key=lambda key: (key[0], results[key][0][0]))
    table = tables[power, robust]
    pred, score, _ = table
    print(f"   chosen: p={power:g}, {'soft-L1 0.05' if robust else 'squared'} loss")
    for j, name in enumerate(FAMILIES):
        ok = np.isfinite(pred[:, j])
        print(f"      {name:<9} alone: {_fmt(_metrics(pred[ok, j], truth[ok]))} (fitted on {ok.mean():.0%} of tasks)")

    print("2. misfit tilt: weights ×exp(−log(rms / best rms) / tau)")
    misfit_results = {}
    for misfit_tilt in MISFIT_TILTS:
        weights = _fit_weights(table, truth, misfit_tilt)
        misfit_results[misfit_tilt] = (_metrics(_combine(weights, table, misfit_tilt), truth), weights)
        print(f"   tau={misfit_tilt!s:<5} {_fmt(misfit_results[misfit_tilt][0])}")
    # A sanity rule, not an accuracy device: the strongest tilt that costs at most 1 % of the error.
    affordable = [t for t in MISFIT_TILTS if t and misfit_results[t][0][0] <= (1.0 + MAX_MISFIT_COST) * misfit_results[None][0][0]]
    misfit_tilt = min(affordable) if affordable else None
    print(f"   chosen: tau={misfit_tilt}")

    print("3. within-curve tilt: weights ×exp(−(backtest score − best) / tau)")
    tilt_results = {}
    for tilt in TILTS:
        weights = _fit_weights(table, truth, misfit_tilt, tilt)
        tilt_results[tilt] = (_metrics(_combine(weights, table, misfit_tilt, tilt), truth), weights)
        print(f"   tau={tilt!s:<5} {_fmt(tilt_results[tilt][0])}")
    print("   measured, not used:")
    with np.errstate(invalid="ignore"):
        print(f"   median of the fitted families       {_fmt(_metrics(np.nanmedian(pred, axis=1), truth))}")
    finite = np.isfinite(score) & np.isfinite(pred)
    pick = np.argmin(np.where(finite, score, np.inf), axis=1)
    print(f"   the family best at the backtest     {_fmt(_metrics(pred[np.arange(len(pred)), pick], truth))}")
    last = np.array([y[-1] for _, _, y in points])
    ensemble = _combine(tilt_results[None][1], table, misfit_tilt)
    for damping in (0.8, 0.9):
        damped = np.exp(np.log(last) + damping * (np.log(ensemble) - np.log(last)))
        print(f"   log-drop beyond the data ×{damping:g}        {_fmt(_metrics(damped, truth))}")
    # A tilt makes every fit depend on its own backtest: worth it only for a clear gain.
    tilt = min(tilt_results, key=lambda key: tilt_results[key][0][0])
    if tilt_results[tilt][0][0] > (1.0 - MIN_TILT_GAIN) * tilt_results[None][0][0]:
        tilt = None
    weights = tilt_results[tilt][1]
    family_weights = {n: round(float(w), 3) for n, w in zip(FAMILIES, weights) if w > 0}
    print(f"   chosen: tau={tilt}; weights {family_weights}")

    print("4. band")
    settings = replace(
        CALIBRATED, weights=family_weights, size_weight_power=power, robust=robust, misfit_tilt=misfit_tilt, tilt=tilt,
        drift=0.0, backtest_gain=0.0,
    )
    log_mean, base, beyond, rate = [], [], [], []
    for task, m, y in points:
        ens = fit_ensemble(m, y, settings=settings)
        target = np.array([task.target_size])
        log_mean.append(math.log(ens.mean(target)[0]))
        base.append(ens.scale(target)[0])
        beyond.append(math.log(task.target_size / ens.m_ref))
        rate.append(ens.backtest_rate if ens.backtest_measured else math.nan)
    log_mean, base, beyond, rate = map(np.array, (log_mean, base, beyond, rate))
    default_rate = float(np.nanmedian(rate))
    rate = np.where(np.isfinite(rate), rate, default_rate)
    error = np.log(truth) - log_mean
    print(f"   point estimate: {_fmt(_metrics(np.exp(log_mean), truth))}; "
          f"typical backtest rate {default_rate:.3g} (for curves too short to have one)")
    best = None
    for drift in DRIFTS:
        for gain in GAINS:
            s = np.sqrt(base**2 + beyond**2 * (drift**2 + (gain * rate) ** 2))
            if np.any(s <= 0):
                continue
            z = error / s
            q = np.quantile(z, LEVELS)
            lo, hi = np.interp([0.025, 0.975], LEVELS, q)
            width = float(np.mean((hi - lo) * s))
            if best is None or width < best[0]:
                best = (width, drift, gain, q, lo, hi, s)
    width, drift, gain, q, lo, hi, s = best
    print(f"   chosen: kappa={drift:g}, lambda={gain:g}: 95% band = prediction ×exp({lo:.2f}·s … {hi:.2f}·s), "
          f"mean log width {width:.3f} (×{math.exp(width):.2f} from lower to upper edge)")
    z = error / s
    q = _dataset_robust_quantiles(z, np.array([task.openmlid for task, _, _ in points]))
    lo, hi = np.interp([0.025, 0.975], LEVELS, q)
    print(f"   over resampled datasets, {ROBUST_LEVEL:.0%} sure: 95% band = prediction ×exp({lo:.2f}·s … {hi:.2f}·s), "
          f"mean log width {float(np.mean((hi - lo) * s)):.3f}")
    for fraction in SETTINGS:
        sel = setting_of == fraction
        inside = (z[sel] >= lo) & (z[sel] <= hi)
        print(f"   1/{fraction}: coverage on the calibration half {inside.mean():.3f} (n={sel.sum()})")

    _write(args.out, family_weights, power, robust, misfit_tilt, tilt, drift, gain, default_rate, q, datasets, len(points))
    print(f"\nwrote {args.out} in {time.monotonic() - started:.0f} s")
    return 0


def _dataset_robust_quantiles(z: np.ndarray, dataset: np.ndarray) -> np.ndarray:
    """Quantiles of ``z`` that hold for new datasets, not just new curves of the same datasets.

    The curves of one dataset err together, so the calibration half holds far
    fewer independent cases than curves.  The datasets are resampled with
    replacement (``RESAMPLES`` times); each level's quantile is taken at the
    ``ROBUST_LEVEL`` point of its resampling distribution, on the wide side
    (lower tail lower, upper tail higher; the median as it is).
    """
    rng = np.random.default_rng(0)
    ids = np.unique(dataset)
    members = [np.flatnonzero(dataset == i) for i in ids]
    draws = np.empty((RESAMPLES, len(LEVELS)))
    for b in range(RESAMPLES):
        chosen = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        draws[b] = np.quantile(z[chosen], LEVELS)
    wide_low = np.quantile(draws, 1.0 - ROBUST_LEVEL, axis=0)
    wide_high = np.quantile(draws, ROBUST_LEVEL, axis=0)
    plain = np.quantile(z, LEVELS)
    return np.where(LEVELS < 0.5, np.minimum(wide_low, plain), np.where(LEVELS > 0.5, np.maximum(wide_high, plain), plain))


def _write(path, weights, power, robust, misfit_tilt, tilt, drift, gain, default_rate, quantiles, datasets, n_tasks) -> None:
    rows = []
    for i in range(0, len(quantiles), 6):
        rows.append("    " + " ".join(f"{v:.4f}," for v in quantiles[i : i + 6]))
    text = f'''"""Constants of the fit's predictor, derived from the LCDB dev curves: do not edit by hand.

Written by ``python benchmarks/calibrate_fit.py`` from the calibration half of
``lcdb-dev.csv.gz`` (datasets with an even OpenML id; the benchmark reports on
the odd ones): {n_tasks} extrapolations (settings 1/4, 1/8, 1/16) of
{datasets} datasets.  What each constant means: ``scaling_optuna/fit/_ensemble.py``.
"""

# Families and their weights in the ensemble mean.
FAMILY_WEIGHTS = {weights!r}
# Points weighted by (m / m_max) ** SIZE_WEIGHT_POWER.
SIZE_WEIGHT_POWER = {power!r}
# Soft-L1 scale of the log loss (None: squared loss).
ROBUST_SCALE = {robust!r}
# Weights multiplied by exp(-log(rms / best rms) / MISFIT_TILT) (None: no such tilt).
MISFIT_TILT = {misfit_tilt!r}
# Within-curve tilt of the weights, exp(-score / BACKTEST_TILT) (None: no tilt).
BACKTEST_TILT = {tilt!r}
# The band's log scale grows with the log distance beyond the data at sqrt(DRIFT² + (BACKTEST_GAIN·b)²).
DRIFT = {drift!r}
BACKTEST_GAIN = {gain!r}
# b for a curve too short for its own backtest: the calibration curves' median.
DEFAULT_BACKTEST_RATE = {round(default_rate, 5)!r}
# Quantiles of (log truth − log prediction) / s over the calibration extrapolations.
SCORE_QUANTILE_LEVELS = tuple(i / 200 for i in range(1, 200))
SCORE_QUANTILES = (
{chr(10).join(rows)}
)
CALIBRATION_DATASETS = {datasets}
CALIBRATION_CURVES = {n_tasks}
'''
    Path(path).write_text(text)


if __name__ == "__main__":
    sys.exit(main())
