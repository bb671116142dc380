"""Does a comparison's verdict hold from one identical run to the next? N identical runs of two experiments each.

For each pair — digits CNN against the MLP (``studies/digits.toml`` and
``studies/digits-mlp.toml``), Fashion-MNIST CNN against an MLP
(``studies/fashion-mnist.toml`` and the same spec with ``kind = "mlp"``, on a
reduced ladder that fits a small machine) — both experiments are run N times,
run i of both into a store of its own (same specs, seed and data: what differs
is what a run cannot fix, the order in which two workers finish trials and so
what the sampler proposes), and ``compare_experiments`` sets run i of the MLP
against run i of the CNN.  Each run's verdict is recorded: which model is
better at 2× the largest size (the data-equivalent factor's 95 % interval
excludes 1; else "no significant difference"), k at 2× with its interval, k at
the largest size, and the paired differences.  Then, per pair:

* whether every run's verdict is the same;
* the spread of k at 2×: the largest over the smallest across runs;
* the cross-coverage: the share of ordered pairs of runs (i, j) where run i's
  95 % interval of k at 2× holds run j's k.

Run::

    python benchmarks/compare_repeats.py [--pairs digits,fashion-mnist] [--runs 3] [--trials 12] [--workers 2]
        [--ladder "fashion-mnist=250,500,1000,2000,4000,8000"] [--epochs fashion-mnist=10] [--store-dir DIR] [--json out.json]

A tiny budget to try it: ``--runs 2 --trials 2 --ladder "digits=60,120,240,480" --epochs digits=4 --pairs digits``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from scaling_optuna.compare import compare_experiments
from scaling_optuna.experiment import load_experiment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extrapolation_real import _run  # noqa: E402  (the same training run as that benchmark)
from own_curves import _options  # noqa: E402
from own_curves import shrunk_spec  # noqa: E402
from own_curves import variant_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LADDER = "fashion-mnist=250,500,1000,2000,4000,8000"
DEFAULT_EPOCHS = "fashion-mnist=10"


def pair_specs(name: str, work: Path, ladder: list[int] | None, epochs: int | None) -> tuple[Path, Path]:
    """The CNN and MLP specs of a pair, shrunk to ``ladder`` and ``epochs`` when given."""
    if name == "digits":
        cnn, mlp = ROOT / "studies" / "digits.toml", ROOT / "studies" / "digits-mlp.toml"
    elif name == "fashion-mnist":
        cnn, mlp = ROOT / "studies" / "fashion-mnist.toml", variant_spec("fashion-mnist", "mlp", 0, work)
    else:
        raise SystemExit(f"--pairs: {name!r} is not digits or fashion-mnist")
    return tuple(shrunk_spec(path.stem, path, ladder, epochs, work) for path in (cnn, mlp))  # type: ignore[return-value]


def one_run(cnn: Path, mlp: Path, url: str) -> dict[str, Any]:
    """The MLP set against the CNN in one store: the verdict, k at 2× and at the largest size, the differences."""
    comparison = compare_experiments([load_experiment(cnn, url), load_experiment(mlp, url)])
    pair = comparison.pairs[0]
    at_2x = pair.factor_at(2)
    measured = [f for f in pair.factors if f.multiple is None]
    return {
        "verdict": pair.verdict or "no significant difference",
        "k_2x": [at_2x.k, at_2x.lower, at_2x.upper] if at_2x else None,
        "k_largest": [measured[-1].size, measured[-1].k, measured[-1].lower, measured[-1].upper] if measured else None,
        "differences": [[d.size, d.difference, d.lower, d.upper, d.verdict(pair.reference, pair.other)] for d in pair.differences],
        "crossing": None if pair.crossing is None else pair.crossing.message,
        "reference": pair.reference,
        "other": pair.other,
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the verdicts agree, and how k at 2× spreads and covers across runs."""
    verdicts = [r["verdict"] for r in runs]
    ks = [r["k_2x"] for r in runs if r["k_2x"] is not None]
    points = [k[0] for k in ks]
    finite = [p for p in points if math.isfinite(p) and p > 0]
    pairs = [(i, j) for i in range(len(ks)) for j in range(len(ks)) if i != j]
    held = [ks[i][1] <= points[j] <= ks[i][2] for i, j in pairs]
    return {
        "runs": len(runs),
        "verdicts": verdicts,
        "same_verdict": len(set(verdicts)) == 1,
        "k_2x": points,
        "k_2x_max_over_min": max(finite) / min(finite) if finite and len(finite) == len(points) else math.inf,
        "k_2x_cross_coverage": sum(held) / len(held) if held else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default="digits,fashion-mnist", help="comma-separated: digits, fashion-mnist")
    parser.add_argument("--runs", type=int, default=3, help="identical runs of each experiment (default 3)")
    parser.add_argument("--trials", type=int, default=12, help="search trials per size (default 12)")
    parser.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    parser.add_argument("--ladder", default=DEFAULT_LADDER, help=f'NAME=N,N,...;...: explicit sizes for a pair (default "{DEFAULT_LADDER}")')
    parser.add_argument("--epochs", default=DEFAULT_EPOCHS, help=f"NAME=E;...: max_epochs for a pair (default {DEFAULT_EPOCHS})")
    parser.add_argument("--store-dir", type=Path, help="keep the stores (and the data) here and reuse them")
    parser.add_argument("--json", type=Path, help="write every run and the summaries as JSON")
    args = parser.parse_args(argv)

    work = args.store_dir or Path(tempfile.mkdtemp(prefix="compare-repeats-"))
    work.mkdir(parents=True, exist_ok=True)
    ladders, epochs = _options(args.ladder, list), _options(args.epochs, int)
    results: dict[str, Any] = {}
    for name in filter(None, args.pairs.split(",")):
        cnn, mlp = pair_specs(name, work, ladders.get(name), epochs.get(name))
        runs = []
        for run in range(args.runs):
            url = f"sqlite:///{work / f'{name}-r{run}.db'}"
            seconds = sum(_run(spec, url, args.trials, args.workers, work) for spec in (cnn, mlp))
            runs.append(one_run(cnn, mlp, url))
            print(f"{name} run {run}: trained in {seconds:.0f} s; {_run_line(runs[-1])}", flush=True)
        results[name] = {"runs": runs, "summary": summary(runs)}
        print(_summary_line(name, results[name]["summary"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"stores in {work}")
    return 0


def _run_line(run: dict[str, Any]) -> str:
    k = run["k_2x"]
    shown = "-" if k is None else f"k at 2× {k[0]:.2g} ({k[1]:.2g}–{k[2]:.2g})"
    return f"{run['other']} against {run['reference']}: {run['verdict']}, {shown}"


def _summary_line(name: str, s: dict[str, Any]) -> str:
    cov = s["k_2x_cross_coverage"]
    return (
        f"{name}, {s['runs']} identical runs: verdicts {s['verdicts']} ({'the same' if s['same_verdict'] else 'they differ'}); "
        f"k at 2× largest/smallest {s['k_2x_max_over_min']:.2f}, cross-coverage {'-' if cov is None else f'{cov:.0%}'}"
    )


if __name__ == "__main__":
    sys.exit(main())
