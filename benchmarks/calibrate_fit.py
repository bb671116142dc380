"""Derive every data-fitted constant of the fit's predictor from the calibration halves of the LCDB and neural dev curves.

Writes ``scaling_optuna/fit/_calibration.py``.  Only datasets with an even
OpenML id are read (see ``_lcdb.py`` for the split and the protocol); the
figures of ``extrapolation_lcdb.py`` come from the other half.  The tasks are
the extrapolations of settings 1/4, 1/8 and 1/16 pooled, each fitted to the
points ``fit_scaling_law`` itself would give the ensemble (after its plateau
rule; curves it predicts by the law are left out).  Every prediction here is
made by the package's own functions (``fit_members``, ``member_weights``,
``fit_ensemble``, ``fit_band``), so the constants describe the code that ships.

What is chosen, in order, each printed with its figures on the calibration half:

1. **Point weights and loss**: ``(m/m_max)^p`` with ``p`` in 0, 0.5, 1, 2, and
   the squared or the soft-L1 log loss; for each, the family weights that
   minimise the mean absolute error of the weighted mean of the families'
   predictions (softmax weights, Nelder–Mead, three starts).  The smallest
   ``p`` whose error is within 1 % of the best wins (with its better loss):
   LCDB curves are means over many seeds, and a heavier weight on the largest
   sizes amplifies the noise of a single training run's curve.
2. **Misfit tilt**: the weights multiplied by ``exp(−log(rms/best)/τ)``, with
   ``rms`` a family's weighted log residual on the fitted points; τ in none,
   2, 1, 0.5, 0.25, weights refitted for each.  A sanity rule (a family that
   cannot follow the observed points should not extrapolate them), so the
   strongest τ that raises the error by at most 1 % is kept.
3. **The plain law and the floor guard**, on the calibration halves of LCDB
   and of the neural dev curves (``_neural.py``), each half counted equally:
   the prediction ``mix^(1−g)·plain^g`` for ``g`` in 0 … 0.7 with the floor
   guard off and on; the pair with the smallest mean of the LCDB mean |log
   ratio| and the neural mean log-RMSE wins.
4. **Band**: the two scale models ``s_low``, ``s_high`` (features:
   ``scaling_optuna/fit/_band.py``), started from the Laplace likelihood's fit
   of ``|error|`` and fitted to the 2.5 % and 97.5 % quantiles of the errors
   by the pinball loss (both halves counted equally, each neural curve once);
   then the conformal multiplier ``k`` at every confidence from 50 % to 99.5 %:
   the quantile of ``max(−error/s_low, error/s_high)``, made to hold for new
   *datasets and tasks*: they err together, so they are resampled and each
   ``k`` is taken where 90 % of the resamples lie below it.
5. **Noise gain**: the calibration curves with noise of a known log sd
   (0.03, 0.1, 0.25) added to every point, refitted; how far the prediction
   moves, inside the data and at 2×, 4× and 10×, in units of the sd of a
   weighted log-log line through the points (``_noise.PointNoise``).  A gain
   is the 95 % quantile of that ratio over 1.96, so that the band's noise
   term holds 95 % of the moves: one inside the data, one beyond it (the
   largest of 2×, 4×, 10×).

Families with a weight below 1 % are dropped (and the rest renormalised).
Last, the probe (``scaling_optuna/fit/_probe.py``): what the code computes
with these constants on fixed curves, which a test compares with the code.

Run (about 20 minutes on one core; ``--limit N``: the first N tasks of each setting, a smoke run)::

    python benchmarks/calibrate_fit.py [--lcdb ../shared/learning-curves/lcdb-dev.csv.gz]
        [--neural ../shared/learning-curves/neural-dev.csv.gz] [--out scaling_optuna/fit/_calibration.py]
        [--limit N] [--cache DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _neural  # noqa: E402
from _lcdb import DEFAULT_PATH  # noqa: E402
from _lcdb import ROOT  # noqa: E402
from _lcdb import SETTINGS  # noqa: E402
from _lcdb import extrapolation_tasks  # noqa: E402
from _lcdb import load_curves  # noqa: E402

from scaling_optuna.fit import FAMILIES  # noqa: E402
from scaling_optuna.fit import fit_scaling_law  # noqa: E402
from scaling_optuna.fit._band import CALIBRATED_BAND  # noqa: E402
from scaling_optuna.fit._band import FEATURES  # noqa: E402
from scaling_optuna.fit._band import BandSettings  # noqa: E402
from scaling_optuna.fit._band import fit_band  # noqa: E402
from scaling_optuna.fit._ensemble import CALIBRATED  # noqa: E402
from scaling_optuna.fit._ensemble import Settings  # noqa: E402
from scaling_optuna.fit._ensemble import fit_ensemble  # noqa: E402
from scaling_optuna.fit._ensemble import fit_members  # noqa: E402
from scaling_optuna.fit._ensemble import fit_plain  # noqa: E402
from scaling_optuna.fit._ensemble import member_weights  # noqa: E402
from scaling_optuna.fit._ensemble import misfit  # noqa: E402
from scaling_optuna.fit._ensemble import weighted_rms  # noqa: E402
from scaling_optuna.fit._noise import PointNoise  # noqa: E402
from scaling_optuna.fit._probe import probe  # noqa: E402

DEFAULT_OUT = ROOT / "scaling_optuna" / "fit" / "_calibration.py"
NAMES = tuple(FAMILIES)
POWERS = (0.0, 0.5, 1.0, 2.0)
LOSSES = (None, 0.05)  # squared log loss, soft-L1 with scale 0.05
MISFIT_TILTS = (None, 2.0, 1.0, 0.5, 0.25)
PLAIN_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
CONFIDENCE_LEVELS = np.arange(100, 200) / 200.0  # 0.5 … 0.995, as _calibration.py writes them
NOISE_LEVELS = (0.03, 0.1, 0.25)
MIN_WEIGHT = 0.01
RESAMPLES = 400  # dataset resamples for the band's quantiles
ROBUST_LEVEL = 0.9  # ... taken at their 90 % point on the wide side
MAX_POWER_COST = 0.01  # the smallest point-weight power within 1 % of the best error is taken
MAX_MISFIT_COST = 0.01  # the misfit tilt is kept unless it raises the mean absolute error by more than 1 %


@dataclass(frozen=True)
class Case:
    """One extrapolation: all its points, the ones the ensemble is fitted to, what it predicts."""

    source: str  # "lcdb" or "neural"
    group: str  # the dataset or neural task: cases of one group err together
    sizes: np.ndarray
    values: np.ndarray
    m: np.ndarray
    y: np.ndarray
    targets: np.ndarray
    truths: np.ndarray
    setting: int = 0  # LCDB's 1/setting


def ensemble_cases(tasks, source: str) -> tuple[list[Case], int]:
    """The tasks the ensemble predicts, with the points ``fit_scaling_law`` fits it to; and how many the law predicts."""
    out, by_law = [], 0
    for task, group, targets, truths, setting in tasks:
        fit = fit_scaling_law(task.sizes, task.values, n_bootstrap=0)
        if getattr(fit.predictor, "ensemble", None) is None:
            by_law += 1
            continue
        out.append(Case(source, group, task.sizes, task.values, np.array(fit.sizes_used), np.array(fit.values_used),
                        np.asarray(targets, float), np.asarray(truths, float), setting))
    return out, by_law


def load_cases(args: argparse.Namespace) -> tuple[list[Case], list[Case]]:
    curves = load_curves(args.lcdb)
    lcdb: list[Case] = []
    for fraction in SETTINGS:
        tasks, zero = extrapolation_tasks(curves, fraction, "calibration")
        tasks = tasks[: args.limit] if args.limit else tasks
        cases, by_law = ensemble_cases([(t, str(t.openmlid), [t.target_size], [t.truth], fraction) for t in tasks], "lcdb")
        print(f"setting 1/{fraction}: {len(tasks)} calibration tasks ({zero} curves left out for a zero error), "
              f"{by_law} predicted by the law (the curve rises, or too few points), {len(cases)} for the ensemble")
        lcdb += cases
    tasks, _ = _neural.extrapolation_tasks(_neural.load_curves(args.neural), "calibration")
    tasks = tasks[: args.limit] if args.limit else tasks
    neural, _ = ensemble_cases([(t, t.group, t.target_sizes, t.truths, 0) for t in tasks], "neural")
    print(f"{len(lcdb)} LCDB tasks from {len({c.group for c in lcdb})} datasets; "
          f"{len(neural)} neural curves of {len({c.group for c in neural})} tasks\n")
    return lcdb, neural


# -- 1 and 2: the family weights -------------------------------------------------


def family_table(cases: list[Case], settings: Settings, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Per LCDB task and family: the prediction at the target and the weighted rms on the points (NaN: not fitted)."""
    path = None if cache is None else cache / f"table-p{settings.size_weight_power:g}-{settings.robust}-n{len(cases)}.npz"
    if path is not None and path.is_file():
        with np.load(path) as f:
            return f["pred"], f["rms"]
    pred, rms = np.full((len(cases), len(NAMES)), np.nan), np.full((len(cases), len(NAMES)), np.nan)
    for i, case in enumerate(cases):
        for name, params in fit_members(case.m, case.y, settings, NAMES).items():
            j = NAMES.index(name)
            pred[i, j] = FAMILIES[name].evaluate(params, case.targets, m_ref=case.m[-1])[0]
            rms[i, j] = weighted_rms(case.m, case.y, name, params, settings)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, pred=pred, rms=rms)
    return pred, rms


def combine(weights: np.ndarray, table: tuple[np.ndarray, np.ndarray], settings: Settings) -> np.ndarray:
    """The ensemble's mix per task, weighted exactly as ``fit_ensemble`` weights it."""
    pred, rms = table
    prior = np.where(np.isfinite(pred), weights[None, :], 0.0)
    w = member_weights(prior, misfit(np.where(np.isfinite(pred), rms, np.inf)), settings)
    return (w * np.nan_to_num(pred, nan=0.0)).sum(axis=1)


def fit_weights(table, truth: np.ndarray, settings: Settings) -> np.ndarray:
    """The family weights (softmax, Nelder–Mead, three starts) that minimise the mean absolute error."""

    def objective(z):
        w = np.exp(z - z.max())
        return float(np.mean(np.abs(combine(w / w.sum(), table, settings) - truth)))

    runs = [optimize.minimize(objective, np.random.default_rng(s).normal(scale=0.1, size=len(NAMES)), method="Nelder-Mead",
                              options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-8}) for s in range(3)]
    best = min(runs, key=lambda r: r.fun)
    w = np.exp(best.x - best.x.max())
    w = np.where(w / w.sum() >= MIN_WEIGHT, w / w.sum(), 0.0)
    return w / w.sum()


def metrics(pred: np.ndarray, truth: np.ndarray) -> str:
    with np.errstate(divide="ignore"):
        lr = np.abs(np.log(pred / truth))
    return (f"MAE {100 * np.mean(np.abs(pred - truth)):.2f} pts, median |log ratio| {np.median(lr):.3f}, "
            f"within 20% {np.mean(lr < math.log(1.2)):.1%}")


def step_weights(lcdb: list[Case], cache: Path | None) -> Settings:
    """Steps 1 and 2: point weights, loss, family weights and the misfit tilt."""
    truth = np.array([c.truths[0] for c in lcdb])
    print("1. point weights and loss (weights refitted for each; calibration half, settings pooled)")
    results = {}
    for power in POWERS:
        for robust in LOSSES:
            settings = replace(CALIBRATED, size_weight_power=power, robust=robust, misfit_tilt=None)
            table = family_table(lcdb, settings, cache)
            weights = fit_weights(table, truth, settings)
            error = float(np.mean(np.abs(combine(weights, table, settings) - truth)))
            results[power, robust] = (error, table, settings)
            named = ", ".join(f"{n} {w:.2f}" for n, w in zip(NAMES, weights) if w > 0)
            print(f"   p={power:<4g} loss={'soft-L1 0.05' if robust else 'squared':<13} "
                  f"{metrics(combine(weights, table, settings), truth)}   [{named}]")
    best = min(r[0] for r in results.values())
    power, robust = min((k for k in results if results[k][0] <= (1.0 + MAX_POWER_COST) * best), key=lambda k: (k[0], results[k][0]))
    _, table, settings = results[power, robust]
    print(f"   chosen: p={power:g}, {'soft-L1 0.05' if robust else 'squared'} loss")
    print("2. misfit tilt: weights ×exp(−log(rms / best rms) / tau)")
    tilted = {}
    for tau in MISFIT_TILTS:
        variant = replace(settings, misfit_tilt=tau)
        weights = fit_weights(table, truth, variant)
        tilted[tau] = (float(np.mean(np.abs(combine(weights, table, variant) - truth))), weights)
        print(f"   tau={tau!s:<5} {metrics(combine(weights, table, variant), truth)}")
    # A sanity rule, not an accuracy device: the strongest tilt that costs at most 1 % of the error.
    affordable = [t for t in MISFIT_TILTS if t and tilted[t][0] <= (1.0 + MAX_MISFIT_COST) * tilted[None][0]]
    tau = min(affordable) if affordable else None
    weights = {n: round(float(w), 3) for n, w in zip(NAMES, tilted[tau][1]) if w > 0}
    print(f"   chosen: tau={tau}; weights {weights}")
    return replace(settings, weights=weights, misfit_tilt=tau)


# -- 3: the plain law and the floor guard ----------------------------------------


def step_blend(cases: list[Case], settings: Settings) -> tuple[Settings, list]:
    print("3. the plain law and the floor guard (calibration halves of LCDB and of the neural curves, each half counted equally)")
    base = replace(settings, plain_weight=0.0, floor_guard=False)
    fits = [fit_ensemble(c.m, c.y, settings=base, plain=fit_plain(c.sizes, c.values)) for c in cases]
    best = None
    for guard in (False, True):
        for g in PLAIN_WEIGHTS:
            variant = replace(base, plain_weight=g, floor_guard=guard)
            errors = {"lcdb": [], "neural": []}
            for fit, c in zip(fits, cases):
                e = np.log(replace(fit, settings=variant).mean(c.targets) / c.truths)
                errors[c.source].append(math.sqrt(float(np.mean(e * e))))
            lcdb, neural = float(np.mean(errors["lcdb"])), float(np.mean(errors["neural"]))
            objective = 0.5 * lcdb + 0.5 * neural
            print(f"   guard={'on ' if guard else 'off'} g={g:<4g} objective {objective:.4f}: LCDB mean |log ratio| {lcdb:.4f}, "
                  f"neural mean log-RMSE {neural:.4f}")
            if best is None or objective < best[0] - 1e-9:
                best = (objective, variant)
    chosen = best[1]
    print(f"   chosen: g={chosen.plain_weight:g}, floor guard {'on' if chosen.floor_guard else 'off'}")
    return chosen, [replace(f, settings=chosen) for f in fits]


# -- 4: the band ---------------------------------------------------------------


def step_band(cases: list[Case], fits: list) -> BandSettings:
    print("4. band")
    bands = [fit_band(f, c.m, c.y) for f, c in zip(fits, cases)]
    default_rate = float(np.median([b.backtest_rate for b in bands if b.backtest_measured]))
    counts = {s: sum(c.source == s for c in cases) for s in ("lcdb", "neural")}
    x, near2, error, weight, group = [], [], [], [], []
    for band, c in zip(bands, cases):
        features = band.features(c.targets)
        if not band.backtest_measured:
            features[:, 2] = math.log(default_rate + 0.01)
        x.append(features)
        near2.append(np.full(len(c.targets), band.near_var()))
        error.append(np.log(c.truths) - np.log(band.ensemble.mean(c.targets)))
        # each half counts equally, and each curve once however many points it predicts
        weight.append(np.full(len(c.targets), 1.0 / (counts[c.source] * len(c.targets))))
        group += [f"{c.source}:{c.group}"] * len(c.targets)
    x, near2, error, weight, group = np.concatenate(x), np.concatenate(near2), np.concatenate(error), np.concatenate(weight), np.array(group)
    print(f"   typical backtest rate {default_rate:.3g} (for curves too short to have one)")
    start = _laplace_scale_model(x, near2, error, weight)
    low, high = (_side_model(x, near2, error, weight, level, sign, start) for level, sign in ((0.025, -1.0), (0.975, 1.0)))
    for side, coefs in (("low", low), ("high", high)):
        print(f"   scale model θ_{side}: " + ", ".join(f"{n} {c:+.3f}" for n, c in zip(FEATURES, coefs)))
    s_low, s_high = np.sqrt(near2 + np.exp(x @ low) ** 2), np.sqrt(near2 + np.exp(x @ high) ** 2)
    score = np.maximum(-error / s_low, error / s_high)
    multipliers = _robust_multipliers(score, group, weight)
    k = float(np.interp(0.95, CONFIDENCE_LEVELS, multipliers))
    print(f"   over resampled datasets and tasks, {ROBUST_LEVEL:.0%} sure: 95% band = prediction ×exp(−{k:.2f}·s_low … {k:.2f}·s_high)")
    _print_coverage(cases, score <= k, k * (s_low + s_high), weight)
    return BandSettings(tuple(low), tuple(high), tuple(np.median(x, axis=0)), default_rate,
                        tuple(float(c) for c in CONFIDENCE_LEVELS), tuple(multipliers))


def _print_coverage(cases: list[Case], inside: np.ndarray, width: np.ndarray, weight: np.ndarray) -> None:
    setting = np.concatenate([np.full(len(c.targets), c.setting) for c in cases])
    for fraction in SETTINGS:
        sel = setting == fraction
        print(f"   LCDB 1/{fraction}: coverage on the calibration half {inside[sel].mean():.3f}, "
              f"median width log(upper/lower) {np.median(width[sel]):.2f} (n={sel.sum()})")
    sel = setting == 0
    print(f"   neural: coverage on the calibration half {np.sum(weight[sel] * inside[sel]) / np.sum(weight[sel]):.3f} "
          f"(each curve counted once), median width {np.median(width[sel]):.2f}")


def _side_model(x, near2, error, weight, level, sign, start):
    """θ of one side: ``sign·s(x)`` is the ``level`` quantile of the error (weighted pinball loss)."""

    def loss(theta):
        u = error - sign * np.sqrt(near2 + np.exp(np.clip(x @ theta, -50.0, 50.0)) ** 2)
        return float(np.sum(weight * np.maximum(level * u, (level - 1.0) * u)))

    return optimize.minimize(loss, start, method="Nelder-Mead", options={"maxiter": 6000, "xatol": 1e-4, "fatol": 1e-10}).x


def _laplace_scale_model(x, near2, error, weight):
    """θ maximising the Laplace likelihood of the errors given the scale ``s = sqrt(near² + exp(θ·x)²)``."""

    def loss(theta):
        s = np.sqrt(near2 + np.exp(np.clip(x @ theta, -50.0, 50.0)) ** 2)
        return float(np.sum(weight * (np.abs(error) / s + np.log(s))))

    start = np.zeros(x.shape[1])
    start[0], start[1] = math.log(0.1), 1.0
    res = optimize.minimize(loss, start, method="BFGS")
    return optimize.minimize(loss, res.x, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-9}).x


def _robust_multipliers(score: np.ndarray, group: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The conformal multiplier ``k`` at each of ``CONFIDENCE_LEVELS``, made to hold for new datasets and tasks.

    The curves of one dataset (or neural task) err together: the groups are
    resampled with replacement and each ``k`` is taken at the ``ROBUST_LEVEL``
    point of its resampling distribution (never below the plain quantile).
    """
    rng = np.random.default_rng(0)
    ids = np.unique(group)
    members = [np.flatnonzero(group == i) for i in ids]
    draws = np.empty((RESAMPLES, len(CONFIDENCE_LEVELS)))
    for b in range(RESAMPLES):
        chosen = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        draws[b] = np.quantile(score[chosen], CONFIDENCE_LEVELS, weights=weight[chosen], method="inverted_cdf")
    plain = np.quantile(score, CONFIDENCE_LEVELS, weights=weight, method="inverted_cdf")
    return np.maximum.accumulate(np.maximum(np.quantile(draws, ROBUST_LEVEL, axis=0), plain))  # a higher confidence is never narrower


# -- 5: the noise gain ---------------------------------------------------------


def step_noise_gain(cases: list[Case], settings: Settings) -> tuple[float, float]:
    print("5. noise gain: how far the prediction moves when every point carries noise of log sd σ, in line sds")
    rng = np.random.default_rng(0)
    ratios: dict[str, list[float]] = {"inside": [], "2x": [], "4x": [], "10x": []}
    for c in cases[::3]:
        clean = fit_ensemble(c.m, c.y, settings=settings, plain=fit_plain(c.m, c.y))
        probes = {"inside": np.sqrt(c.m[:-1] * c.m[1:]), "2x": c.m[-1:] * 2, "4x": c.m[-1:] * 4, "10x": c.m[-1:] * 10}
        for sigma in NOISE_LEVELS:
            noisy_y = c.y * np.exp(sigma * rng.standard_normal(len(c.y)))
            noisy = fit_ensemble(c.m, noisy_y, settings=settings, plain=fit_plain(c.m, noisy_y))
            if clean is None or noisy is None:
                continue
            line = PointNoise(np.log(c.m), np.full(len(c.m), sigma**2))
            for where, sizes in probes.items():
                sd = np.sqrt(line.line_var(sizes))
                ratios[where] += list(np.abs(np.log(noisy.mean(sizes) / clean.mean(sizes))) / sd)
    per_distance = {k: float(np.quantile(v, 0.95) / 1.96) for k, v in ratios.items()}
    print("   95% of moves within 1.96 × gain × line sd needs gain: " + ", ".join(f"{k} {v:.2f}" for k, v in per_distance.items()))
    gains = round(per_distance["inside"], 2), round(max(v for k, v in per_distance.items() if k != "inside"), 2)
    print(f"   chosen: {gains[0]} inside the data, {gains[1]} beyond it (the largest, so that it holds at every distance)")
    return gains


# -- writing -------------------------------------------------------------------


def write(path: Path, settings: Settings, band: BandSettings, gains: tuple[float, float], counts: tuple[int, int, int]) -> None:
    # rounded as written, so that the probe is what the written constants compute
    band = BandSettings(*(tuple(round(float(v), 4) for v in values) for values in (band.coefs_low, band.coefs_high, band.feature_medians)),
                        round(band.default_backtest_rate, 5), band.confidence_levels, tuple(round(float(v), 4) for v in band.multipliers))
    rows = ["    " + " ".join(f"{v:.4f}," for v in band.multipliers[i : i + 6]) for i in range(0, len(band.multipliers), 6)]
    fingerprint = probe(settings, band)
    probe_rows = ["    " + " ".join(f"{v!r}," for v in fingerprint[i : i + 6]) for i in range(0, len(fingerprint), 6)]
    datasets, tasks, neural = counts
    vector = lambda values: "(" + ", ".join(f"{v:.4f}" for v in values) + ",)"  # noqa: E731
    path.write_text(f'''"""Constants of the fit's predictor, derived from the LCDB and neural dev curves: do not edit by hand.

Written by ``python benchmarks/calibrate_fit.py`` from the calibration half of
``lcdb-dev.csv.gz`` (datasets with an even OpenML id; the benchmark reports on
the odd ones): {tasks} extrapolations (settings 1/4, 1/8, 1/16) of
{datasets} datasets, and from the calibration half of ``neural-dev.csv.gz``
({neural} curves; the split by task is ``benchmarks/_neural.py``'s).  What each
constant means: ``scaling_optuna/fit/_ensemble.py``, ``_band.py`` and ``_noise.py``.
``PROBE`` is what the code computed with them (``_probe.py``): a test fails when it no longer does.
"""

# Families and their weights in the ensemble mean.
FAMILY_WEIGHTS = {settings.weights!r}
# Points weighted by (m / m_max) ** SIZE_WEIGHT_POWER.
SIZE_WEIGHT_POWER = {settings.size_weight_power!r}
# Soft-L1 scale of the log loss (None: squared loss).
ROBUST_SCALE = {settings.robust!r}
# Weights multiplied by exp(-log(rms / best rms) / MISFIT_TILT) (None: no such tilt).
MISFIT_TILT = {settings.misfit_tilt!r}
# The prediction is mix^(1 - PLAIN_WEIGHT) · plain^PLAIN_WEIGHT.
PLAIN_WEIGHT = {settings.plain_weight!r}
# No family predicts below the log-log line through the last point beyond the data.
FLOOR_GUARD = {settings.floor_guard!r}
# θ of the band's scale models below and above the mean, one per feature of _band.FEATURES.
SCALE_COEFS_LOW = {vector(band.coefs_low)}
SCALE_COEFS_HIGH = {vector(band.coefs_high)}
# The calibration curves' median of each feature (beyond the data), what a typical band is conditioned on.
FEATURE_MEDIANS = {vector(band.feature_medians)}
# b for a curve too short for its own backtest: the calibration curves' median.
DEFAULT_BACKTEST_RATE = {band.default_backtest_rate!r}
# The conformal multiplier k of a band at each confidence: quantiles of max(−error/s_low, error/s_high).
CONFIDENCE_LEVELS = tuple(i / 200 for i in range(100, 200))
BAND_MULTIPLIERS = (
{chr(10).join(rows)}
)
# How much more the predictor strays than a weighted log-log line when the points carry noise (_noise.PointNoise).
NOISE_GAIN_INSIDE = {gains[0]!r}
NOISE_GAIN_BEYOND = {gains[1]!r}
CALIBRATION_DATASETS = {datasets}
CALIBRATION_CURVES = {tasks}
CALIBRATION_NEURAL_CURVES = {neural}
# The code's predictions with these constants on _probe.CURVES.
PROBE = (
{chr(10).join(probe_rows)}
)
''')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lcdb", type=Path, default=DEFAULT_PATH, help="lcdb-dev.csv.gz (default: %(default)s)")
    parser.add_argument("--neural", type=Path, default=_neural.DEFAULT_PATH, help="neural-dev.csv.gz (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the constants module to write (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="a smoke run: only the first N tasks of each setting and neural curves")
    parser.add_argument("--cache", type=Path, help="keep the family fits here and reuse them (the fitting code must not have changed)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    lcdb, neural = load_cases(args)
    settings = step_weights(lcdb, args.cache)
    settings, fits = step_blend(lcdb + neural, settings)
    band = step_band(lcdb + neural, fits)
    gains = step_noise_gain(lcdb + neural, settings)
    write(args.out, settings, band, gains, (len({c.group for c in lcdb}), len(lcdb), len(neural)))
    print(f"\nwrote {args.out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
