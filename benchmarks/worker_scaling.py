"""Workers scale: trials per hour of two workers on two cores against one worker.

Runs one experiment (default ``studies/digits.toml``, its sampler, pruner and
trainer as shipped) from scratch against a temporary SQLite store, with the
CLI's workers (``python -m scaling_optuna worker``) started together, in
these configurations, interleaved ``--repeats`` times:

* 1 worker × all cores' threads (what ``scaling-optuna run`` gives one worker),
* 1 worker × 1 thread,
* N workers × 1 thread each (``default_threads(N)`` on N cores: they do not fight).

Trials per hour count the finished (complete or pruned) trials over the
window from the first trial's start to the last one's end, as the store
recorded them: the steady state, without the workers' startup (importing
torch, loading data: a few seconds, the same for one worker or two) and
without their exit (a worker with nothing left to start re-checks the store
every second, so its exit trails the last trial by up to that). End-to-end
figures, startup and exit included, are printed too. The goal compares N
workers with one worker of the same threads each; the faster single worker
(which may use every core) is set beside them as well.
CPU seconds per trial come from the workers' rusage, startup included; equal
CPU per trial with and without a second worker means they did not fight.
The machine is shared: the cores that other processes used during each run
(``/proc/stat`` minus the workers' own CPU time), and the cores the
hypervisor took away (steal), are printed with it.

Usage::

    python benchmarks/worker_scaling.py                      # ~4 min on 2 cores
    python benchmarks/worker_scaling.py --trials 4 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from scaling_optuna.experiment import create_experiment  # noqa: E402
from scaling_optuna.experiment import load_experiment  # noqa: E402
from scaling_optuna.spec import load_spec  # noqa: E402


def machine_busy_s() -> tuple[float, float]:
    """CPU seconds all processes of the machine have used so far, and seconds the hypervisor took
    from its virtual CPUs (steal), from Linux's /proc/stat; zeros elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def run(spec_path: Path, trials: int, workers: int, threads: int) -> dict[str, float]:
    """One experiment from scratch with ``workers`` worker processes; returns trials/hour and CPU s/trial."""
    spec = load_spec(spec_path).with_trials(trials)
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/store.db"
        create_experiment(spec, storage)
        command = [
            sys.executable, "-m", "scaling_optuna", "--log-level", "warning", "worker", str(spec_path),
            "--storage", storage, "--trials", str(trials), "--threads", str(threads),
        ]
        # Workers run in the temporary folder (their artifacts land there) and find cached data through a link.
        (Path(tmp) / "data").symlink_to(ROOT / "data", target_is_directory=True)
        before, busy_before = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy_s()
        start = time.perf_counter()
        procs = [subprocess.Popen(command, cwd=tmp, stdout=subprocess.DEVNULL) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - start
        after, busy_after = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy_s()
        if any(codes):
            raise RuntimeError(f"a worker failed: exit codes {codes}")
        exp = load_experiment(spec, storage)
        done = [t for size in exp.sizes for t in exp.trials(size, states=(TrialState.COMPLETE, TrialState.PRUNED))]
        window = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "others_cores": max(0.0, (busy_after[0] - busy_before[0]) - cpu) / wall,
        "steal_cores": (busy_after[1] - busy_before[1]) / wall,
        "trials_per_hour": len(done) / window * 3600,
        "end_to_end_per_hour": len(done) / wall * 3600,
        "cpu_per_trial": cpu / len(done),
        "wall": wall,
        "window": window,
        "finished": len(done),
    }


def main() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "studies" / "digits.toml"))
    parser.add_argument("--trials", type=int, default=8, help="trials per size (default 8)")
    parser.add_argument("--workers", type=int, default=cores, help="workers of the parallel run (default: one per core)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec_path = Path(args.spec).resolve()
    print(f"machine: {cores} cores ({platform.machine()}), load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, "
          f"optuna {optuna.__version__}; {spec_path.name}, {args.trials} trials per size, {args.repeats} repeat(s)")
    configs = {
        f"1 worker × {cores} threads": (1, cores),
        "1 worker × 1 thread": (1, 1),
        f"{args.workers} workers × 1 thread": (args.workers, 1),
    }
    results: dict[str, list[dict[str, float]]] = {k: [] for k in configs}
    for repeat in range(args.repeats):
        for name, (workers, threads) in configs.items():
            results[name].append(run(spec_path, args.trials, workers, threads))
            r = results[name][-1]
            print(f"  repeat {repeat + 1}: {name:22s} {r['finished']} trials in {r['window']:6.1f} s "
                  f"({r['trials_per_hour']:6.0f}/h; end to end {r['wall']:6.1f} s, {r['end_to_end_per_hour']:6.0f}/h; "
                  f"{r['cpu_per_trial']:.2f} CPU s per trial; other processes used {r['others_cores']:.2f} cores, "
                  f"the hypervisor {r['steal_cores']:.2f})", flush=True)
    parallel = f"{args.workers} workers × 1 thread"
    print("\nsteady-state trials per hour (medians; ratios within each repeat):")
    for name, rows in results.items():
        vs = {base: statistics.median(r["trials_per_hour"] / b["trials_per_hour"] for r, b in zip(rows, results[base])) for base in configs}
        print(f"  {name:22s} {statistics.median(r['trials_per_hour'] for r in rows):6.0f} trials/h, "
              f"{statistics.median(r['cpu_per_trial'] for r in rows):.2f} CPU s/trial, "
              f"other processes on {statistics.median(r['others_cores'] for r in rows):.2f} cores;  "
              + ", ".join(f"×{v:.2f} vs {base}" for base, v in vs.items() if base != name))
    best_single = max((n for n in configs if n != parallel), key=lambda n: statistics.median(r["trials_per_hour"] for r in results[n]))
    same_threads = "1 worker × 1 thread"
    for key, label in (("trials_per_hour", "steady state"), ("end_to_end_per_hour", "end to end")):
        bases = {same_threads: "the same threads per worker"}
        bases.setdefault(best_single, "the faster single worker")
        for base, why in bases.items():
            ratio = statistics.median(p[key] / s[key] for p, s in zip(results[parallel], results[base]))
            goal = " (goal ≥ 1.7)" if key == "trials_per_hour" and base == same_threads else ""
            print(f"{parallel} against {base} ({why}), {label}: ×{ratio:.2f} trials per hour{goal}")


if __name__ == "__main__":
    main()
