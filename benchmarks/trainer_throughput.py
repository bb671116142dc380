"""Training throughput of the project's trainer against the seed's loop and the machine's roofline.

Writes CIFAR-shaped synthetic images in the real CIFAR-10 python format
(``tests/cifar10_files.py``'s ``write_cifar10``), then, side by side in one
process and interleaved ``--repeats`` times:

* the seed's loop: a torchvision-style Dataset returning PIL images through
  ``Compose([ToTensor(), Normalize(...)])``, ``DataLoader(batch_size=4,
  shuffle=True)`` with ``num_workers=0`` and with ``num_workers=2`` (the
  seed's), one SGD step per batch, ``loss.item()`` every step, then a
  validation and a test pass at batch size 4 under ``no_grad``;
* a plain tensor loop on the same tensors, standardised once beforehand: the
  tutorial's network, a permuted index per epoch, batches of 64, stock SGD,
  NCHW (what a first rewrite without a DataLoader looks like);
* the project's trainer, ``train_model``, on the same images (loaded through
  the ``cifar10`` dataset of a spec; the model standardises its raw inputs
  with its training subset's statistics), with the default trainer settings
  (batch size 64, evaluation batches of 2048), and with batches of 256; as
  ablations, with the model standardising every batch (``standardize_once=False``)
  instead of the trainer standardising the tensors once per run, and on inputs
  standardised beforehand by a model without a ``Standardize`` module (the
  trainer before models carried their statistics);
* the trainer as ``scaling-optuna run --workers N`` runs it on N cores: N
  processes of one thread each, training at once (the speed of all of them
  together);
* a large fp32 matmul, the roofline: the faster of MKL's sgemm (``torch.mm``)
  and oneDNN's (MKL takes a slow path on AMD CPUs, oneDNN does not).

Throughput counts training plus evaluation images, per wall-clock second and
per CPU second (this process's threads plus its reaped DataLoader workers).
The machine is shared, so wall-clock figures swing with the neighbours' load;
single-threaded CPU time does not, which makes ``--threads 1`` the stable
measurement. The roofline fraction counts FLOPs as the issue defines them:
3 × the forward FLOPs for a training image (forward + backward), 1 × for an
evaluated one, forward FLOPs from ``torch.utils.flop_counter``. Medians over
the repeats are printed; every ratio is taken within one repeat first.

Usage::

    python benchmarks/trainer_throughput.py                 # all cores
    python benchmarks/trainer_throughput.py --threads 1
    python benchmarks/trainer_throughput.py --quick         # one repeat, smaller sets
    python benchmarks/trainer_throughput.py --threads 1 --repeats 7 --only standardi
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaling_optuna.data import CIFAR10_FOLDER  # noqa: E402
from scaling_optuna.data import CIFAR10_TEST_FILE  # noqa: E402
from scaling_optuna.data import CIFAR10_TRAIN_FILES  # noqa: E402
from scaling_optuna.data import load_dataset  # noqa: E402
from scaling_optuna.model import SeedCNN  # noqa: E402
from scaling_optuna.model import Standardize  # noqa: E402
from scaling_optuna.spec import TrainerSpec  # noqa: E402
from scaling_optuna.spec import parse_spec  # noqa: E402
from scaling_optuna import train as train_module  # noqa: E402
from scaling_optuna.train import configure_process  # noqa: E402
from scaling_optuna.train import train_model  # noqa: E402
from tests.cifar10_files import write_cifar10  # noqa: E402

SEED_WIDTHS = (6, 16, 120, 84)
WIDEST = (100, 100, 200, 200)
SPLIT_SEED = 0


class TutorialNet(nn.Module):
    """The seed's network exactly as the PyTorch tutorial writes it: pool(relu(conv)).

    With ``input_stats`` it standardises its inputs first, as SeedCNN does, so
    that the two differ in the order of pooling and ReLU only.
    """

    def __init__(self, conv1: int, conv2: int, fc1: int, fc2: int, *, input_stats=None) -> None:
        super().__init__()
        self.standardize = Standardize((3, 32, 32), input_stats) if input_stats is not None else nn.Identity()
        self.conv1 = nn.Conv2d(3, conv1, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(conv1, conv2, 5)
        self.fc1 = nn.Linear(conv2 * 5 * 5, fc1)
        self.fc2 = nn.Linear(fc1, fc2)
        self.fc3 = nn.Linear(fc2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(self.standardize(x))))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class SeedCIFAR(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10 without its md5 check: PIL images from the python batches."""

    def __init__(self, root: Path, files: tuple[str, ...], indices: np.ndarray, transform: transforms.Compose) -> None:
        data, targets = [], []
        for name in files:
            with open(root / CIFAR10_FOLDER / name, "rb") as f:
                entry = pickle.load(f, encoding="latin1")  # what torchvision does; our own files
            # The official files were pickled by Python 2 (str keys); write_cifar10's by Python 3 (bytes keys).
            data.append(entry["data"] if "data" in entry else entry[b"data"])
            targets.extend(entry["labels"] if "labels" in entry else entry[b"labels"])
        self.data = np.vstack(data).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))[indices]
        self.targets = [targets[i] for i in indices]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.data[index])
        return self.transform(img), self.targets[index]


def write_images(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """Class templates plus noise, so that the loss actually falls during the runs."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, size=(10, 3, 32, 32)).astype(np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, size=n)
        x = 0.5 * templates[y] + 0.5 * rng.integers(0, 256, size=(n, 3, 32, 32))
        return x.clip(0, 255).astype(np.uint8), y

    write_cifar10(root, *draw(n_train), *draw(n_test))


def seed_split(n_train_files: int, n_val: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The same validation set and training subset as scaling_optuna.data.split draws."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n_train_files)
    return order[n_val : n_val + size], order[:n_val]


@dataclasses.dataclass
class Speed:
    """Images per wall-clock second and per CPU second, and minor page faults per image."""

    wall: float
    cpu: float
    faults: float


class Stopwatch:
    """Wall-clock time, CPU time (threads and reaped child processes) and page faults of a block."""

    def __enter__(self) -> "Stopwatch":
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        self.wall, self.cpu, self.faults = (b - a for a, b in zip(self._start, end))

    @staticmethod
    def _now() -> tuple[float, float, float]:
        me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
        return time.perf_counter(), cpu, float(me.ru_minflt)

    def speed(self, images: int) -> Speed:
        return Speed(images / self.wall, images / max(self.cpu, 1e-9), self.faults / images)


def images_processed(data, size: int, epochs: int) -> int:
    """Images a trainer run touches: ``size`` training and the validation set per epoch, then the test set."""
    return epochs * (size + len(data.y_val)) + len(data.y_test)


def run_seed_loop(root: Path, train_idx: np.ndarray, val_idx: np.ndarray, n_test: int, widths: tuple[int, ...], workers: int) -> Speed:
    """The seed's loop: one epoch, then validation and test passes."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    trainset = SeedCIFAR(root, CIFAR10_TRAIN_FILES, train_idx, transform)
    valset = SeedCIFAR(root, CIFAR10_TRAIN_FILES, val_idx, transform)
    testset = SeedCIFAR(root, (CIFAR10_TEST_FILE,), np.arange(n_test), transform)
    torch.manual_seed(0)
    net = TutorialNet(*widths)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    with Stopwatch() as watch:
        trainloader = DataLoader(trainset, batch_size=4, shuffle=True, num_workers=workers)
        running_loss = 0.0
        for inputs, labels in trainloader:
            optimizer.zero_grad()
            loss = criterion(net(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        for dataset in (valset, testset):
            loader = DataLoader(dataset, batch_size=4, shuffle=False, num_workers=workers)
            correct = total = 0
            val_loss = 0.0
            with torch.no_grad():
                for images, labels in loader:
                    outputs = net(images)
                    val_loss += criterion(outputs, labels).item()
                    _, predicted = torch.max(outputs.data, 1)
                    total += labels.size(0)
                    correct += (predicted == labels).sum().item()
        del trainloader, loader  # joins the workers, so that their CPU time is counted
    return watch.speed(len(trainset) + len(valset) + len(testset))


def standardised_beforehand(data, size: int):
    """The subset, validation and test inputs standardised once with the subset's statistics, as tensors."""
    mean, std = data.input_stats(size)
    return types.SimpleNamespace(
        x_pool=(data.x_pool[:size] - mean) / std, y_pool=data.y_pool[:size],
        x_val=(data.x_val - mean) / std, y_val=data.y_val,
        x_test=(data.x_test - mean) / std, y_test=data.y_test,
    )


def run_trainer(
    data, size: int, widths: tuple[int, ...], epochs: int, *, model_cls: type = SeedCNN, cpu_eval_batch: int | None = None,
    batch_size: int | None = None, outside: bool = False, **options
) -> Speed:
    """The project's trainer for ``epochs`` epochs with the default trainer settings.

    The model carries the subset's statistics for its raw inputs, as a worker's
    does; ``outside`` standardises the inputs beforehand and drops the model's
    ``Standardize`` module instead.
    """
    trainer = TrainerSpec()
    stats = data.input_stats(size)
    torch.manual_seed(0)
    if model_cls is SeedCNN:
        net = SeedCNN((3, 32, 32), 10, *widths, input_stats=stats)
    else:
        net = model_cls(*widths, input_stats=stats)
    if outside:
        net.standardize = nn.Identity()
        data = standardised_beforehand(data, size)
    default_cap = train_module.CPU_EVAL_BATCH
    train_module.CPU_EVAL_BATCH = cpu_eval_batch or default_cap
    try:
        with Stopwatch() as watch:
            result = train_model(
                net,
                (data.x_pool[:size], data.y_pool[:size]),
                (data.x_val, data.y_val),
                (data.x_test, data.y_test),
                lr=0.01,
                momentum=0.9,
                weight_decay=1e-5,
                batch_size=batch_size or trainer.batch_size,
                max_epochs=epochs,
                patience=epochs,
                eval_batch_size=trainer.eval_batch_size,
                **options,
            )
    finally:
        train_module.CPU_EVAL_BATCH = default_cap
    assert result.epochs_run == epochs
    return watch.speed(images_processed(data, size, epochs))


def run_plain_loop(data, size: int, widths: tuple[int, ...], epochs: int, batch_size: int = 64) -> Speed:
    """A plain tensor loop: the tutorial's network, the tensors in memory, a permuted index per epoch.

    What the issue calls the floor's reference: no DataLoader and no per-image
    Python, but none of the trainer's CPU choices (default NCHW layout, stock
    SGD, evaluation in batches of 1000 under ``no_grad``).
    """
    torch.manual_seed(0)
    net = TutorialNet(*widths)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
    data = standardised_beforehand(data, size)
    x, y = data.x_pool, data.y_pool
    with Stopwatch() as watch:
        for _ in range(epochs):
            order = torch.randperm(size)
            for i in range(0, size, batch_size):
                idx = order[i : i + batch_size]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                for i in range(0, len(data.y_val), 1000):
                    F.cross_entropy(net(data.x_val[i : i + 1000]), data.y_val[i : i + 1000]).item()
        with torch.no_grad():
            for i in range(0, len(data.y_test), 1000):
                F.cross_entropy(net(data.x_test[i : i + 1000]), data.y_test[i : i + 1000]).item()
    return watch.speed(images_processed(data, size, epochs))


def run_side_by_side(root: Path, n_val: int, pool: int, size: int, widths: tuple[int, ...], epochs: int, processes: int) -> Speed:
    """``processes`` single-threaded trainer runs at once, each in its own process, started together.

    This is how ``scaling-optuna run --workers N`` uses the cores: N trials at
    once, one thread each. The speed is their images together over the time
    until the last one is done.
    """
    command = [sys.executable, __file__, "--child", str(root), str(n_val), str(pool), str(size), ",".join(map(str, widths)), str(epochs)]
    children = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    for child in children:
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("a side-by-side trainer failed to start")
    start = time.perf_counter()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [json.loads(child.stdout.readline()) for child in children]
    wall = time.perf_counter() - start
    for child in children:
        child.wait()
    images = sum(r["images"] for r in results)
    return Speed(images / wall, images / sum(r["cpu"] for r in results), sum(r["faults"] for r in results) / images)


def child_trainer(root: str, n_val: str, pool: str, size: str, widths: str, epochs: str) -> None:
    """One side-by-side run: load the data, say ready, train on ``go``, print its CPU time as JSON."""
    torch.set_num_threads(1)
    configure_process(torch.device("cpu"))
    data = load_dataset(throughput_spec(Path(root), int(n_val), int(pool)))
    print("ready", flush=True)
    sys.stdin.readline()
    speed = run_trainer(data, int(size), tuple(int(w) for w in widths.split(",")), int(epochs))
    images = images_processed(data, int(size), int(epochs))
    print(json.dumps({"images": images, "cpu": images / speed.cpu, "faults": speed.faults * images}), flush=True)


def throughput_spec(root: Path, n_val: int, pool: int):
    return parse_spec({
        "name": "throughput",
        "seed": SPLIT_SEED,
        "data": {"dataset": "cifar10", "root": str(root), "download": False, "validation_size": n_val},
        "sizes": {"counts": [pool]},
    })


def roofline() -> dict[str, Speed]:
    """GFLOP/s of a 2048² fp32 matmul through MKL and through oneDNN, best of 5 (wall and CPU separately)."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    kernels = {"mkl": lambda: torch.mm(a, b)}
    if torch.backends.mkldnn.is_available():
        a_mkldnn = a.to_mkldnn()
        kernels["onednn"] = lambda: torch._C._nn.mkldnn_linear(a_mkldnn, b, None)
    out = {}
    for name, kernel in kernels.items():
        kernel()
        walls, cpus = [], []
        for _ in range(5):
            with Stopwatch() as watch:
                kernel()
            walls.append(watch.wall)
            cpus.append(watch.cpu)
        out[name] = Speed(2 * n**3 / min(walls) / 1e9, 2 * n**3 / max(min(cpus), 1e-3) / 1e9, 0.0)
    out["roofline"] = Speed(max(v.wall for v in out.values()), max(v.cpu for v in out.values()), 0.0)
    return out


def forward_flops(widths: tuple[int, ...]) -> tuple[float, float]:
    """Forward FLOPs per image, and forward+backward FLOPs as actually executed (conv1 has no input gradient)."""
    net = SeedCNN((3, 32, 32), 10, *widths)
    x = torch.randn(8, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        net(x)
    forward = counter.get_total_flops() / len(x)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(x), torch.zeros(len(x), dtype=torch.long)).backward()
    return forward, counter.get_total_flops() / len(x)


def median(values) -> float:
    return statistics.median(list(values))


def main() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=cores, help="torch threads for every loop (default: all cores)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat on smaller sets")
    parser.add_argument("--no-ablations", action="store_true", help="skip the trainer variants")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="run only the trainer rows whose names contain one of these (the trainer itself and the seed loops always run)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_trainer(*args.child)
    repeats = 1 if args.quick else args.repeats
    torch.set_num_threads(args.threads)
    configure_process(torch.device("cpu"))  # what a worker does at start-up
    print(f"machine: {cores} cores ({platform.processor() or platform.machine()}), load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s) for every loop, {repeats} repeat(s)")

    n_val, n_test = (500, 500) if args.quick else (1000, 1000)
    sizes = {SEED_WIDTHS: 2000 if args.quick else 4000, WIDEST: 500 if args.quick else 1000}
    seed_sizes = {SEED_WIDTHS: 1000 if args.quick else 2000, WIDEST: 300 if args.quick else 600}
    epochs = {SEED_WIDTHS: 3, WIDEST: 2}
    n_files = max(sizes.values()) + n_val
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_images(root, n_files, n_test)
        pool = max(sizes.values())
        data = load_dataset(throughput_spec(root, n_val, pool))
        print(f"data: {n_files} CIFAR-format training images ({n_val} of them validation) and {n_test} test images, "
              "written by tests/cifar10_files.py, read by the seed's Dataset and by the cifar10 spec dataset")

        for widths in (SEED_WIDTHS, WIDEST):
            fwd, counted = forward_flops(widths)
            train_idx, val_idx = seed_split(n_files, n_val, seed_sizes[widths])
            variants: dict[str, dict] = {
                "plain tensor loop (tutorial net, NCHW, stock SGD)": {"plain": True},
                "trainer": {},
                "trainer, batch 256": {"batch_size": 256},
                f"trainer × {cores} processes side by side, 1 thread each": {"side_by_side": cores},
            }
            if not args.no_ablations:
                variants.update({
                    "trainer, model standardising every batch (standardize_once=False)": {"standardize_once": False},
                    "trainer, inputs standardised beforehand, no Standardize in the model": {"outside": True},
                    "trainer, NCHW (channels_last=False)": {"channels_last": False},
                    "trainer, pool(relu(conv)) (tutorial order)": {"model_cls": TutorialNet},
                    "trainer, CPU evaluation in batches of 2048, not 128": {"cpu_eval_batch": 2048},
                    "trainer, bf16 autocast on CPU (mixed_precision=True)": {"mixed_precision": True},
                })
            if args.only:
                variants = {k: v for k, v in variants.items() if k == "trainer" or any(t in k for t in args.only)}
            seeds = ("seed loop, num_workers=0", "seed loop, num_workers=2 (the seed's)")
            rows: dict[str, list[Speed]] = {k: [] for k in (*seeds, *variants)}
            lines: dict[str, list[Speed]] = {"mkl": [], "onednn": [], "roofline": []}
            for _ in range(repeats):
                before = roofline()
                rows[seeds[0]].append(run_seed_loop(root, train_idx, val_idx, n_val, widths, 0))
                for name, options in variants.items():
                    if "plain" in options:
                        speed = run_plain_loop(data, sizes[widths], widths, epochs[widths])
                    elif "side_by_side" in options:
                        speed = run_side_by_side(root, n_val, pool, sizes[widths], widths, epochs[widths], options["side_by_side"])
                    else:
                        speed = run_trainer(data, sizes[widths], widths, epochs[widths], **options)
                    rows[name].append(speed)
                rows[seeds[1]].append(run_seed_loop(root, train_idx, val_idx, n_val, widths, 2))
                after = roofline()
                # The loops ran between two roofline measurements; the better one keeps the fraction honest.
                for key in lines:
                    if key in before:
                        lines[key].append(Speed(max(before[key].wall, after[key].wall), max(before[key].cpu, after[key].cpu), 0.0))

            e, size, n_eval = epochs[widths], sizes[widths], epochs[widths] * n_val + n_test
            flop_per_image = (e * size * 3 * fwd + n_eval * fwd) / (e * size + n_eval)
            print(f"\nwidths {widths}: {fwd / 1e6:.2f} MFLOP forward per image, training 3× = {3 * fwd / 1e6:.2f} "
                  f"(forward+backward as executed: {counted / 1e6:.2f}); trainer: {size} images × {e} epochs, "
                  f"seed loop: {seed_sizes[widths]} × 1 epoch; each epoch + {n_val} validation, then {n_test} test images")
            print(f"  {'':56s} {'img/s':>8s} {'img/CPU-s':>10s}   speed-up vs seed w=0 (wall, CPU)   vs seed w=2 (wall, CPU)")
            for name, values in rows.items():
                ratios = [median(getattr(v, k) / getattr(b, k) for v, b in zip(values, rows[base])) for base in seeds for k in ("wall", "cpu")]
                print(f"  {name:56s} {median(v.wall for v in values):8.0f} {median(v.cpu for v in values):10.0f}"
                      f"   ×{ratios[0]:6.2f} ×{ratios[1]:6.2f}                     ×{ratios[2]:6.2f} ×{ratios[3]:6.2f}")
            for name in variants:
                if name != "trainer" and "plain" not in variants[name]:
                    wall = median(v.wall / t.wall for v, t in zip(rows[name], rows["trainer"]))
                    cpu = median(v.cpu / t.cpu for v, t in zip(rows[name], rows["trainer"]))
                    print(f"  {name:56s} = ×{wall:.2f} (wall), ×{cpu:.2f} (CPU) the trainer's throughput")
            for k, unit in (("wall", "GFLOP/s"), ("cpu", "GFLOP per CPU-s")):
                achieved = [getattr(v, k) * flop_per_image / 1e9 for v in rows["trainer"]]
                fractions = [a / getattr(r, k) for a, r in zip(achieved, lines["roofline"])]
                print(f"  roofline by {k:4s}: MKL {median(getattr(v, k) for v in lines['mkl']):.0f}, oneDNN "
                      f"{median(getattr(v, k) for v in lines['onednn']):.0f} {unit}; trainer {median(achieved):.0f} = "
                      f"{100 * median(fractions):.0f}% of roofline (per repeat: {', '.join(f'{100 * f:.0f}%' for f in fractions)})")
            print(f"  minor page faults per image in the trainer: {median(v.faults for v in rows['trainer']):.2f}")


if __name__ == "__main__":
    main()
