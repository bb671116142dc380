"""The seed's whole CIFAR-10 experiment on one GPU: wall time, aggregate images/s, GPU utilisation.

Runs ``scaling-optuna run studies/cifar10.toml --workers N --device cuda``
as a user would (9 sizes, 200 … 40000 images, 20 trials each, up to 15
epochs, TPE and the median pruner), against a fresh SQLite store, and samples
``nvidia-smi`` every second while it runs. The goal is the whole experiment
in under 15 minutes on one H200, with several workers sharing the device so
that the small CNN does not leave it idle.

Data: CIFAR-10 itself where ``--data-root`` holds ``cifar-10-batches-py``;
otherwise (as on a machine without a network) 50,000 + 10,000 synthetic
images in the real CIFAR-10 file format, written as
``benchmarks/trainer_throughput.py`` writes them. They have CIFAR's shapes,
so every step costs what it costs on CIFAR; how many epochs early stopping
and pruning leave may differ.

Images/s counts what the trials computed, from the store: every epoch's
training and validation images, plus the test set once per completed trial,
over the run's wall time (start-up included).

Usage::

    python benchmarks/gpu_experiment.py --workers 8                    # on a GPU machine
    python benchmarks/gpu_experiment.py --workers 4 --trials 5         # a quarter of it
    python benchmarks/gpu_experiment.py --device cpu --workers 2 --trials 1 \\
        --train-images 2500 --test-images 500 --max-epochs 2           # a check of the script, on the CPU
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from scaling_optuna.data import CIFAR10_FOLDER  # noqa: E402
from scaling_optuna.experiment import load_experiment  # noqa: E402
from scaling_optuna.spec import load_spec  # noqa: E402
from trainer_throughput import write_images  # noqa: E402  (benchmarks/ is this script's folder)

GOAL_S = 15 * 60


def spec_text(data_root: Path, validation: int, max_epochs: int | None) -> str:
    """studies/cifar10.toml with the data read from ``data_root`` and no download."""
    text = (ROOT / "studies" / "cifar10.toml").read_text()
    edits = [
        (r'(?m)^root = "data"$', f"root = {str(data_root)!r}"),
        (r"(?m)^download = true$", "download = false"),
        (r"(?m)^validation_size = 10000$", f"validation_size = {validation}"),
    ]
    if max_epochs is not None:
        edits.append((r"(?m)^max_epochs = 15$", f"max_epochs = {max_epochs}"))
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text)
        if count != 1:
            raise SystemExit(f"studies/cifar10.toml changed: {pattern!r} no longer matches once; update this script")
    return text


class GpuSampler:
    """``nvidia-smi`` readings (utilisation %, memory MiB) once a second, in a thread."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def __enter__(self) -> "GpuSampler":
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()

    def _run(self) -> None:
        query = ["nvidia-smi", "--id=0", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.wait(1.0):
            out = subprocess.run(query, capture_output=True, text=True).stdout.strip()
            try:
                util, memory = (float(v) for v in out.split(","))
            except ValueError:
                continue
            self.samples.append((util, memory))


def images_computed(spec, storage: str, n_val: int, n_test: int) -> tuple[int, int, int]:
    """Training + validation + test images of all finished trials, and the complete and pruned counts."""
    exp = load_experiment(spec, storage)
    images = complete = pruned = 0
    for size in exp.sizes:
        for t in exp.trials(size, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            images += int(t.user_attrs.get("epochs_run", 0)) * (size + n_val)
            if t.state == TrialState.COMPLETE:
                images += n_test
                complete += 1
            else:
                pruned += 1
    return images, complete, pruned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="the workers' device (default cuda)")
    parser.add_argument("--workers", type=int, default=8, help="worker processes sharing the device (default 8)")
    parser.add_argument("--trials", type=int, default=20, help="trials per size (default 20, the seed's)")
    parser.add_argument("--max-epochs", type=int, default=None, help="epoch cap (default: the spec's 15)")
    parser.add_argument("--train-images", type=int, default=50000, help="synthetic training images (default 50000)")
    parser.add_argument("--test-images", type=int, default=10000, help="synthetic test images (default 10000)")
    parser.add_argument("--data-root", help="a folder holding cifar-10-batches-py, used instead of synthetic images")
    args = parser.parse_args()

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"machine: {os.cpu_count()} cores ({platform.machine()}), GPU {gpu}, torch {torch.__version__}, "
          f"optuna {optuna.__version__}; {args.workers} worker(s) on {args.device}, {args.trials} trials per size", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data_root and (Path(args.data_root) / CIFAR10_FOLDER).is_dir():
            data_root, n_train, n_test, what = Path(args.data_root), 50000, 10000, "CIFAR-10"
        else:
            data_root, n_train, n_test = Path(tmp), args.train_images, args.test_images
            write_images(data_root, n_train, n_test)
            what = "synthetic images in CIFAR-10's file format"
        n_val = n_train // 5  # the seed's 20%: 10,000 of 50,000
        spec_path = Path(tmp) / "cifar10.toml"
        spec_path.write_text(spec_text(data_root, n_val, args.max_epochs))
        storage = f"sqlite:///{tmp}/store.db"
        print(f"data: {what}, {n_train} training ({n_val} of them validation), {n_test} test", flush=True)

        command = [sys.executable, "-m", "scaling_optuna", "run", str(spec_path), "--storage", storage,
                   "--workers", str(args.workers), "--device", args.device, "--trials", str(args.trials)]
        with GpuSampler() as sampler:
            start = time.perf_counter()
            done = subprocess.run(command, cwd=tmp)
            wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"scaling-optuna run exited with {done.returncode}")
        spec = load_spec(spec_path).with_trials(args.trials)
        images, complete, pruned = images_computed(spec, storage, n_val, n_test)

    print(f"\nwhole experiment: {wall / 60:.1f} min wall, {complete} complete + {pruned} pruned trials, "
          f"{images:,} images computed, {images / wall:,.0f} images/s in aggregate")
    if sampler.samples:
        util = [u for u, _ in sampler.samples]
        print(f"GPU utilisation: mean {statistics.mean(util):.0f}%, median {statistics.median(util):.0f}%, "
              f"{100 * sum(u >= 50 for u in util) / len(util):.0f}% of seconds at 50% or more; "
              f"memory up to {max(m for _, m in sampler.samples) / 1024:.1f} GiB ({len(util)} one-second samples)")
    else:
        print("GPU utilisation: not sampled (no nvidia-smi)")
    print(f"goal: the whole experiment in under {GOAL_S // 60} min: {'ok' if wall < GOAL_S else 'MISSED'}")


if __name__ == "__main__":
    main()
