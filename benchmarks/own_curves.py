"""The project's own learning curves, and how well its answers hold from one identical run to the next.

Runs ``scaling-optuna run`` for shipped specs (2 workers), builds each
experiment's report and writes every curve the report fits as rows of
``experiment, run, curve, metric, size, value, value_sd, runs, plateau, test_size``
(``value_sd``: the point's standard error as the report computes it from its
repeats, the choice among configurations and the test set; ``runs``: how many
training runs the value averages).  ``benchmarks/extrapolation_lcdb.py`` reads
the CSV for its backtest of the project's own curves, so that benchmark does
not retrain anything.

``--runs N`` makes N *identical* runs of each experiment (same spec, seed and
data, each in a store of its own: what differs is only what a run cannot fix,
the order in which two workers finish trials and so what the sampler
proposes, and the floating-point order of threaded training) and writes, per
experiment, what a user budgets from: the examples needed for a target test
error inside the measured range (by default the runs' median error at the
middle size) and the 2×/10× predictions, each with its 95 % interval; then

* the spread: the largest over the smallest answer across runs;
* the cross-coverage: the share of ordered pairs of runs (i, j) where run i's
  95 % interval holds run j's answer;
* the compute of re-measuring: the training seconds of the re-runs as a share
  of all the study's training seconds (``wall_time_s`` of every finished trial).

``--variants NAME:MODEL:SEED`` runs ``studies/NAME.toml`` with another model
kind and seed (experiment ``NAME-MODEL-sSEED``); ``--ladder NAME=N,N,...`` and
``--epochs NAME=E`` shrink a spec to fit the machine (the repeat benchmark's
reduced fashion-mnist ladder); ``--trials`` sets the search budget.

Run::

    python benchmarks/own_curves.py [--experiments digits,mnist1d] [--runs 1] [--trials 12] [--workers 2]
        [--ladder fashion-mnist=250,500,1000,2000,4000,8000] [--epochs fashion-mnist=10] [--targets digits=0.05]
        [--variants digits:mlp:0] [--store-dir DIR] [--out benchmarks/data/own-curves.csv] [--append] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

# Submodule imports: they also work where an editable install exposes the package as a namespace.
from scaling_optuna.experiment import load_experiment
from scaling_optuna.report import build_report
from scaling_optuna.report.rows import study_attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extrapolation_real import _run  # noqa: E402  (the same training run as that benchmark)
from extrapolation_real import _spec_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "data" / "own-curves.csv"
FIELDS = ("experiment", "run", "curve", "metric", "size", "value", "value_sd", "runs", "plateau", "test_size")


def curves_of(spec: Path, url: str, run: int) -> tuple[list[dict[str, object]], dict[str, Any]]:
    """Every point of the tuned and untuned test-error and test-loss curves, and the run's test-error report."""
    exp = load_experiment(spec, storage=url)
    report = build_report(exp)
    test_size = study_attrs(exp).get("test_size", "")
    rows: list[dict[str, object]] = []
    for metric in ("test_error", "test_loss"):
        curve = report.curves[metric]
        plateau = report.majority_error if metric == "test_error" else None
        for kind, sizes, values, sds in (
            ("tuned", curve.sizes, curve.values, curve.value_sd),
            ("untuned", curve.baseline_sizes, curve.baseline_values, curve.baseline_value_sd),
        ):
            runs = {row.size: (row.best if kind == "tuned" else row.baseline) for row in report.rows}
            for size, value, sd in itertools.zip_longest(sizes, values, sds):
                rows.append({"experiment": exp.spec.name, "run": run, "curve": kind, "metric": metric, "size": int(size),
                             "value": repr(float(value)), "value_sd": "" if sd is None else repr(float(sd)),
                             "runs": getattr(runs[size], "runs", 1), "test_size": test_size,
                             "plateau": "" if plateau is None else repr(float(plateau))})
    return rows, {"experiment": exp, "report": report}


def answers(exp: Any, report: Any, target: float) -> dict[str, Any]:
    """What a user budgets from, in one run: data needed for ``target`` and the 2×/10× predictions, with intervals."""
    curve = report.curves["test_error"]
    fit = curve.fit
    need = fit.data_needed(target)
    out = {"target": target, "need": [need.size, need.lower, need.upper], "points": list(zip(curve.sizes, curve.values, curve.value_sd))}
    for p in curve.predictions:
        out[f"{p.multiple:g}x"] = [p.mean, p.lower, p.upper]
    out["compute"] = _compute(exp)
    out["law"] = str(fit)
    return out


def _compute(exp: Any) -> dict[str, float]:
    """Training seconds of every finished trial, and of the re-runs among them."""
    total = reruns = 0.0
    for size in exp.sizes:
        for trial in exp.trials(size, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            seconds = trial.user_attrs.get("wall_time_s") or 0.0
            total += seconds
            if trial.user_attrs.get("remeasure_of") is not None:
                reruns += seconds
    return {"total_s": total, "reruns_s": reruns}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Spread and cross-coverage of each answer across identical runs, and the share of compute spent re-measuring."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in ("need", "2x", "10x"):
        answers = [r[key] for r in runs if key in r]
        points = [a[0] for a in answers]
        finite = [p for p in points if math.isfinite(p)]
        pairs = [(i, j) for i in range(len(answers)) for j in range(len(answers)) if i != j]
        held = [answers[i][1] <= points[j] <= answers[i][2] for i, j in pairs]
        out[key] = {
            "points": points,
            "intervals": [a[1:] for a in answers],
            "max_over_min": max(finite) / min(finite) if len(finite) == len(points) and finite else math.inf,
            "cross_coverage": sum(held) / len(held) if held else None,
        }
    total = sum(r["compute"]["total_s"] for r in runs)
    out["rerun_share"] = sum(r["compute"]["reruns_s"] for r in runs) / total if total else None
    return out


def variant_spec(name: str, model: str, seed: int, work: Path) -> Path:
    """``studies/NAME.toml`` with another model kind and seed, written into ``work``."""
    if model not in ("cnn", "mlp"):
        raise SystemExit(f"variant {name}:{model}:{seed}: the model must be cnn or mlp")
    text = _spec_path(name, work).read_text()
    text = re.sub(r'(?m)^name = ".*"$', f'name = "{name}-{model}-s{seed}"', text, count=1)
    text = re.sub(r"(?m)^seed = \d+$", f"seed = {seed}", text, count=1)
    text = re.sub(r'(?m)^kind = ".*"$', f'kind = "{model}"', text, count=1)
    if model == "mlp":
        text = re.sub(r"(?m)^conv[12] = .*\n", "", text)
    path = work / f"{name}-{model}-s{seed}.toml"
    path.write_text(text)
    return path


def shrunk_spec(name: str, path: Path, ladder: list[int] | None, epochs: int | None, work: Path) -> Path:
    """The spec with explicit sizes and fewer epochs (a ladder that fits the machine); unchanged without either."""
    if ladder is None and epochs is None:
        return path
    text = path.read_text()
    if ladder is not None:
        text = re.sub(r"(?ms)^\[sizes\]\n.*?(?=^\[)", f"[sizes]\ncounts = {ladder}\n\n", text, count=1)
    if epochs is not None:
        text = re.sub(r"(?m)^max_epochs = \d+", f"max_epochs = {epochs}", text, count=1)
    shrunk = work / f"{name}-reduced.toml"
    shrunk.write_text(text)
    return shrunk


def _options(text: str, kind: type) -> dict[str, Any]:
    """``NAME=VALUE`` pairs separated by ``;`` (a ladder's own commas stay inside its value)."""
    out = {}
    for item in filter(None, text.split(";")):
        name, _, value = item.partition("=")
        out[name] = [int(v) for v in value.split(",")] if kind is list else kind(value)
    return out


def _specs(args: argparse.Namespace, work: Path) -> list[tuple[str, Path]]:
    ladders, epochs = _options(args.ladder, list), _options(args.epochs, int)
    specs = [(name, _spec_path(name, work)) for name in args.experiments.split(",") if name]
    for variant in filter(None, args.variants.split(",")):
        try:
            name, model, seed = variant.split(":")
            specs.append((f"{name}-{model}-s{int(seed)}", variant_spec(name, model, int(seed), work)))
        except ValueError:
            raise SystemExit(f"--variants: {variant!r} is not NAME:MODEL:SEED (e.g. digits:mlp:1)") from None
    return [(name, shrunk_spec(name, path, ladders.get(name), epochs.get(name), work)) for name, path in specs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="search trials per size (default 12)")
    parser.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    parser.add_argument("--runs", type=int, default=1, help="identical runs of each experiment (default 1)")
    parser.add_argument("--store-dir", type=Path, help="keep the stores (and the data) here and reuse them")
    parser.add_argument("--experiments", default="digits,mnist1d", help="comma-separated shipped specs")
    parser.add_argument("--variants", default="", help="comma-separated NAME:MODEL:SEED, e.g. digits:mlp:1")
    parser.add_argument("--ladder", default="", help="NAME=N,N,...;NAME=...: explicit sizes for a spec")
    parser.add_argument("--epochs", default="", help="NAME=E;...: max_epochs for a spec")
    parser.add_argument("--targets", default="", help="NAME=T;...: the target test error (default: the runs' median at the middle size)")
    parser.add_argument("--append", action="store_true", help="add the rows to --out instead of rewriting it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"CSV to write (default {DEFAULT_OUT.relative_to(ROOT)})")
    parser.add_argument("--json", type=Path, help="write every run's answers and the summary as JSON")
    args = parser.parse_args(argv)

    work = args.store_dir or Path(tempfile.mkdtemp(prefix="own-curves-"))
    work.mkdir(parents=True, exist_ok=True)
    targets = _options(args.targets, float)
    rows: list[dict[str, object]] = []
    results: dict[str, Any] = {}
    for name, spec in _specs(args, work):
        opened = []
        for run in range(args.runs):
            url = f"sqlite:///{work / f'{name}-r{run}.db'}"
            seconds = _run(spec, url, args.trials, args.workers, work)
            print(f"{name} run {run}: trained in {seconds:.0f} s ({args.trials} trials per size, {args.workers} workers)", flush=True)
            curve_rows, opened_run = curves_of(spec, url, run)
            rows += curve_rows
            opened.append(opened_run)
        target = targets.get(name) or _middle_target(opened)
        runs = [answers(o["experiment"], o["report"], target) for o in opened]
        results[name] = {"answers": runs, "summary": summary(runs)}
        print(_summary_line(name, target, results[name]["summary"]), flush=True)
    _write_csv(args.out, rows, args.append)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"{len(rows)} points written to {args.out}; stores in {work}")
    return 0


def _middle_target(opened: list[dict[str, Any]]) -> float:
    """The runs' median test error at the middle size of the ladder, to 3 significant digits: a target inside the data."""
    values = []
    for o in opened:
        curve = o["report"].curves["test_error"]
        values.append(curve.values[len(curve.values) // 2])
    return float(f"{statistics.median(values):.3g}")


def _summary_line(name: str, target: float, s: dict[str, Any]) -> str:
    parts = [f"{name}, {s['runs']} identical runs:"]
    for key, label in (("need", f"examples for test error {target:g}"), ("2x", "2× prediction"), ("10x", "10× prediction")):
        cov = s[key]["cross_coverage"]
        parts.append(f"{label}: largest/smallest {s[key]['max_over_min']:.2f}, cross-coverage {'-' if cov is None else f'{cov:.0%}'}")
    if s["rerun_share"] is not None:
        parts.append(f"re-runs {s['rerun_share']:.0%} of the training seconds")
    return "; ".join(parts)


def _write_csv(path: Path, rows: list[dict[str, object]], append: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    append = append and path.is_file()
    with path.open("a" if append else "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if not append:
            writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
