"""How long ``scaling-optuna compare`` takes on two finished experiments of 6 sizes (the goal: under 10 s here).

Trains ``studies/digits.toml`` and ``studies/digits-mlp.toml`` (6 sizes each,
``--trials`` search trials per size plus the specs' re-runs) into one store,
or reuses the store in ``--store-dir``, then runs ``scaling-optuna compare``
as a user would, in a fresh process each time (imports included), and prints
each run's wall-clock seconds and the CPU seconds of the process (user +
system), then the median of each.  On a machine that other jobs share the two
differ: the CPU seconds are what the command itself costs.

Run::

    python benchmarks/compare_time.py [--store-dir DIR] [--trials 12] [--workers 2] [--repeats 5] [--target 0.02]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extrapolation_real import _run  # noqa: E402  (the same training run as that benchmark)

ROOT = Path(__file__).resolve().parents[1]
SPECS = (ROOT / "studies" / "digits.toml", ROOT / "studies" / "digits-mlp.toml")


def time_compare(url: str, work: Path, target: float | None) -> tuple[float, float]:
    """One ``scaling-optuna compare`` of the two specs in a fresh process: (wall seconds, CPU seconds)."""
    cmd = [sys.executable, "-m", "scaling_optuna", "--log-level", "error", "compare", *map(str, SPECS), "--storage", url,
           "--out", str(work / "compare-out"), "--no-publish"]
    if target is not None:
        cmd += ["--target", str(target)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"'{' '.join(cmd)}' failed: {done.stderr.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store-dir", type=Path, help="keep the store here and reuse it (trained once)")
    parser.add_argument("--trials", type=int, default=12, help="search trials per size when training (default 12)")
    parser.add_argument("--workers", type=int, default=2, help="local workers when training (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="compare runs timed (default 5)")
    parser.add_argument("--target", type=float, default=0.02, help="compare's --target (default 0.02)")
    args = parser.parse_args(argv)

    work = args.store_dir or Path(tempfile.mkdtemp(prefix="compare-time-"))
    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'compare-time.db'}"
    for spec in SPECS:
        seconds = _run(spec, url, args.trials, args.workers, work)
        print(f"{spec.stem}: trained (or found finished) in {seconds:.0f} s", flush=True)
    walls, cpus = [], []
    for i in range(args.repeats):
        wall, cpu = time_compare(url, work, args.target)
        walls.append(wall)
        cpus.append(cpu)
        print(f"compare run {i + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    load = os.getloadavg()[0]
    print(
        f"scaling-optuna compare, 2 experiments of 6 sizes: median {statistics.median(walls):.2f} s wall, "
        f"{statistics.median(cpus):.2f} s CPU over {args.repeats} runs ({os.cpu_count()} cores, load average {load:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
