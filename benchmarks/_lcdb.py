"""The LCDB dev learning curves and the extrapolation protocol shared by the fit's benchmark and calibration.

``lcdb-dev.csv.gz`` (columns ``openmlid, learner, size_train, mean, count``)
holds mean learning curves of LCDB 1.0 (Mohr et al., 2022): scikit-learn
learners on OpenML datasets, ``mean`` the accuracy averaged over seeds.  The
curve is the error ``1 − mean`` against ``size_train``.

**Split** (fixed, by dataset): an even ``openmlid`` belongs to the
*calibration* part (every constant of :mod:`scaling_optuna.fit._calibration`
is derived from it by ``calibrate_fit.py``), an odd one to the *evaluation*
part (every figure ``extrapolation_lcdb.py`` reports).  No dataset is in both,
so the reported figures are on datasets the constants never saw.

**Protocol** for a setting ``1/k``: a curve takes part if at least 5 of its
sizes are ≤ 1/k of its largest size; those points are fitted and the error
at the largest size is predicted (``k``× beyond the data, or more).  Curves
with an error of 0 among those points or at the largest size are left out:
the fit works in log space (and ``1 − mean`` is exactly 0 only on a few
trivially separable datasets).

Example::

    curves = load_curves(DEFAULT_PATH)
    tasks, skipped = extrapolation_tasks(curves, 8, part="evaluation")
    task = tasks[0]
    task.sizes, task.values, task.target_size, task.truth
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = ROOT.parent / "shared" / "learning-curves" / "lcdb-dev.csv.gz"
SETTINGS = (4, 8, 16)
MIN_FIT_POINTS = 5


@dataclass(frozen=True)
class Task:
    """One extrapolation: fit ``sizes``/``values``, predict ``truth`` at ``target_size``."""

    openmlid: int
    learner: str
    sizes: np.ndarray
    values: np.ndarray
    target_size: float
    truth: float


def part_of(openmlid: int) -> str:
    """``"calibration"`` for an even OpenML id, ``"evaluation"`` for an odd one."""
    return "calibration" if openmlid % 2 == 0 else "evaluation"


def load_curves(path: Path | str = DEFAULT_PATH) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
    """Every curve as ``(openmlid, learner) → (sizes, errors)``, sorted by size."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"no LCDB curves at {path}: pass --lcdb PATH (lcdb-dev.csv.gz)")
    points: dict[tuple[int, str], list[tuple[float, float]]] = {}
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            key = (int(row["openmlid"]), row["learner"])
            points.setdefault(key, []).append((float(row["size_train"]), 1.0 - float(row["mean"])))
    curves = {}
    for key, pts in points.items():
        pts.sort()
        curves[key] = (np.array([s for s, _ in pts]), np.array([e for _, e in pts]))
    return curves


def extrapolation_tasks(
    curves: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]], fraction: int, part: str
) -> tuple[list[Task], int]:
    """The tasks of setting ``1/fraction`` in ``part``, and how many curves were left out for a zero error."""
    tasks, zero = [], 0
    for (openmlid, learner), (sizes, errors) in sorted(curves.items()):
        if part_of(openmlid) != part:
            continue
        keep = sizes <= sizes[-1] / fraction
        if keep.sum() < MIN_FIT_POINTS:
            continue
        if (errors[keep] <= 0).any() or errors[-1] <= 0:
            zero += 1
            continue
        tasks.append(Task(openmlid, learner, sizes[keep], errors[keep], float(sizes[-1]), float(errors[-1])))
    return tasks, zero


def write_slice(path: Path | str, every: int = 60, source: Path | str = DEFAULT_PATH) -> int:
    """Write every ``every``-th evaluation curve of setting 1/8 (in id order) as a CSV; returns the count.

    The tests' fixture ``tests/data/lcdb-slice.csv`` is this slice: real curves
    the calibration never saw, taken at a fixed stride rather than picked.
    """
    curves = load_curves(source)
    tasks, _ = extrapolation_tasks(curves, 8, "evaluation")
    chosen = tasks[::every]
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["openmlid", "learner", "size_train", "error"])
        for task in chosen:
            sizes, errors = curves[(task.openmlid, task.learner)]
            for s, e in zip(sizes, errors):
                writer.writerow([task.openmlid, task.learner, int(s), repr(float(e))])
    return len(chosen)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="write the tests' slice of LCDB evaluation curves")
    parser.add_argument("--slice", type=Path, required=True, help="CSV to write, e.g. tests/data/lcdb-slice.csv")
    parser.add_argument("--every", type=int, default=60, help="stride through the evaluation curves (default 60)")
    parser.add_argument("--lcdb", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args()
    print(f"{write_slice(args.slice, args.every, args.lcdb)} curves written to {args.slice}")
