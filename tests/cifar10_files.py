"""CIFAR-10 files written from arrays, in the official python format, for tests and benchmarks.

The loader (``scaling_optuna.data``) reads them exactly as it reads the
official archive, so tests and benchmarks run offline on small, known images.

Example::

    from tests.cifar10_files import write_cifar10

    write_cifar10(tmp_path, x_train, y_train, x_test, y_test)  # N×3×32×32 uint8, int labels
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from scaling_optuna.data import CIFAR10_FOLDER
from scaling_optuna.data import CIFAR10_TEST_FILE
from scaling_optuna.data import CIFAR10_TRAIN_FILES

LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: str | Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> Path:
    """Write arrays (N×3×32×32 uint8) as a CIFAR-10 python-format copy under ``root``.

    The files have the layout and encoding of the official archive: five
    training batches, a test batch and ``batches.meta``.
    """
    folder = Path(root) / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    parts = np.array_split(np.arange(len(y_train)), len(CIFAR10_TRAIN_FILES))
    for file_name, idx in zip(CIFAR10_TRAIN_FILES, parts):
        write_batch(folder / file_name, x_train[idx], y_train[idx])
    write_batch(folder / CIFAR10_TEST_FILE, x_test, y_test)
    meta = {"label_names": LABEL_NAMES, "num_cases_per_batch": len(parts[0]), "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


def write_batch(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """One batch file: a pickle of a dict with byte-string keys, ``data`` an N×3072 uint8 array (channel-major rows)."""
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": [int(v) for v in y],
        b"data": np.ascontiguousarray(x, dtype=np.uint8).reshape(len(y), 3 * 32 * 32),
        b"filenames": [f"{i}.png".encode() for i in range(len(y))],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
