"""Plug-in overhead: a ``[model] builder`` and ``[data] loader`` against the built-in model of the same architecture.

Two specs train the seed's CNN (widths 6, 16, 120, 84; unpadded 5×5
convolutions) on Fashion-MNIST with the built-in trainer:

* built-in: ``dataset = "fashion-mnist"``, ``kind = "cnn"`` (``SeedCNN``);
* plug-in: ``loader = "_plugin_cnn:fashion_mnist"`` (torchvision's
  FashionMNIST, returned as tensors) and ``builder = "_plugin_cnn:seed_cnn"``
  (the same layers as a user writes them, an ``nn.Sequential``), imported from
  ``benchmarks/`` through the spec's ``python_path``.

Every trial goes through the worker's own ``TrialRunner.run`` (suggest, build,
train with ``train_model``, evaluate) on an in-memory study, with fixed
parameters and ``max_epochs`` epochs without early stopping; the two paths
alternate, ``--repeats`` times. Throughput counts training and evaluation
images per wall-clock second of the whole trial, and per CPU second of this
process; the ratio is taken within each repeat, then the median. Both paths
start from the same initial weights (same seed, same layers in the same
order), so their validation losses must agree: printed as the check that the
architecture is the same.

Usage::

    python benchmarks/plugin_overhead.py                     # 1 thread, 5 repeats, ~3 min on a CPU
    python benchmarks/plugin_overhead.py --device cuda --size 50000 --threads 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import optuna
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from scaling_optuna.data import load_dataset  # noqa: E402
from scaling_optuna.preflight import check_runnable  # noqa: E402
from scaling_optuna.spec import parse_spec  # noqa: E402
from scaling_optuna.train import configure_process  # noqa: E402
from scaling_optuna.worker import PruneCheck  # noqa: E402
from scaling_optuna.worker._objective import DeviceData  # noqa: E402
from scaling_optuna.worker._objective import TrialRunner  # noqa: E402

PARAMS = {"lr": 0.05, "weight_decay": 1e-5, "momentum": 0.9, "conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84}


def spec_of(kind: str, args: argparse.Namespace):
    data = {"dataset": "fashion-mnist", "root": args.root} if kind == "built-in" else {"loader": "_plugin_cnn:fashion_mnist"}
    model = {"kind": "cnn"} if kind == "built-in" else {"builder": "_plugin_cnn:seed_cnn"}
    raw = {
        "name": f"overhead-{kind}", "python_path": [str(HERE)], "sizes": {"counts": [args.size]},
        "data": {**data, "validation_size": 10000}, "model": model, "search_space": dict(PARAMS),
        "trainer": {"max_epochs": args.epochs, "patience": args.epochs + 1, "batch_size": 64, "device": args.device},
        "pruner": {"name": "NopPruner"},
    }
    return parse_spec(raw)


def runner_of(kind: str, args: argparse.Namespace) -> tuple[TrialRunner, int]:
    spec = spec_of(kind, args)
    data = load_dataset(spec)
    device = check_runnable(spec, data, args.device)
    runner = TrialRunner(spec, DeviceData.on(data, device), threading.Event(), who="benchmark")
    images = args.epochs * (args.size + len(data.y_val)) + len(data.y_test)
    return runner, images


def one_trial(runner: TrialRunner, size: int) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and the validation loss of one trial through the worker's runner."""
    study = optuna.create_study()
    study.enqueue_trial(PARAMS)
    trial = study.ask()
    if runner.tensors.x_pool.is_cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = runner.run(trial, size, PruneCheck(study))
    if runner.tensors.x_pool.is_cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if outcome.value is None:
        raise SystemExit(f"a trial did not complete: {outcome}")
    return wall, cpu, outcome.value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4000, help="training images per trial (default 4000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="trials of each path, interleaved (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the stable measurement)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--root", default="data", help="where Fashion-MNIST is (or is unpacked from Debian's copy)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ["FASHION_MNIST_ROOT"] = args.root
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runners = {kind: runner_of(kind, args) for kind in ("built-in", "plug-in")}  # built-in first: it unpacks the files
    configure_process(runners["built-in"][0].tensors.x_pool.device)
    one_trial(runners["built-in"][0], args.size)  # warm-up: allocator, kernels
    rows: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in runners}
    for repeat in range(args.repeats):
        order = list(runners) if repeat % 2 == 0 else list(reversed(runners))
        for kind in order:
            rows[kind].append(one_trial(runners[kind][0], args.size))
    report(rows, {kind: images for kind, (_, images) in runners.items()}, args)
    return 0


def report(rows: dict, images: dict, args: argparse.Namespace) -> None:
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {args.threads} thread(s)"
    print(f"seed CNN 6-16-120-84 on Fashion-MNIST, {args.size} training images × {args.epochs} epochs per trial, "
          f"{args.repeats} repeats, {device}")
    print(f"{'path':<10} {'images/s (wall)':>16} {'images/s (CPU)':>15} {'val loss':>10}")
    for kind, measured in rows.items():
        wall = statistics.median(images[kind] / w for w, _, _ in measured)
        cpu = statistics.median(images[kind] / c for _, c, _ in measured)
        print(f"{kind:<10} {wall:>16,.0f} {cpu:>15,.0f} {measured[0][2]:>10.6f}")
    pairs = list(zip(rows["built-in"], rows["plug-in"]))
    wall = [b[0] / p[0] for b, p in pairs]
    cpu = [b[1] / p[1] for b, p in pairs]
    same = all(abs(b[2] - p[2]) <= 1e-5 * abs(b[2]) for b, p in pairs)
    print(f"plug-in throughput / built-in, median (range) of the repeats: {statistics.median(wall):.3f} "
          f"({min(wall):.3f}–{max(wall):.3f}) wall, {statistics.median(cpu):.3f} ({min(cpu):.3f}–{max(cpu):.3f}) CPU; "
          f"same validation loss in every repeat: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
