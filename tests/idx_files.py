"""Fashion-MNIST files written from arrays, in the real IDX format, for tests and benchmarks.

The loader (``scaling_optuna.data``) reads them through torchvision exactly as
it reads the official files, so tests run offline on small, known images.

Example::

    from tests.idx_files import write_fashion_mnist

    write_fashion_mnist(tmp_path, x_train, y_train, x_test, y_test)  # N×28×28 uint8, labels 0..9
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from scaling_optuna.data import FASHION_MNIST_FILES

# The IDX magic number's third byte: 0x08 is unsigned bytes, the element type of both files.
_UBYTE = 0x08


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True) -> Path:
    """One IDX file: two zero bytes, the type byte, the number of dimensions, each size (big-endian int32), the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path = path.with_name(path.name + ".gz") if gz else path
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
    return path


def write_fashion_mnist(
    folder: str | Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *, gz: bool = True
) -> Path:
    """The four files as Zalando and Debian ship them (``gz``) or as torchvision unpacks them, in ``folder``.

    Images are N×28×28 uint8, labels 0..9.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(FASHION_MNIST_FILES, (x_train, y_train, x_test, y_test)):
        write_idx(folder / name, array, gz=gz)
    return folder


def small_fashion_mnist(n_train: int = 120, n_test: int = 40, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Images whose brightness depends on the class, so that a CNN learns something in a few steps."""
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 60, (n, 28, 28)) + labels[:, None, None] * 19
        return images.astype(np.uint8), labels.astype(np.uint8)

    return (*draw(n_train), *draw(n_test))
