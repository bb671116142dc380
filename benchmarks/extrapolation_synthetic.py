"""Extrapolation benchmark on synthetic learning curves.

Each synthetic curve is observed at doubling sizes 32…16384 with lognormal
noise; every method is fitted on the sizes up to 1/8 of the largest (32…2048,
7 points) and predicts the true (noise-free) curve value at the largest size
16384 (8× beyond the data).  Methods:

(a) ours: :func:`scaling_optuna.fit.fit_scaling_law` (``form="auto"``,
    ``plateau=0.9``, default bootstrap);
(b) naive: :func:`scaling_optuna.fit.fit_log_log_line`, a straight
    line through all points in log-log space;
(c) linear LS: one least-squares fit of ``α·m^β + γ`` in linear space
    (:func:`scipy.optimize.curve_fit`, one start, bounds ``α > 0``,
    ``-5 ≤ β ≤ 0``, ``γ ≥ 0``; if it fails the last observed value is used).

Curve families: ``pure`` (γ = 0), ``saturating`` (γ ~ U(0.02, 0.15)),
``plateau`` (``min(0.9, α·m^β + γ)``, half with γ = 0 and half with γ > 0: the
first two sizes sit on the best-guess plateau 0.9 of a 10-class problem), at noise levels σ = 0.02, 0.05, 0.10 (log
scale).  Reported: median absolute relative error of each method, the ratios
to ours, and the empirical coverage of our 95 % curve band (true value) and
observation band (a noisy new observation).

Run ``python benchmarks/extrapolation_synthetic.py [n_curves] [seed]``; or
import and call :func:`run`, which returns all numbers as a dict.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any

import numpy as np
import scipy
from scipy import optimize

from scaling_optuna.fit import fit_log_log_line, fit_scaling_law

SIZES = 2.0 ** np.arange(5, 15)  # 32 … 16384
FIT_MAX = SIZES[-1] / 8  # fit on sizes ≤ 2048
PLATEAU = 0.9
FAMILIES = ("pure", "saturating", "plateau")
NOISES = (0.02, 0.05, 0.10)


def _true_curve(family: str, rng: np.random.Generator) -> tuple[float, float, float, float | None]:
    """Random (alpha, beta, gamma, plateau) for one curve of a family."""
    beta = rng.uniform(-0.7, -0.2)
    saturates = family == "saturating" or (family == "plateau" and rng.random() < 0.5)
    gamma = rng.uniform(0.02, 0.15) if saturates else 0.0
    if family == "plateau":
        # the power law crosses the plateau between the 2nd and 3rd size
        m_cross = rng.uniform(SIZES[1], SIZES[2])
        alpha = (PLATEAU - gamma) * m_cross ** (-beta)
        return alpha, beta, gamma, PLATEAU
    e0 = rng.uniform(0.45, 0.85)  # error at the smallest size
    alpha = (e0 - gamma) * SIZES[0] ** (-beta)
    return alpha, beta, gamma, None


def _curve_value(m: np.ndarray, alpha: float, beta: float, gamma: float, plateau: float | None) -> np.ndarray:
    v = alpha * m**beta + gamma
    return np.minimum(v, plateau) if plateau is not None else v


def _linear_ls_predict(m: np.ndarray, y: np.ndarray, m_new: float) -> tuple[float, bool]:
    """One least-squares fit of α·m^β + γ in linear space (one start); (prediction, ok)."""
    gamma0 = 0.5 * float(y.min())
    beta0 = -0.5
    alpha0 = max(float(y[0]) - gamma0, 1e-6) * float(m[0]) ** (-beta0)

    def f(x: np.ndarray, a: float, b: float, g: float) -> np.ndarray:
        return a * x**b + g

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, _ = optimize.curve_fit(
                f, m, y, p0=(alpha0, beta0, gamma0),
                bounds=([0.0, -5.0, 0.0], [np.inf, 0.0, np.inf]), maxfev=5000,
            )
        pred = float(f(np.array([m_new]), *p)[0])
        if np.isfinite(pred) and pred > 0:
            return pred, True
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        pass
    return float(y[-1]), False


def run(n_curves: int = 270, seed: int = 0, n_bootstrap: int = 1000, verbose: bool = True) -> dict[str, Any]:
    """Run the benchmark; returns per-cell and overall results as a dict.

    ``n_curves`` is spread evenly over the 3 families × 3 noise levels.

    Example::

        res = run(n_curves=90, seed=1, verbose=False)
        res["overall"]["median_rel_err"]["ours"], res["overall"]["coverage_curve"]
    """
    rng = np.random.default_rng(seed)
    per_cell = max(1, int(np.ceil(n_curves / (len(FAMILIES) * len(NOISES)))))
    fit_mask = SIZES <= FIT_MAX
    m_fit, m_new = SIZES[fit_mask], float(SIZES[-1])
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    fit_time = 0.0
    for family in FAMILIES:
        for sigma in NOISES:
            for _ in range(per_cell):
                alpha, beta, gamma, plateau = _true_curve(family, rng)
                true_fit = _curve_value(m_fit, alpha, beta, gamma, plateau)
                y = true_fit * np.exp(sigma * rng.standard_normal(len(m_fit)))
                truth = float(_curve_value(np.array([m_new]), alpha, beta, gamma, plateau)[0])
                observed_new = truth * float(np.exp(sigma * rng.standard_normal()))

                t = time.perf_counter()
                fit = fit_scaling_law(m_fit, y, plateau=PLATEAU, n_bootstrap=n_bootstrap, seed=int(rng.integers(2**31)))
                fit_time += time.perf_counter() - t
                band = fit.predict([m_new])
                obs_band = fit.predict([m_new], include_noise=True)
                naive = float(fit_log_log_line(m_fit, y).predict([m_new]).mean[0])
                lin, lin_ok = _linear_ls_predict(m_fit, y, m_new)
                rows.append(
                    {
                        "family": family,
                        "sigma": sigma,
                        "form": fit.form,
                        "n_excluded": len(fit.sizes_excluded),
                        "err_ours": abs(float(band.mean[0]) / truth - 1.0),
                        "err_naive": abs(naive / truth - 1.0),
                        "err_linear": abs(lin / truth - 1.0),
                        "linear_ok": lin_ok,
                        "cover_curve": bool(band.lower[0] <= truth <= band.upper[0]),
                        "cover_obs": bool(obs_band.lower[0] <= observed_new <= obs_band.upper[0]),
                        "band_rel_width": float((band.upper[0] - band.lower[0]) / truth),
                    }
                )

    def summarise(sel: list[dict[str, Any]]) -> dict[str, Any]:
        e = {k: np.array([r[f"err_{k}"] for r in sel]) for k in ("ours", "naive", "linear")}
        med = {k: float(np.median(v)) for k, v in e.items()}
        return {
            "n": len(sel),
            "median_rel_err": med,
            "ratio_naive_over_ours": med["naive"] / med["ours"] if med["ours"] > 0 else float("inf"),
            "ratio_linear_over_ours": med["linear"] / med["ours"] if med["ours"] > 0 else float("inf"),
            "coverage_curve": float(np.mean([r["cover_curve"] for r in sel])),
            "coverage_obs": float(np.mean([r["cover_obs"] for r in sel])),
            "median_band_rel_width": float(np.median([r["band_rel_width"] for r in sel])),
            "frac_saturating": float(np.mean([r["form"] == "saturating" for r in sel])),
            "mean_excluded": float(np.mean([r["n_excluded"] for r in sel])),
            "linear_failures": int(sum(not r["linear_ok"] for r in sel)),
        }

    cells = {
        f"{fam}/{sig:g}": summarise([r for r in rows if r["family"] == fam and r["sigma"] == sig])
        for fam in FAMILIES
        for sig in NOISES
    }
    families = {fam: summarise([r for r in rows if r["family"] == fam]) for fam in FAMILIES}
    result = {
        "n_curves": len(rows),
        "seed": seed,
        "n_bootstrap": n_bootstrap,
        "sizes_fit": [float(v) for v in m_fit],
        "size_predicted": m_new,
        "cells": cells,
        "families": families,
        "overall": summarise(rows),
        "seconds_total": time.perf_counter() - t0,
        "seconds_per_fit": fit_time / max(len(rows), 1),
    }
    if verbose:
        _print_result(result)
    return result


def _print_result(res: dict[str, Any]) -> None:
    print(
        f"fit on sizes {int(res['sizes_fit'][0])}…{int(res['sizes_fit'][-1])}, "
        f"predict true curve at {int(res['size_predicted'])} (8×); "
        f"{res['n_curves']} curves, seed {res['seed']}, {res['n_bootstrap']} bootstrap"
    )
    head = (
        f"{'cell':<18}{'n':>4}  {'ours':>7}{'naive':>8}{'linLS':>8}  {'naive/ours':>10}{'lin/ours':>9}"
        f"  {'cov95':>6}{'covObs':>7}  {'width':>6}  {'sat%':>5}{'excl':>5}"
    )
    print("median |relative error| of the prediction; coverage of our 95% bands")
    print(head)
    print("-" * len(head))
    blocks = list(res["cells"].items()) + [("", None)] + [(f"ALL {k}", v) for k, v in res["families"].items()]
    blocks += [("ALL", res["overall"])]
    for name, s in blocks:
        if s is None:
            print("-" * len(head))
            continue
        e = s["median_rel_err"]
        print(
            f"{name:<18}{s['n']:>4}  {e['ours']:>7.3f}{e['naive']:>8.3f}{e['linear']:>8.3f}  "
            f"{s['ratio_naive_over_ours']:>9.2f}×{s['ratio_linear_over_ours']:>8.2f}×"
            f"  {s['coverage_curve']:>6.2f}{s['coverage_obs']:>7.2f}  {s['median_band_rel_width']:>6.2f}"
            f"  {100 * s['frac_saturating']:>4.0f}%{s['mean_excluded']:>5.2f}"
        )
    o = res["overall"]
    print(
        f"overall: naive / ours = {o['ratio_naive_over_ours']:.2f}×, linear LS / ours = "
        f"{o['ratio_linear_over_ours']:.2f}×, coverage of the 95% curve band = {o['coverage_curve']:.2f} "
        f"(observation band {o['coverage_obs']:.2f}); linear LS failures: {o['linear_failures']}"
    )
    print(f"time: {res['seconds_total']:.1f} s total, {res['seconds_per_fit'] * 1000:.0f} ms per fit of ours")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n_curves = int(argv[0]) if argv else 270
    seed = int(argv[1]) if len(argv) > 1 else 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"numpy {np.__version__}, scipy {scipy.__version__}, {cores} CPU core(s) available, python {sys.version.split()[0]}")
    run(n_curves=n_curves, seed=seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
