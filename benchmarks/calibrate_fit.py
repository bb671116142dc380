"""Derive every data-fitted constant of the fit's predictor from the calibration halves of the LCDB and neural dev curves.

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
4. **The plain law and the floor guard**, on the calibration halves of LCDB
   and of the neural dev curves (``_neural.py``), each half counted equally:
   the prediction ``mix^(1−g)·plain^g`` for ``g`` in 0 … 0.7 with the floor
   guard off and on; the pair with the smallest mean of the LCDB mean |log
   ratio| and the neural mean log-RMSE wins.
5. **Band**: the two scale models ``s_low``, ``s_high`` (features:
   ``scaling_optuna/fit/_ensemble.py``), started from the Laplace
   likelihood's fit of ``|error|`` and fitted to the 2.5 % and 97.5 %
   quantiles of the errors by the pinball loss (both halves counted equally,
   each neural curve once however many points it predicts); then the conformal
   multiplier ``k`` at every confidence from 50 % to 99.5 %: the quantile of
   ``max(−error/s_low, error/s_high)``, made to hold for new *datasets and
   tasks*: they err together, so they are resampled and each ``k`` is taken
   where 90 % of the resamples lie below it (without this, the band held 95 %
   of the calibration curves but 87–90 % of the evaluation ones).

Families with a weight below 1 % are dropped (and the rest renormalised), so
that the fit does not spend time on curves that do not count.

Run (about 20 minutes on one core)::

    python benchmarks/calibrate_fit.py [--lcdb ../shared/learning-curves/lcdb-dev.csv.gz]
        [--neural ../shared/learning-curves/neural-dev.csv.gz] [--out scaling_optuna/fit/_calibration.py] [--cache DIR]
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
import _neural  # noqa: E402

from scaling_optuna.fit import FAMILIES  # noqa: E402
from scaling_optuna.fit import fit_scaling_law  # noqa: E402
from scaling_optuna.fit._ensemble import BAND_FEATURES  # noqa: E402
from scaling_optuna.fit._ensemble import CALIBRATED  # noqa: E402
from scaling_optuna.fit._ensemble import fit_plain  # noqa: E402
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
PLAIN_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
CONFIDENCE_LEVELS = np.round(np.arange(100, 200) / 200.0, 4)  # 0.5 … 0.995
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
    parser.add_argument("--neural", type=Path, default=_neural.DEFAULT_PATH, help="neural-dev.csv.gz (default: %(default)s)")
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

    print("4. the plain law and the floor guard (calibration halves of LCDB and of the neural curves, each half counted equally)")
    neural = _neural_points(args.neural)
    print(f"   {len(neural)} neural calibration curves of {len({t.group for t, _, _ in neural})} tasks")
    settings = replace(
        CALIBRATED, weights=family_weights, size_weight_power=power, robust=robust, misfit_tilt=misfit_tilt, tilt=tilt,
        plain_weight=0.0, floor_guard=False,
    )
    cases = [(t.sizes, t.values, m, y, np.array([t.target_size]), np.array([t.truth]), "lcdb", str(t.openmlid))
             for t, m, y in points]
    cases += [(t.sizes, t.values, m, y, t.target_sizes, t.truths, "neural", t.group) for t, m, y in neural]
    fits = [fit_ensemble(m, y, settings=settings, plain=fit_plain(sizes, values)) for sizes, values, m, y, *_ in cases]
    best = None
    for guard in (False, True):
        for g in PLAIN_WEIGHTS:
            variant = replace(settings, plain_weight=g, floor_guard=guard)
            objective, lcdb_err, neural_err = _blend_objective(fits, cases, variant)
            print(f"   guard={'on ' if guard else 'off'} g={g:<4g} objective {objective:.4f}: LCDB mean |log ratio| {lcdb_err:.4f}, "
                  f"neural mean log-RMSE {neural_err:.4f}")
            if best is None or objective < best[0] - 1e-9:
                best = (objective, g, guard)
    _, plain_weight, floor_guard = best
    print(f"   chosen: g={plain_weight:g}, floor guard {'on' if floor_guard else 'off'}")

    print("5. band")
    settings = replace(settings, plain_weight=plain_weight, floor_guard=floor_guard)
    fits = [fit_ensemble(m, y, settings=settings, plain=fit_plain(sizes, values)) for sizes, values, m, y, *_ in cases]
    default_rate = float(np.median([f.backtest_rate for f in fits if f.backtest_measured]))
    x, near2, error, weight, group, source = [], [], [], [], [], []
    counts = {"lcdb": sum(c[6] == "lcdb" for c in cases), "neural": sum(c[6] == "neural" for c in cases)}
    for fit, (_, _, _, _, targets, truths, src, grp) in zip(fits, cases):
        features = fit.band_features(targets)
        if not fit.backtest_measured:
            features[:, 2] = math.log(default_rate + 0.01)
        x.append(features)
        near2.append(np.full(len(targets), fit.noise_std**2 * min(3.0 / fit.n_points, 1.0)))
        error.append(np.log(truths) - np.log(fit.mean(targets)))
        # each half counts equally, and each curve once however many points it predicts
        weight.append(np.full(len(targets), 1.0 / (counts[src] * len(targets))))
        group += [f"{src}:{grp}"] * len(targets)
        source += [src] * len(targets)
    x, near2, error, weight = map(np.concatenate, (x, near2, error, weight))
    group, source = np.array(group), np.array(source)
    print(f"   typical backtest rate {default_rate:.3g} (for curves too short to have one)")
    start = _fit_scale_model(x, near2, error, weight)
    coefs_low = _fit_side_model(x, near2, error, weight, 0.025, -1.0, start)
    coefs_high = _fit_side_model(x, near2, error, weight, 0.975, 1.0, start)
    for side, coefs in (("low", coefs_low), ("high", coefs_high)):
        print(f"   scale model θ_{side}: " + ", ".join(f"{name} {c:+.3f}" for name, c in zip(BAND_FEATURES, coefs)))
    s_low = np.sqrt(near2 + np.exp(x @ coefs_low) ** 2)
    s_high = np.sqrt(near2 + np.exp(x @ coefs_high) ** 2)
    score = np.maximum(-error / s_low, error / s_high)
    multipliers = _dataset_robust_multipliers(score, group, weight)
    k = float(np.interp(0.95, CONFIDENCE_LEVELS, multipliers))
    print(f"   over resampled datasets and tasks, {ROBUST_LEVEL:.0%} sure: 95% band = prediction ×exp(−{k:.2f}·s_low … {k:.2f}·s_high)")
    inside = score <= k
    width = k * (s_low + s_high)
    setting_of_case = list(setting_of) + [0] * len(neural)
    setting_of_point = np.concatenate([np.full(len(c[4]), st) for c, st in zip(cases, setting_of_case)])
    for fraction in SETTINGS:
        sel = setting_of_point == fraction
        print(f"   LCDB 1/{fraction}: coverage on the calibration half {inside[sel].mean():.3f}, "
              f"median width log(upper/lower) {np.median(width[sel]):.2f} (n={sel.sum()})")
    sel = source == "neural"
    print(f"   neural: coverage on the calibration half {np.sum(weight[sel] * inside[sel]) / np.sum(weight[sel]):.3f} "
          f"(each curve counted once), median width {np.median(width[sel]):.2f} (n={len(neural)} curves)")

    medians = np.median(x, axis=0)
    _write(args.out, family_weights, power, robust, misfit_tilt, tilt, plain_weight, floor_guard, coefs_low, coefs_high,
           medians, default_rate, multipliers, datasets, len(points), len(neural))
    print(f"\nwrote {args.out} in {time.monotonic() - started:.0f} s")
    return 0


def _neural_points(path):
    """(task, sizes, values) of the neural calibration curves the ensemble predicts, as ``_ensemble_points`` gives them."""
    tasks, _ = _neural.extrapolation_tasks(_neural.load_curves(path), "calibration")
    out = []
    for task in tasks:
        fit = fit_scaling_law(task.sizes, task.values, n_bootstrap=0)
        if fit._ensemble is not None:
            out.append((task, np.array(fit.sizes_used), np.array(fit.values_used)))
    return out


def _blend_objective(fits, cases, settings):
    """Half the LCDB calibration tasks' mean |log ratio| plus half the neural curves' mean log-RMSE."""
    lcdb, neural = [], []
    for fit, (_, _, _, _, targets, truths, src, _) in zip(fits, cases):
        e = np.log(replace(fit, settings=settings).mean(targets) / truths)
        (lcdb if src == "lcdb" else neural).append(math.sqrt(float(np.mean(e * e))))
    return 0.5 * np.mean(lcdb) + 0.5 * np.mean(neural), float(np.mean(lcdb)), float(np.mean(neural))


def _fit_side_model(x, near2, error, weight, level, sign, start):
    """θ of one side: ``sign·s(x)`` is the ``level`` quantile of the error (weighted pinball loss)."""

    def loss(theta):
        u = error - sign * np.sqrt(near2 + np.exp(np.clip(x @ theta, -50.0, 50.0)) ** 2)
        return float(np.sum(weight * np.maximum(level * u, (level - 1.0) * u)))

    res = optimize.minimize(loss, start, method="Nelder-Mead", options={"maxiter": 6000, "xatol": 1e-4, "fatol": 1e-10})
    return res.x


def _fit_scale_model(x, near2, error, weight):
    """θ maximising the Laplace likelihood of the errors given the scale ``s = sqrt(near² + exp(θ·x)²)``."""

    def loss(theta):
        s = np.sqrt(near2 + np.exp(np.clip(x @ theta, -50.0, 50.0)) ** 2)
        return float(np.sum(weight * (np.abs(error) / s + np.log(s))))

    start = np.zeros(x.shape[1])
    start[0], start[1] = math.log(0.1), 1.0
    res = optimize.minimize(loss, start, method="BFGS")
    res = optimize.minimize(loss, res.x, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-9})
    return res.x


def _dataset_robust_multipliers(score: np.ndarray, group: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The conformal multiplier ``k`` at each of ``CONFIDENCE_LEVELS``, made to hold for new datasets and tasks.

    ``k`` at confidence ``c`` is the weighted ``c`` quantile of the score.  The
    curves of one dataset (or one neural task) err together, so the
    calibration halves hold far fewer independent cases than curves: the
    groups are resampled with replacement (``RESAMPLES`` times) and each
    ``k`` is taken at the ``ROBUST_LEVEL`` point of its resampling
    distribution (never below the plain quantile).
    """
    rng = np.random.default_rng(0)
    ids = np.unique(group)
    members = [np.flatnonzero(group == i) for i in ids]
    draws = np.empty((RESAMPLES, len(CONFIDENCE_LEVELS)))
    for b in range(RESAMPLES):
        chosen = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        draws[b] = _weighted_quantiles(score[chosen], weight[chosen], CONFIDENCE_LEVELS)
    robust = np.maximum(np.quantile(draws, ROBUST_LEVEL, axis=0), _weighted_quantiles(score, weight, CONFIDENCE_LEVELS))
    return np.maximum.accumulate(robust)  # a higher confidence never gets a narrower band


def _weighted_quantiles(z: np.ndarray, weight: np.ndarray, levels: np.ndarray) -> np.ndarray:
    order = np.argsort(z)
    cum = np.cumsum(weight[order])
    cum = (cum - 0.5 * weight[order]) / cum[-1]
    return np.interp(levels, cum, z[order])


def _write(path, weights, power, robust, misfit_tilt, tilt, plain_weight, floor_guard, coefs_low, coefs_high, medians,
           default_rate, multipliers, datasets, n_tasks, n_neural) -> None:
    rows = []
    for i in range(0, len(multipliers), 6):
        rows.append("    " + " ".join(f"{v:.4f}," for v in multipliers[i : i + 6]))
    text = f'''"""Constants of the fit's predictor, derived from the LCDB dev curves: do not edit by hand.

Written by ``python benchmarks/calibrate_fit.py`` from the calibration half of
``lcdb-dev.csv.gz`` (datasets with an even OpenML id; the benchmark reports on
the odd ones): {n_tasks} extrapolations (settings 1/4, 1/8, 1/16) of
{datasets} datasets, and from the calibration half of ``neural-dev.csv.gz``
({n_neural} curves; the split by task is ``benchmarks/_neural.py``'s).  What each
constant means: ``scaling_optuna/fit/_ensemble.py``.
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
# The prediction is mix^(1 - PLAIN_WEIGHT) · plain^PLAIN_WEIGHT.
PLAIN_WEIGHT = {plain_weight!r}
# No family predicts below the log-log line through the last point beyond the data.
FLOOR_GUARD = {floor_guard!r}
# θ of the band's scale models below and above the mean, one per feature of _ensemble.BAND_FEATURES.
SCALE_COEFS_LOW = ({", ".join(f"{c:.4f}" for c in coefs_low)},)
SCALE_COEFS_HIGH = ({", ".join(f"{c:.4f}" for c in coefs_high)},)
# The calibration curves' median of each feature (beyond the data), what a typical band is conditioned on.
FEATURE_MEDIANS = ({", ".join(f"{c:.4f}" for c in medians)},)
# b for a curve too short for its own backtest: the calibration curves' median.
DEFAULT_BACKTEST_RATE = {round(default_rate, 5)!r}
# The conformal multiplier k of a band at each confidence: quantiles of max(−error/s_low, error/s_high).
CONFIDENCE_LEVELS = tuple(i / 200 for i in range(100, 200))
BAND_MULTIPLIERS = (
{chr(10).join(rows)}
)
CALIBRATION_DATASETS = {datasets}
CALIBRATION_CURVES = {n_tasks}
CALIBRATION_NEURAL_CURVES = {n_neural}
'''
    Path(path).write_text(text)


if __name__ == "__main__":
    sys.exit(main())
