"""The neural dev scaling curves and the extrapolation protocol of their benchmark.

``neural-dev.csv.gz`` (columns ``Domain, Task, Model, Seen Examples, Loss,
Training``) holds curves of the published benchmark of Alabdulmohsin et al.,
"Revisiting Neural Scaling Laws in Language and Vision" (NeurIPS 2022): image
few-shot error (``IC``: BiT, MiX and ViT models on birds and Caltech, 5/10/25
shots), language-model validation loss (``LM``) and BIG-bench few-shot error
(``BB``), each against the number of examples seen.  Rows with
``Training == 0`` are the benchmark's points to predict.

**Split**, fixed, by task: within each domain the tasks are sorted by name
and alternate, the first to *calibration*, the next to *evaluation*, and so
on (IC: bird_10, bird_5, cal_25 calibrate; bird_25, cal_10, cal_5 evaluate;
BB: the 1-shot tasks calibrate, the 2-shot ones evaluate).  ``LM`` has a
single task, so its models alternate instead (sorted by model size).

**Protocol**: the fitted points are the curve's points nearest to the
doubling grid ``M/8, M/16, …`` (``M`` the largest size of the curve; the
nearest point within a factor of √2 of each grid size, at most 8 of them,
distinct), so every fit extrapolates at least 4× and the fitted points are
spaced as the project's own doubling ladders are.  Every ``Training == 0``
point is predicted.  Curves with fewer than 3 fitted points take no part.

Example::

    curves = load_curves(DEFAULT_PATH)
    tasks, skipped = extrapolation_tasks(curves, part="evaluation")
    task = tasks[0]
    task.sizes, task.values, task.target_sizes, task.truths
"""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = ROOT.parent / "shared" / "learning-curves" / "neural-dev.csv.gz"
FRACTION = 8
MAX_FIT_POINTS = 8
MIN_FIT_POINTS = 3


@dataclass(frozen=True)
class Curve:
    """One neural scaling curve, sorted by size, with the benchmark's own flag for the points to predict."""

    domain: str
    task: str
    model: str
    sizes: np.ndarray
    values: np.ndarray
    to_predict: np.ndarray  # bool, Training == 0


@dataclass(frozen=True)
class Task:
    """One extrapolation: fit ``sizes``/``values``, predict ``truths`` at ``target_sizes``."""

    domain: str
    task: str
    model: str
    sizes: np.ndarray
    values: np.ndarray
    target_sizes: np.ndarray
    truths: np.ndarray

    @property
    def group(self) -> str:
        """What the split is made by: the task (LM: the task and model)."""
        return f"{self.domain}/{self.task}" + (f"/{self.model}" if self.domain == "LM" else "")


def load_curves(path: Path | str = DEFAULT_PATH) -> list[Curve]:
    """Every curve of the file, in a fixed order."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"no neural curves at {path}: pass --neural PATH (neural-dev.csv.gz)")
    points: dict[tuple[str, str, str], list[tuple[float, float, bool]]] = {}
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            key = (row["Domain"], row["Task"], row["Model"])
            points.setdefault(key, []).append((float(row["Seen Examples"]), float(row["Loss"]), row["Training"] == "0"))
    curves = []
    for (domain, task, model), pts in sorted(points.items()):
        pts.sort()
        curves.append(Curve(domain, task, model, np.array([p[0] for p in pts]), np.array([p[1] for p in pts]),
                            np.array([p[2] for p in pts])))
    return curves


def parts(curves: list[Curve]) -> dict[str, str]:
    """Each curve's split group → ``"calibration"`` or ``"evaluation"`` (see the module docstring)."""
    out: dict[str, str] = {}
    by_domain: dict[str, list[str]] = {}
    for c in curves:
        if c.domain == "LM":
            # one task only: its models alternate, in order of size
            by_domain.setdefault("LM", []).append(f"LM/{c.task}/{c.model}")
        else:
            by_domain.setdefault(c.domain, []).append(f"{c.domain}/{c.task}")
    for domain, groups in by_domain.items():
        unique = sorted(set(groups), key=_model_size if domain == "LM" else str)
        for i, g in enumerate(unique):
            out[g] = "calibration" if i % 2 == 0 else "evaluation"
    return out


def _model_size(group: str) -> float:
    try:
        return float(group.rsplit("/", 1)[1])
    except ValueError:
        return math.inf


def fitted_points(sizes: np.ndarray, fraction: int = FRACTION) -> np.ndarray:
    """Indices of the points nearest to the doubling grid ``M/fraction, M/(2·fraction), …`` (ascending)."""
    log_m = np.log(sizes)
    top = math.log(sizes[-1] / fraction)
    chosen: list[int] = []
    for k in range(64):
        grid = top - k * math.log(2.0)
        if grid < log_m[0] - 0.5 * math.log(2.0) or len(chosen) == MAX_FIT_POINTS:
            break
        # only points up to M/fraction: the fit never sees the range it predicts
        eligible = np.flatnonzero(log_m <= top + 1e-9)
        if eligible.size == 0:
            break
        i = int(eligible[np.argmin(np.abs(log_m[eligible] - grid))])
        if abs(log_m[i] - grid) <= 0.5 * math.log(2.0) and i not in chosen:
            chosen.append(i)
    return np.array(sorted(chosen), dtype=int)


def extrapolation_tasks(curves: list[Curve], part: str) -> tuple[list[Task], int]:
    """The tasks of ``part`` and how many of its curves had too few fitted points."""
    split = parts(curves)
    tasks, short = [], 0
    for c in curves:
        group = f"{c.domain}/{c.task}" + (f"/{c.model}" if c.domain == "LM" else "")
        if split[group] != part:
            continue
        idx = fitted_points(c.sizes)
        if len(idx) < MIN_FIT_POINTS or not c.to_predict.any():
            short += 1
            continue
        tasks.append(Task(c.domain, c.task, c.model, c.sizes[idx], c.values[idx], c.sizes[c.to_predict], c.values[c.to_predict]))
    return tasks, short


def write_slice(path: Path | str, every: int = 1, source: Path | str = DEFAULT_PATH) -> int:
    """Write every ``every``-th evaluation curve (in the file's order; default all 23) as a CSV; returns the count.

    The tests' fixture ``tests/data/neural-slice.csv`` is this slice: real
    curves the calibration never saw, taken at a fixed stride rather than picked.
    """
    tasks, _ = extrapolation_tasks(load_curves(source), "evaluation")
    chosen = tasks[::every]
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["curve", "size", "value", "predict"])
        for task in chosen:
            name = f"{task.domain} {task.task} {task.model}"
            for s, v in zip(task.sizes, task.values):
                writer.writerow([name, repr(float(s)), repr(float(v)), 0])
            for s, v in zip(task.target_sizes, task.truths):
                writer.writerow([name, repr(float(s)), repr(float(v)), 1])
    return len(chosen)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="write the tests' slice of neural evaluation curves")
    parser.add_argument("--slice", type=Path, required=True, help="CSV to write, e.g. tests/data/neural-slice.csv")
    parser.add_argument("--every", type=int, default=1, help="stride through the evaluation curves (default 1: all)")
    parser.add_argument("--neural", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args()
    print(f"{write_slice(args.slice, args.every, args.neural)} curves written to {args.slice}")
