"""Compute to the answer: the seed's way of searching against the project's defaults, on digits and mnist1d.

Each experiment (``studies/digits.toml``, ``studies/mnist1d.toml``) runs twice
against its own temporary SQLite store, through the Python API
(``create_experiment`` + ``run_worker``, one worker, one torch thread):

* **seed-faithful**: random search (``RandomSampler``), no pruning
  (``NopPruner``), batch size 4, a fixed number of epochs (``patience =
  max_epochs``: no early stopping);
* **defaults**: the spec as shipped: its sampler (TPE), pruner (median),
  batch size, early stopping and epoch cap.

Both use the same search space, trials per size, data, trainer code and
seeds; the seed-faithful run keeps the spec's ``max_epochs`` as its fixed
epoch count (``--seed-epochs`` sets another). The two runs of an experiment go side by side in two processes (one
per core), so the neighbours' load hits both alike; CPU time (user + system of
the process, single-threaded) is what is compared, and wall time is shown too.

The answer is compared on two counts: the exponent β of
``scaling_optuna.fit.fit_scaling_law`` fitted to the best trial's test
error per size (mean over the repeats; each β inside the other's 95%
interval, both fitted as power laws on the sizes that both automatic fits
kept: exponents of different forms or size ranges do not compare), and the best test
error per size (the defaults' no worse than the seed's by more than two
standard errors of the difference: binomial on the test set, plus, with
``--repeats``, the spread over the repeats of the paired difference).

Repeat ``r`` runs both configurations with the spec's seed plus ``r`` and
sampler seed ``r``: what a user's rerun with another seed changes. The
spec's seed draws the validation split and so the nested subsets, and the
worker seeds every model's initial weights from it and the trial's number;
the sampler seed draws the trials. Both configurations of one repeat share
the data, so their difference is taken per repeat.

Usage::

    python benchmarks/compute_to_answer.py                  # 8–20 min on 2 cores
    python benchmarks/compute_to_answer.py --repeats 3      # noise measured: 25–65 min
    python benchmarks/compute_to_answer.py --trials 4 --experiments digits   # a quick look
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from scaling_optuna.data import load_dataset  # noqa: E402
from scaling_optuna.experiment import create_experiment  # noqa: E402
from scaling_optuna.experiment import load_experiment  # noqa: E402
from scaling_optuna.spec import ComponentSpec  # noqa: E402
from scaling_optuna.spec import ExperimentSpec  # noqa: E402
from scaling_optuna.spec import load_spec  # noqa: E402
from scaling_optuna.worker import run_worker  # noqa: E402

SPECS = {"digits": ROOT / "studies" / "digits.toml", "mnist1d": ROOT / "studies" / "mnist1d.toml"}


def make_spec(
    name: str, mode: str, trials: int, seed_epochs: int | None, data_root: str, tmp: str, repeat: int = 0
) -> ExperimentSpec:
    """``mode``: "seed", "defaults", or "defaults:patience=N" (the defaults with another patience)."""
    spec = load_spec(SPECS[name]).with_trials(trials)
    sampler_seed = repeat
    spec = dataclasses.replace(spec, seed=spec.seed + repeat)
    spec = dataclasses.replace(spec, data=dataclasses.replace(spec.data, root=data_root))
    if hasattr(spec, "artifacts"):
        spec = dataclasses.replace(spec, artifacts=str(Path(tmp) / "artifacts"), keep_models=0)
    # Seeded samplers, so that a rerun draws the same trials.
    sampler = ComponentSpec(spec.sampler.name, {**spec.sampler.options, "seed": sampler_seed})
    if mode.startswith("defaults"):
        if mode.startswith("defaults:patience="):
            patience = int(mode.split("=")[1])
            spec = dataclasses.replace(spec, trainer=dataclasses.replace(spec.trainer, patience=patience))
        return dataclasses.replace(spec, sampler=sampler)
    epochs = seed_epochs or spec.trainer.max_epochs
    trainer = dataclasses.replace(spec.trainer, batch_size=4, max_epochs=epochs, patience=epochs)
    return dataclasses.replace(
        spec, sampler=ComponentSpec("RandomSampler", {"seed": sampler_seed}), pruner=ComponentSpec("NopPruner"), trainer=trainer
    )


def run_one(name: str, mode: str, trials: int, seed_epochs: int | None, data_root: str, repeat: int) -> dict[str, Any]:
    """One experiment in one configuration, in this (fresh) process; returns its measurements."""
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec(name, mode, trials, seed_epochs, data_root, tmp, repeat)
        storage = f"sqlite:///{tmp}/store.db"
        create_experiment(spec, storage)
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        run_worker(spec, storage, threads=1)
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
        exp = load_experiment(spec, storage)
        trials_out = []
        for size in exp.sizes:
            for t in exp.studies[size].get_trials(deepcopy=False):
                trials_out.append({
                    "size": size,
                    "state": t.state.name,
                    "epochs": int(t.user_attrs.get("epochs_run", 0)),
                    "reason": str(t.user_attrs.get("stopped_reason", "")),
                })
        best = {b.size: b.test_error for b in exp.best_trials()}
        data = load_dataset(spec)
    return {
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "wall_s": wall,
        "best": best,
        "trials": trials_out,
        "max_epochs": spec.trainer.max_epochs,
        "batch_size": spec.trainer.batch_size,
        "n_test": len(data.y_test),
        "plateau": data.majority_error(),
        "sampler": spec.sampler.name,
        "pruner": spec.pruner.name,
        "patience": spec.trainer.patience,
    }


def epochs_summary(results: list[dict[str, Any]]) -> dict[str, int]:
    out = {"run": 0, "saved_by_pruning": 0, "saved_by_early_stopping": 0, "saved_by_divergence": 0, "pruned_trials": 0, "trials": 0}
    for result in results:
        cap = result["max_epochs"]
        for t in result["trials"]:
            out["run"] += t["epochs"]
            out["trials"] += 1
            if t["state"] == TrialState.PRUNED.name and t["reason"].startswith("diverged"):
                out["saved_by_divergence"] += cap - t["epochs"]
            elif t["state"] == TrialState.PRUNED.name:
                out["saved_by_pruning"] += cap - t["epochs"]
                out["pruned_trials"] += 1
            elif t["state"] == TrialState.COMPLETE.name:
                out["saved_by_early_stopping"] += cap - t["epochs"]
    return out


def report(name: str, mode: str, seed: list[dict[str, Any]], default: list[dict[str, Any]]) -> bool:
    """Print one experiment's comparison over the repeats; returns whether every goal is met."""
    from scaling_optuna.fit import fit_scaling_law

    repeats = len(seed)
    print(f"\n## {name}: seed-faithful against {mode} ({repeats} repeat(s): spec seed + 0…{repeats - 1}, sampler seeds 0…{repeats - 1})")
    for label, runs in (("seed-faithful", seed), ("defaults", default)):
        r, e = runs[0], epochs_summary(runs)
        print(f"  {label:14s} {r['sampler']}, {r['pruner']}, batch {r['batch_size']}, max_epochs {r['max_epochs']}, "
              f"patience {r['patience']}: CPU {sum(x['cpu_s'] for x in runs):7.1f} s, wall {sum(x['wall_s'] for x in runs):6.1f} s, "
              f"{e['trials']} trials, {e['run']} epochs run")
    e = epochs_summary(default)
    print(f"  defaults' epochs saved against running every trial to max_epochs: {e['saved_by_pruning']} by pruning "
          f"({e['pruned_trials']} of {e['trials']} trials pruned), {e['saved_by_early_stopping']} by early stopping, "
          f"{e['saved_by_divergence']} by stopping diverged trials")
    ratio = sum(x["cpu_s"] for x in default) / sum(x["cpu_s"] for x in seed)
    print(f"  CPU time of the defaults / seed-faithful: {ratio:.3f} (goal ≤ 0.333)  → {'ok' if ratio <= 1 / 3 else 'MISSED'}")

    sizes = sorted(set.intersection(*(set(r["best"]) for r in seed + default)))
    n_test = seed[0]["n_test"]
    values = {label: {s: [r["best"][s] for r in runs] for s in sizes} for label, runs in (("seed", seed), ("defaults", default))}
    ok_errors = True
    noise = "binomial on the test set" + (" plus the spread over the repeats of the paired difference" if repeats > 1 else "")
    print(f"  best trial's test error per size (mean over repeats), and 2 standard errors of the difference ({noise}):")
    print(f"  {'size':>6s} {'seed-faithful':>14s} {'defaults':>9s} {'diff':>8s} {'2·SE':>7s}")
    for size in sizes:
        a, b = values["seed"][size], values["defaults"][size]
        ma, mb = statistics.mean(a), statistics.mean(b)
        # Two sources: the test set's sampling (binomial), and what a repeat redraws: the subsets,
        # the initial weights and the trials. A repeat's two runs share its subsets, so the
        # spread is that of their paired difference.
        se2 = (max(ma * (1 - ma), 1 / n_test) + max(mb * (1 - mb), 1 / n_test)) / n_test
        if repeats > 1:
            se2 += statistics.variance([y - x for x, y in zip(a, b)]) / repeats
        se = math.sqrt(se2)
        worse = mb - ma > 2 * se
        ok_errors &= not worse
        spread = "" if repeats == 1 else f"   (seed-faithful {' '.join(f'{v:.3f}' for v in a)}; defaults {' '.join(f'{v:.3f}' for v in b)})"
        print(f"  {size:6d} {ma:14.4f} {mb:9.4f} {mb - ma:+8.4f} {2 * se:7.4f}{'  worse' if worse else '       '}{spread}")
    floor = 0.5 / n_test  # a test error of 0 has no logarithm
    curves = {key: [max(statistics.mean(values[key][s]), floor) for s in sizes] for key in ("seed", "defaults")}
    auto = {key: fit_scaling_law(sizes, curves[key], plateau=seed[0]["plateau"]) for key in curves}
    for key, f in auto.items():
        lo, hi = f.intervals["beta"]
        print(f"  {key:14s} as the report fits it: β = {f.beta:+.3f} [{lo:+.3f}, {hi:+.3f}], {f.form} form on sizes "
              f"{int(f.sizes_used[0])}…{int(f.sizes_used[-1])}")
    # Exponents compare only within one form on one set of sizes: the power law on the sizes both fits kept.
    common = [s for s in sizes if all(s in f.sizes_used for f in auto.values())]
    fits = {key: fit_scaling_law(common, [curves[key][sizes.index(s)] for s in common], form="power") for key in curves}
    for key, f in fits.items():
        lo, hi = f.intervals["beta"]
        print(f"  {key:14s} power law on sizes {common[0]}…{common[-1]}: β = {f.beta:+.3f}  95% interval [{lo:+.3f}, {hi:+.3f}]")
    (a_lo, a_hi), (b_lo, b_hi) = fits["seed"].intervals["beta"], fits["defaults"].intervals["beta"]
    ok_beta = a_lo <= fits["defaults"].beta <= a_hi and b_lo <= fits["seed"].beta <= b_hi
    print(f"  exponents inside each other's intervals: {'yes' if ok_beta else 'NO'}; "
          f"best test error per size no worse beyond noise: {'yes' if ok_errors else 'NO'}")
    return ratio <= 1 / 3 and ok_beta and ok_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", default="digits,mnist1d")
    parser.add_argument("--trials", type=int, default=8, help="trials per size, both configurations (default 8)")
    parser.add_argument("--seed-epochs", type=int, default=None,
                        help="the seed-faithful run's fixed epochs (default: the spec's max_epochs)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every configuration, with spec seed + 0, 1, … and sampler seeds 0, 1, … (default 1)")
    parser.add_argument("--patience", type=int, action="append", default=[],
                        help="also run the defaults with this early-stopping patience (repeatable)")
    parser.add_argument("--save", help="write the runs' measurements to this JSON file")
    parser.add_argument("--load", help="report the measurements of an earlier --save instead of running")
    parser.add_argument("--data-root", default=str(ROOT / "data"), help="where mnist1d's generated data are cached")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {cores} cores ({platform.machine()}), load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, "
          f"optuna {optuna.__version__}; each run: 1 worker × 1 torch thread; {args.trials} trials per size")
    names = args.experiments.split(",")
    modes = ["seed", "defaults", *(f"defaults:patience={p}" for p in args.patience)]
    if args.load:
        saved = json.loads(Path(args.load).read_text())
        results = {tuple(k.split("|")): [_revive(r) for r in v] for k, v in saved.items()}
        modes = ["seed", *sorted({m for _, m in results if m != "seed"})]
        names = list(dict.fromkeys(n for n, _ in results))
        return summarise(names, modes, results)
    # Generate mnist1d's cache once, here, so that neither timed run pays for it.
    for name in names:
        load_dataset(make_spec(name, "defaults", args.trials, None, args.data_root, tempfile.gettempdir()))

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context, max_tasks_per_child=1) as pool:
        # The seed-faithful runs are the long ones: start them first.
        futures = {
            pool.submit(run_one, name, mode, args.trials, args.seed_epochs, args.data_root, repeat): (name, mode, repeat)
            for mode in modes
            for name in sorted(names, key=lambda n: n != "mnist1d")
            for repeat in range(args.repeats)
        }
        done: dict[tuple[str, str, int], dict[str, Any]] = {}
        for future in concurrent.futures.as_completed(futures):
            done[futures[future]] = future.result()
            name, mode, repeat = futures[future]
            print(f"  finished {name} {mode} (repeat {repeat}): {done[name, mode, repeat]['cpu_s']:.1f} CPU s", flush=True)
    results = {(n, m): [done[n, m, r] for r in range(args.repeats)] for n in names for m in modes}
    if args.save:
        Path(args.save).write_text(json.dumps({f"{n}|{m}": v for (n, m), v in results.items()}))
    summarise(names, modes, results)


def _revive(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "best": {int(k): v for k, v in result["best"].items()}}


def summarise(names: list[str], modes: list[str], results: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    for mode in modes[1:]:
        verdicts = [report(name, mode, results[name, "seed"], results[name, mode]) for name in names]
        total_seed = sum(r["cpu_s"] for n in names for r in results[n, "seed"])
        total_default = sum(r["cpu_s"] for n in names for r in results[n, mode])
        print(f"\n{mode}, all experiments: {total_default:.0f} CPU s against the seed-faithful {total_seed:.0f} CPU s: "
              f"{total_default / total_seed:.3f} of the seed's compute; every goal met: {all(verdicts)}")


if __name__ == "__main__":
    main()
