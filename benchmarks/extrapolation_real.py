"""Extrapolation accuracy on real learning curves that scaling-optuna itself produces.

For each experiment (digits, and mnist1d) the benchmark runs ``scaling-optuna
run`` with a small trial budget (or reuses a store that already has the
trials), then, exactly as the report's built-in backtest does, refits each
learning curve without its largest one and two sizes and predicts them:

* the fit (:func:`scaling_optuna.fit.fit_scaling_law`, ``form="auto"``,
  plateau = the majority-class error for test error), with its band, for
  the report's two bootstrap modes (over the fitted points, and for the tuned
  curves over the near-best trials of each size; the mode changes the law's
  parameter intervals, the prediction's band is calibrated either way);
* the naive straight line in log-log space through the same points
  (:func:`scaling_optuna.fit.fit_log_log_line`).

Curves: test error and test loss of the best trial per size (tuned), and of
the seed's untuned default model (the first trial of every study). Reported:
every prediction next to the measured value, the median absolute relative
error of each method, and how often the measured value fell inside the 95 %
band for a measurement (the report's backtest band: the curve band widened
by the run-to-run scatter and, for the test error, the binomial noise of the
test set). Mind the test-set noise: digits has 359 test images, so a 5 % test
error carries a binomial standard error of about 23 % of itself.

Run (about 3 minutes on 2 cores from scratch; ``--store-dir`` keeps and reuses the stores)::

    python benchmarks/extrapolation_real.py [--trials 12] [--workers 2] [--store-dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Submodule imports: they also work where an editable install exposes the package as a namespace.
from scaling_optuna.experiment import load_experiment
from scaling_optuna.report import build_report
from scaling_optuna.report.rows import recorded_test_size
from scaling_optuna.report.rows import study_attrs
from scaling_optuna.fit import fit_log_log_line
from scaling_optuna.fit import fit_scaling_law

ROOT = Path(__file__).resolve().parents[1]

# Used only when the repository has no studies/mnist1d.toml.
MNIST1D_SPEC = """
name = "mnist1d"
seed = 0
trials_per_size = 8

[data]
dataset = "mnist1d"
root = "data"
num_samples = 25000

[sizes]
start_fraction = 0.015625

[model]
kind = "mlp"

[search_space]
lr = { low = 1e-4, high = 1.0, log = true }
weight_decay = { low = 1e-6, high = 1e-3, log = true }
momentum = { low = 0.1, high = 1.0, log = true }
fc1 = { low = 32, high = 512, log = true }
fc2 = { low = 32, high = 512, log = true }

[default_params]
lr = 0.01
weight_decay = 1e-6
momentum = 0.9
fc1 = 120
fc2 = 84

[trainer]
max_epochs = 30
patience = 3
batch_size = 64

[sampler]
name = "TPESampler"
n_startup_trials = 5

[pruner]
name = "MedianPruner"
n_startup_trials = 3
n_warmup_steps = 3
"""


def _spec_path(name: str, work: Path) -> Path:
    path = ROOT / "studies" / f"{name}.toml"
    if path.is_file():
        return path
    if name != "mnist1d":
        raise SystemExit(f"missing spec {path}")
    inline = work / "mnist1d.toml"
    inline.write_text(MNIST1D_SPEC)
    return inline


def _run(spec: Path, url: str, trials: int, workers: int, work: Path) -> float:
    """Train (or top up) the experiment; returns the seconds spent."""
    start = time.monotonic()
    cmd = [sys.executable, "-m", "scaling_optuna", "--log-level", "warning", "run", str(spec),
           "--storage", url, "--trials", str(trials), "--workers", str(workers)]
    result = subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"'{' '.join(cmd)}' failed with exit status {result.returncode}")
    return time.monotonic() - start


def _holdout(
    sizes: list[int], values: list[float], plateau: float | None, held_out: int, test_size: int | None
) -> list[dict[str, Any]]:
    """The report's backtest for a curve the report does not backtest (the untuned baseline)."""
    keep = len(sizes) - held_out
    fit = fit_scaling_law(sizes[:keep], values[:keep], plateau=plateau)
    naive = fit_log_log_line(sizes[:keep], values[:keep])
    held = sizes[keep:]
    # as the report's backtest: a measured value is judged by the band for a measurement
    pred, naive_pred = fit.predict(held, include_noise=True, test_size=test_size), naive.predict(held)
    return [
        {"size": s, "actual": a, "law": float(m), "lower": float(lo), "upper": float(hi), "naive": float(n), "form": fit.form}
        for s, a, m, lo, hi, n in zip(held, values[keep:], pred.mean, pred.lower, pred.upper, naive_pred.mean)
    ]


def evaluate(spec: Path, url: str) -> list[dict[str, Any]]:
    """Every held-out prediction of every curve of one experiment, as flat rows."""
    exp = load_experiment(spec, storage=url)
    rows = []
    reports = {mode: build_report(exp, bootstrap=mode) for mode in ("points", "trials")}
    for metric in ("test_error", "test_loss"):
        by_mode = {mode: r.curves[metric] for mode, r in reports.items()}
        for i, (bt_points, bt_trials) in enumerate(zip(by_mode["points"].backtests, by_mode["trials"].backtests)):
            for p, q in zip(bt_points.points, bt_trials.points):
                rows.append({
                    "experiment": exp.spec.name, "curve": f"tuned {metric.replace('_', ' ')}", "held_out": bt_points.held_out,
                    "size": p.size, "actual": p.actual, "law": p.predicted, "lower": p.lower, "upper": p.upper,
                    "lower_trials": q.lower, "upper_trials": q.upper, "naive": p.naive,
                    "form": bt_points.fit.form if bt_points.fit else None,
                })
        curve = by_mode["points"]
        plateau = reports["points"].majority_error if metric == "test_error" else None
        sizes, values = list(curve.baseline_sizes), list(curve.baseline_values)
        for held_out in (1, 2):
            if len(sizes) - held_out < 3:
                continue
            test_size = recorded_test_size(study_attrs(exp)) if metric == "test_error" else None
            for r in _holdout(sizes, values, plateau, held_out, test_size):
                rows.append({"experiment": exp.spec.name, "curve": f"untuned {metric.replace('_', ' ')}", "held_out": held_out,
                             "lower_trials": None, "upper_trials": None, **r})
    return rows


def _rel(pred: float, actual: float) -> float:
    return pred / actual - 1.0


def summarise(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| experiment | curve | held out | size | measured | law (95% band) | law error | naive line | naive error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['experiment']} | {r['curve']} | {r['held_out']} | {r['size']} | {r['actual']:.4g} | "
            f"{r['law']:.4g} ({r['lower']:.3g}–{r['upper']:.3g}) | {_rel(r['law'], r['actual']):+.0%} | "
            f"{r['naive']:.4g} | {_rel(r['naive'], r['actual']):+.0%} |"
        )
    lines.append("")
    lines.append("| subset | n | median abs. error, law | median abs. error, naive | law better / same / worse | in band (points bootstrap) | in band (trials bootstrap) |")
    lines.append("|---|---|---|---|---|---|---|")
    subsets = {
        "all": rows,
        "test error": [r for r in rows if "error" in r["curve"]],
        "test loss": [r for r in rows if "loss" in r["curve"]],
        "held out 1 (2× beyond)": [r for r in rows if r["held_out"] == 1],
        "held out 2 (up to 4× beyond)": [r for r in rows if r["held_out"] == 2],
    }
    for exp in sorted({r["experiment"] for r in rows}):
        subsets[exp] = [r for r in rows if r["experiment"] == exp]
    for name, sub in subsets.items():
        if not sub:
            continue
        law = statistics.median(abs(_rel(r["law"], r["actual"])) for r in sub)
        naive = statistics.median(abs(_rel(r["naive"], r["actual"])) for r in sub)
        gaps = [abs(math.log(r["law"] / r["actual"])) - abs(math.log(r["naive"] / r["actual"])) for r in sub]
        # With ≤ 4 points and no plateau the law is the power form, i.e. the same line: a tie.
        better, same = sum(g < -1e-9 for g in gaps), sum(abs(g) <= 1e-9 for g in gaps)
        inside = sum(r["lower"] <= r["actual"] <= r["upper"] for r in sub)
        with_trials = [r for r in sub if r["lower_trials"] is not None]
        inside_trials = sum(r["lower_trials"] <= r["actual"] <= r["upper_trials"] for r in with_trials)
        lines.append(
            f"| {name} | {len(sub)} | {law:.1%} | {naive:.1%} | {better} / {same} / {len(sub) - better - same} | {inside}/{len(sub)} | "
            + (f"{inside_trials}/{len(with_trials)} |" if with_trials else "- |")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="trials per size (default 12, the shipped specs' budget)")
    parser.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    parser.add_argument("--store-dir", type=Path, help="keep the stores (and the mnist1d data) here and reuse them")
    parser.add_argument("--experiments", default="digits,mnist1d", help="comma-separated: digits, mnist1d")
    parser.add_argument("--json", type=Path, help="also write every prediction as JSON")
    args = parser.parse_args(argv)

    work = args.store_dir or Path(tempfile.mkdtemp(prefix="extrapolation-real-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    timings = {}
    for name in args.experiments.split(","):
        spec = _spec_path(name, work)
        url = f"sqlite:///{work / f'{name}.db'}"
        timings[name] = _run(spec, url, args.trials, args.workers, work)
        rows += evaluate(spec, url)
    print(summarise(rows))
    print()
    print(f"stores in {work}; training time " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
          + f"; {args.trials} trials per size, {args.workers} workers")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "timings_s": timings, "trials": args.trials}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
