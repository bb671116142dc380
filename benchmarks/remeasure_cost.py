"""The extra compute of re-measuring the winners: re-runs' training time as a share of the study's.

Runs one experiment (default ``studies/digits.toml`` as shipped) from scratch
with ``scaling-optuna run --workers N`` against a temporary SQLite store,
once with re-measuring off (``[remeasure] repeats = 0``) and once with the
setting given (default: the spec's own ``[remeasure]``), interleaved
``--rounds`` times. For the run with re-measuring it prints, summed over
every size:

* the share of training time (the trials' ``wall_time_s`` user attribute,
  which complete trials record) spent on re-runs;
* the same share of trial time from start to end in the store (pruned trials
  included, which record no ``wall_time_s``);
* the run's wall-clock time against the run without re-measuring (startup
  included; the machine is shared, so this ratio is the noisiest figure).

It also prints, per size, what re-measuring changed: the test error of the
best single run by validation loss (what the size's point was before) beside
the chosen configuration's mean ± sd over its runs.

Usage::

    nice -n 10 python benchmarks/remeasure_cost.py                     # digits, 2 workers, ~5 min on 2 cores
    nice -n 10 python benchmarks/remeasure_cost.py --top 2 --repeats 3 --rounds 2
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from scaling_optuna.experiment import load_experiment  # noqa: E402
from scaling_optuna.spec import load_spec  # noqa: E402

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def with_remeasure(text: str, top: int, repeats: int) -> str:
    """The spec's text with its ``[remeasure]`` table (if any) replaced by ``top`` and ``repeats``."""
    text = re.sub(r"(?ms)^\[remeasure\]\n.*?(?=^\[|\Z)", "", text)
    return text.rstrip("\n") + f"\n\n[remeasure]\ntop = {top}\nrepeats = {repeats}\n"


def run(spec_path: Path, top: int, repeats: int, workers: int) -> dict[str, float]:
    """One experiment from scratch; returns the run's seconds and the re-runs' shares of its trial time."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / spec_path.name
        spec.write_text(with_remeasure(spec_path.read_text(), top, repeats))
        data = spec_path.parent.parent / "data"
        if data.is_dir():
            (Path(tmp) / "data").symlink_to(data)  # a dataset cached by an earlier run (mnist1d, cifar10)
        storage = f"sqlite:///{tmp}/store.db"
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "scaling_optuna", "run", str(spec), "--storage", storage, "--workers", str(workers)],
            cwd=tmp, capture_output=True, text=True,
        )
        seconds = time.monotonic() - start
        if done.returncode != 0:
            raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        exp = load_experiment(spec, storage)
        result = {"seconds": seconds, **shares(exp)}
        if repeats:
            print_points(exp)
        return result


def shares(exp) -> dict[str, float]:
    """Re-runs' share of the summed ``wall_time_s`` and of the summed start-to-end trial time, and trial counts."""
    train = {"all": 0.0, "reruns": 0.0}
    span = {"all": 0.0, "reruns": 0.0}
    counts = {"all": 0, "reruns": 0}
    for study in exp.studies.values():
        for t in study.get_trials(deepcopy=False, states=FINISHED):
            kinds = ("all", "reruns") if "remeasure" in t.user_attrs else ("all",)
            for kind in kinds:
                train[kind] += float(t.user_attrs.get("wall_time_s") or 0.0)
                span[kind] += (t.datetime_complete - t.datetime_start).total_seconds()
                counts[kind] += 1
    return {
        "train_share": train["reruns"] / train["all"] if train["all"] else 0.0,
        "span_share": span["reruns"] / span["all"] if span["all"] else 0.0,
        "train_s": train["all"],
        "trials": counts["all"],
        "reruns": counts["reruns"],
    }


def print_points(exp) -> None:
    """Per size: the best single run's test error beside the chosen configuration's mean ± sd."""
    print(f"  {'size':>6}  {'best single run (trial: test err)':<34} {'chosen configuration (trial, runs: mean ± sd)'}")
    for size in exp.sizes:
        single = exp.records(size)
        search = [r for r in single if r.remeasure_of is None]
        best = exp.best_trial(size)
        if not search or best is None:
            continue
        sd = f" ± {best.test_error_sd:.4f}" if best.test_error_sd is not None else ""
        print(
            f"  {size:>6}  {search[0].trial_number:>4}: {search[0].test_error:<28.4f} "
            f"{best.trial_number:>4}, {best.runs}: {best.test_error:.4f}{sd}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "studies" / "digits.toml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top", type=int, help="configurations re-measured (default: the spec's)")
    parser.add_argument("--repeats", type=int, help="re-runs of each (default: the spec's)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved pairs of runs (off, on)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    setting = load_spec(args.spec).remeasure
    top = args.top if args.top is not None else setting.top
    repeats = args.repeats if args.repeats is not None else setting.repeats
    print(f"{args.spec.name}: {args.workers} workers, re-measuring the top {top} configurations × {repeats} re-runs")
    rows = []
    for i in range(args.rounds):
        off = run(args.spec, top, 0, args.workers)
        on = run(args.spec, top, repeats, args.workers)
        rows.append((off, on))
        print(
            f"round {i + 1}: off {off['seconds']:.0f} s ({off['trials']} trials); on {on['seconds']:.0f} s "
            f"({on['trials']} trials, {on['reruns']} re-runs); re-runs' share of training time {on['train_share']:.1%}, "
            f"of trial time {on['span_share']:.1%}; wall-clock on/off ×{on['seconds'] / off['seconds']:.2f}",
            flush=True,
        )
    if len(rows) > 1:
        print(
            f"median over {len(rows)} rounds: share of training time {statistics.median(r[1]['train_share'] for r in rows):.1%}, "
            f"of trial time {statistics.median(r[1]['span_share'] for r in rows):.1%}, "
            f"wall-clock on/off ×{statistics.median(r[1]['seconds'] / r[0]['seconds'] for r in rows):.2f}"
        )


if __name__ == "__main__":
    main()
