"""Datasets as in-memory tensors, split deterministically from the spec's seed.

Every worker on every machine computes the same split: a permutation drawn
from the spec's seed carves the validation set off the training images, and
the training subset of size ``m`` is the first ``m`` examples of the permuted
pool. Subsets are therefore nested and drawn without replacement. Each
subset has a fingerprint of its raw bytes (and of the validation and test
sets) so that a worker holding different data refuses to run.

Inputs stay raw (as float32). With ``normalize = "subset"`` (the default) the
model of size ``m`` standardises them itself, with the statistics of its own
``m`` training examples (:meth:`Dataset.input_stats`): a model trained on 200
images never sees statistics of the 40,000 it did not train on, and a trained
model takes raw inputs.

Example::

    from scaling_optuna.data import load_dataset
    from scaling_optuna.spec import load_spec

    data = load_dataset(load_spec("studies/digits.toml"))
    x, y = data.train_subset(100)      # raw float32 inputs, int64 labels
    mean, std = data.input_stats(100)  # per channel: what the size-100 model standardises with
    print(data.fingerprint(100))
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from scaling_optuna.errors import DataError
from scaling_optuna.imagefolder import read_image_folder
from scaling_optuna.plugins import PluginError
from scaling_optuna.plugins import load_plugin
from scaling_optuna.spec import DataSpec
from scaling_optuna.spec import ExperimentSpec


CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
# Fashion-MNIST's four IDX files, in torchvision's layout: <root>/FashionMNIST/raw/<name>.
FASHION_MNIST_FOLDER = Path("FashionMNIST") / "raw"
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# Where Debian's package dataset-fashion-mnist installs the full dataset (gzipped IDX files).
FASHION_MNIST_SYSTEM_FOLDER = Path("/usr/share/datasets/fashion-mnist")
# Labels are class numbers 0..C-1; a label far above any real class count (10^9
# from a mislabelled column) would otherwise size the output layer and the
# class counts, allocating hundreds of gigabytes in every worker.
MAX_CLASSES = 100_000
# Rows per chunk when computing statistics in float64 (25 MB of CIFAR images).
_STATS_CHUNK_ROWS = 1024


@dataclasses.dataclass(frozen=True)
class RawData:
    """Arrays as loaded, before splitting: ``x`` is N×C×H×W (images) or N×D (vectors)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The training pool, validation and test sets of one experiment, as tensors.

    ``x_pool[:m]`` is the training subset of size ``m``. Inputs are the raw
    values as float32; ``input_stats(m)`` gives the statistics the model of
    size ``m`` standardises them with.
    """

    name: str
    x_pool: torch.Tensor
    y_pool: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    _raw_pool: tuple[np.ndarray, np.ndarray] = dataclasses.field(repr=False)
    _eval_digest: bytes = dataclasses.field(repr=False)
    normalize: str = "subset"
    _stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def pool_size(self) -> int:
        return len(self.y_pool)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_pool.shape[1:])

    def train_subset(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``size`` examples of the permuted pool (nested, no repeats)."""
        self._check_size(size)
        return self.x_pool[:size], self.y_pool[:size]

    def input_stats(self, size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Mean and standard deviation of the training subset of ``size``, or None for raw inputs.

        Per channel for images (shape C×1×1), per feature for vectors (shape D);
        a constant channel or feature gets a standard deviation of 1. Computed
        once per size, in float64.
        """
        self._check_size(size)
        if self.normalize == "none":
            return None
        if size not in self._stats:
            self._stats[size] = _mean_and_std(self.x_pool[:size].numpy())
        return self._stats[size]

    def fingerprint(self, size: int) -> str:
        """A hash of the raw training subset of ``size`` and of the validation and test sets."""
        self._check_size(size)
        x, y = self._raw_pool
        h = hashlib.sha256(self._eval_digest)
        h.update(np.ascontiguousarray(x[:size]).tobytes())
        h.update(np.ascontiguousarray(y[:size]).astype(np.int64).tobytes())
        return h.hexdigest()[:16]

    def majority_error(self) -> float:
        """Test error of always guessing the most frequent training class: the plateau."""
        counts = torch.bincount(self.y_pool, minlength=self.num_classes)
        guess = int(torch.argmax(counts))
        return float((self.y_test != guess).float().mean())

    def _check_size(self, size: int) -> None:
        if not 0 < size <= self.pool_size:
            raise DataError(f"training-set size {size} is outside 1..{self.pool_size}, the pool's size")


def load_dataset(spec: ExperimentSpec) -> Dataset:
    """Load the spec's dataset, check it, and split it with the spec's seed."""
    raw = load_raw(spec.data, spec.python_path)
    name = f"data.loader {spec.data.loader}" if spec.data.loader else spec.data.dataset
    _validate(raw, name)
    return split(raw, spec.data, seed=spec.seed, name=spec.data.loader or spec.data.dataset)


def load_raw(data: DataSpec, python_path: tuple[str, ...] = ()) -> RawData:
    """The dataset's arrays as shipped, with its own test split where it has one.

    ``python_path``: folders the ``loader`` plug-in is imported from (the spec's).
    """
    if data.loader is not None:
        return _load_plugin(data.loader, python_path)
    if data.dataset == "imagefolder":
        return _load_imagefolder(Path(data.root), data.test_fraction)
    if data.dataset == "cifar10":
        return _load_cifar10(Path(data.root), download=data.download)
    if data.dataset == "fashion-mnist":
        return _load_fashion_mnist(Path(data.root), download=data.download)
    if data.dataset == "digits":
        return _load_digits(data.test_fraction)
    if data.dataset == "mnist1d":
        return _load_mnist1d(Path(data.root), data.num_samples)
    if data.dataset == "npz":
        assert data.path is not None
        return _load_npz(Path(data.path))
    raise DataError(f"unknown dataset {data.dataset!r}")


def split(raw: RawData, data: DataSpec, *, seed: int, name: str) -> Dataset:
    """Carve the validation set from the training arrays; inputs become float32 tensors."""
    n = len(raw.y_train)
    n_val = data.validation_size if data.validation_size is not None else int(n * data.validation_fraction)
    if not 0 < n_val < n:
        raise DataError(
            f"validation set of {n_val} leaves no training pool from {n} training examples; "
            "lower data.validation_size or data.validation_fraction"
        )
    order = np.random.default_rng(seed).permutation(n)
    val_idx, pool_idx = order[:n_val], order[n_val:]
    x_pool, y_pool = raw.x_train[pool_idx], raw.y_train[pool_idx]
    x_val, y_val = raw.x_train[val_idx], raw.y_train[val_idx]

    eval_hash = hashlib.sha256()
    for array in (x_val, y_val.astype(np.int64), raw.x_test, raw.y_test.astype(np.int64)):
        eval_hash.update(np.ascontiguousarray(array).tobytes())
    num_classes = int(max(raw.y_train.max(), raw.y_test.max())) + 1
    return Dataset(
        name=name,
        x_pool=_as_tensor(x_pool),
        y_pool=torch.from_numpy(y_pool.astype(np.int64)),
        x_val=_as_tensor(x_val),
        y_val=torch.from_numpy(y_val.astype(np.int64)),
        x_test=_as_tensor(raw.x_test),
        y_test=torch.from_numpy(raw.y_test.astype(np.int64)),
        num_classes=num_classes,
        _raw_pool=(x_pool, y_pool),
        _eval_digest=eval_hash.digest(),
        normalize=data.normalize,
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's batches, refusing every global but numpy's array rebuilders.

    The official files are pickles; a crafted file could otherwise run code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        x = data.reshape(len(data), 3, 32, 32)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise DataError(
            f"{path}: not a CIFAR-10 python batch ({e}); delete the folder to re-download, "
            "or replace it with the official cifar-10-python archive's contents"
        ) from None
    if len(labels) != len(x):
        raise DataError(f"{path}: {len(x)} images but {len(labels)} labels; the file is damaged")
    return x, labels


def _load_cifar10(root: Path, *, download: bool) -> RawData:
    folder = root / CIFAR10_FOLDER
    needed = [folder / name for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)]
    if not all(p.is_file() for p in needed):
        if not download:
            raise DataError(
                f"CIFAR-10 not found in {folder}; place the python version there "
                "(cifar-10-python.tar.gz extracted) or set data.download = true"
            )
        _download_cifar10(root)
    parts = [_read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    x_test, y_test = _read_cifar_batch(folder / CIFAR10_TEST_FILE)
    return RawData(
        x_train=np.concatenate([p[0] for p in parts]),
        y_train=np.concatenate([p[1] for p in parts]),
        x_test=x_test,
        y_test=y_test,
    )


def _download_cifar10(root: Path) -> None:
    import torchvision

    try:
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as e:  # no network, a proxy, a full disk: all end the same way for the user
        raise DataError(
            f"CIFAR-10 is not in {root / CIFAR10_FOLDER} and could not be downloaded ({type(e).__name__}: {e}); "
            "copy the extracted cifar-10-python archive there, or run where there is a network"
        ) from None


def _load_fashion_mnist(root: Path, *, download: bool) -> RawData:
    """Fashion-MNIST through torchvision, from ``root``, Debian's copy, or the network.

    torchvision reads the four IDX files unpacked in ``<root>/FashionMNIST/raw``.
    Where they are missing, the gzipped files are unpacked there from the first
    folder that holds all four: that folder itself (a download that was never
    unpacked), ``root`` (a copy of the official files), or Debian's package;
    failing that, torchvision downloads them.
    """
    raw = root / FASHION_MNIST_FOLDER
    if not all((raw / name).is_file() for name in FASHION_MNIST_FILES):
        source = next((f for f in (raw, root, FASHION_MNIST_SYSTEM_FOLDER) if _has_gzipped_fashion_mnist(f)), None)
        if source is not None:
            _unpack_fashion_mnist(source, raw)
        elif download:
            _download_fashion_mnist(root)
        else:
            raise DataError(
                f"Fashion-MNIST not found in {root} or {FASHION_MNIST_SYSTEM_FOLDER}; install Debian's package "
                f"dataset-fashion-mnist, copy the four IDX .gz files into {root}, or set data.download = true"
            )
    return _read_fashion_mnist(root)


def _has_gzipped_fashion_mnist(folder: Path) -> bool:
    return all((folder / f"{name}.gz").is_file() for name in FASHION_MNIST_FILES)


def _unpack_fashion_mnist(source: Path, raw: Path) -> None:
    """Unpack the four ``.gz`` files of ``source`` into ``raw``; each file appears whole or not at all."""
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {raw} for Fashion-MNIST ({e.strerror}); set data.root to a folder you can write") from None
    for name in FASHION_MNIST_FILES:
        target = raw / name
        if target.is_file():
            continue
        partial = raw / f".{name}.{os.getpid()}.partial"
        try:
            with gzip.open(source / f"{name}.gz", "rb") as packed, open(partial, "wb") as out:
                shutil.copyfileobj(packed, out, 1 << 20)
            partial.replace(target)
        except (OSError, EOFError, zlib.error) as e:
            partial.unlink(missing_ok=True)
            raise DataError(
                f"{source / name}.gz: cannot be unpacked ({type(e).__name__}: {e}); replace it with the official "
                "Fashion-MNIST file (or reinstall dataset-fashion-mnist)"
            ) from None


def _download_fashion_mnist(root: Path) -> None:
    import torchvision

    try:
        torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
    except Exception as e:  # no network, a proxy, a full disk: all end the same way for the user
        raise DataError(
            f"Fashion-MNIST is not in {root} and could not be downloaded ({type(e).__name__}: {e}); install Debian's "
            "package dataset-fashion-mnist, copy the four IDX .gz files into data.root, or run where there is a network"
        ) from None


def _read_fashion_mnist(root: Path) -> RawData:
    import torchvision

    arrays = []
    for train in (True, False):
        try:
            part = torchvision.datasets.FashionMNIST(str(root), train=train, download=False)
        except (AssertionError, ValueError, TypeError, RuntimeError, KeyError, OSError) as e:
            raise DataError(
                f"{root / FASHION_MNIST_FOLDER}: not Fashion-MNIST's IDX files ({type(e).__name__}: {_first_line(e)}); "
                "delete the folder to unpack or download them again"
            ) from None
        arrays += [part.data.numpy()[:, None, :, :], part.targets.numpy()]
    return RawData(*arrays)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _load_digits(test_fraction: float) -> RawData:
    images, target = read_digits()
    return _set_test_aside(images.astype(np.float32)[:, None, :, :], target.astype(np.int64), test_fraction)


def _set_test_aside(x: np.ndarray, y: np.ndarray, test_fraction: float) -> RawData:
    """A test split for data that ship none: a fixed permutation, independent of the
    spec's seed so that the test set never moves, sets ``test_fraction`` aside."""
    order = np.random.default_rng(20171201).permutation(len(y))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return RawData(x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])


def _load_imagefolder(root: Path, test_fraction: float) -> RawData:
    """``root/train`` and ``root/test`` (each a folder per class), or ``root`` itself with ``test_fraction`` set aside."""
    if (root / "train").is_dir():
        x_train, y_train, classes = read_image_folder(root / "train")
        if (root / "test").is_dir():
            x_test, y_test, _ = read_image_folder(root / "test", classes=classes)
            return RawData(x_train, y_train, x_test, y_test)
        return _set_test_aside(x_train, y_train, test_fraction)
    x, y, _ = read_image_folder(root)
    return _set_test_aside(x, y, test_fraction)


def _load_plugin(path: str, python_path: tuple[str, ...]) -> RawData:
    """The arrays the user's ``loader`` returns: a 4-tuple or a mapping of x_train, y_train, x_test, y_test."""
    loader = load_plugin(path, key="data.loader", search_path=python_path)
    try:
        returned = loader.call()
    except PluginError as e:
        raise DataError(f"{e}; fix the loader") from None
    fix = "return (x_train, y_train, x_test, y_test) or a dict with those names, as NumPy arrays or tensors"
    if isinstance(returned, Mapping):
        missing = [k for k in _ARRAY_NAMES if k not in returned]
        if missing:
            raise DataError(f"data.loader {path} returned no {', '.join(missing)}; {fix}")
        parts = [returned[k] for k in _ARRAY_NAMES]
    elif isinstance(returned, (tuple, list)) and len(returned) == len(_ARRAY_NAMES):
        parts = list(returned)
    else:
        raise DataError(f"data.loader {path} returned {_kind(returned)}; {fix}")
    arrays = {}
    for name, part in zip(_ARRAY_NAMES, parts):
        try:
            arrays[name] = _as_array(part)
        except (TypeError, ValueError, RuntimeError) as e:
            raise DataError(f"data.loader {path}: {name} is not an array ({_first_line(e)}); {fix}") from None
    return RawData(**arrays)


_ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"it holds Python objects ({type(value).__name__})")
    return array


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits (``load_digits().images`` and ``.target``).

    Read from the file scikit-learn ships, without importing scikit-learn, whose
    import would otherwise add seconds to every worker's start.
    """
    found = importlib.util.find_spec("sklearn")
    folders = list(found.submodule_search_locations or []) if found is not None else []
    path = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def _load_mnist1d(root: Path, num_samples: int) -> RawData:
    cache = root / f"mnist1d-{num_samples}.npz"
    if not cache.is_file():
        from mnist1d.data import get_dataset_args
        from mnist1d.data import make_dataset

        args = get_dataset_args()
        args.num_samples = num_samples
        made = make_dataset(args)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, x_train=made["x"].astype(np.float32), y_train=made["y"], x_test=made["x_test"].astype(np.float32), y_test=made["y_test"])
        tmp.replace(cache)
    return _load_npz(cache)


def _load_npz(path: Path) -> RawData:
    if not path.is_file():
        raise DataError(f"npz file {str(path)!r} does not exist; set data.path to your file")
    unreadable = f"{path}: not a readable .npz archive"
    fix = "save x_train, y_train, x_test and y_test with numpy.savez"
    try:
        loaded = np.load(path, allow_pickle=False)
    except EOFError:
        raise DataError(f"{path}: the file is empty; {fix}") from None
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{unreadable} ({e}); {fix}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array, not an .npz archive of arrays; {fix}")
    with loaded as archive:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive.files]
        if missing:
            raise DataError(f"{path}: missing array(s) {', '.join(missing)}; {fix}")
        try:
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        except MemoryError:
            raise DataError(f"{path}: an array is too large to load into memory; use a smaller dataset") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{unreadable} ({e}); {fix}") from None
    return RawData(**arrays)


def _validate(raw: RawData, name: str) -> None:
    """Refuse arrays that a worker would trip on, with the fix, before anything is written."""
    for part in ("train", "test"):
        x, y = getattr(raw, f"x_{part}"), getattr(raw, f"y_{part}")
        _check_inputs(x, f"{name}: x_{part}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{name}: y_{part} has shape {y.shape} but x_{part} has {len(x)} rows; give one label per row")
        _check_labels(y, f"{name}: y_{part}")
    if raw.x_train.shape[1:] != raw.x_test.shape[1:]:
        raise DataError(f"{name}: x_train rows have shape {raw.x_train.shape[1:]} but x_test rows {raw.x_test.shape[1:]}; they must match")
    if raw.x_train.ndim not in (2, 4):
        raise DataError(f"{name}: x_train has shape {raw.x_train.shape}; use N×D vectors or N×C×H×W images")
    classes = int(max(raw.y_train.max(), raw.y_test.max())) + 1
    if classes > min(MAX_CLASSES, len(raw.y_train)):
        raise DataError(
            f"{name}: labels go up to {classes - 1}, that is {classes:,} classes for {len(raw.y_train):,} training "
            f"examples; labels must be class numbers 0..C-1, with C at most the number of training examples "
            f"and at most {MAX_CLASSES:,}: renumber them (numpy.unique(y, return_inverse=True))"
        )


def _check_inputs(x: np.ndarray, where: str) -> None:
    if x.ndim < 2:
        raise DataError(f"{where} has shape {x.shape}; it needs one row per example (N×D or N×C×H×W)")
    if x.dtype.kind == "c":
        raise DataError(f"{where} holds complex numbers; pass real features (e.g. the real and imaginary parts side by side)")
    if x.dtype.kind not in "iuf":
        raise DataError(f"{where} has dtype {x.dtype}; it must hold integers or floating-point numbers")
    if len(x) == 0:
        raise DataError(f"{where} is empty")
    if x[0].size == 0:
        raise DataError(f"{where} has shape {x.shape}: its rows hold no values; give every example at least one feature")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise DataError(f"{where} holds NaN or infinite values; clean or impute them first")
        if np.abs(x).max() > np.finfo(np.float32).max:
            raise DataError(f"{where} holds values beyond float32's range (±3.4e38), which training uses; rescale them")


def _check_labels(y: np.ndarray, where: str) -> None:
    if y.dtype.kind not in "iu":
        raise DataError(f"{where} has dtype {y.dtype}; labels must be integers 0..C-1")
    if len(y) and y.min() < 0:
        raise DataError(f"{where} has label {y.min()}; labels must be integers 0..C-1")


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _mean_and_std(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (N×C×H×W) or per-feature (N×D) mean and standard deviation of ``x``.

    Two passes in float64 over chunks of rows: exact enough for raw pixel
    values in the hundreds, without a float64 copy of the whole pool.
    """
    rows = x.reshape(len(x), x.shape[1], -1)
    count = rows.shape[0] * rows.shape[2]
    chunks = [rows[i : i + _STATS_CHUNK_ROWS] for i in range(0, len(rows), _STATS_CHUNK_ROWS)]
    mean = sum(c.sum(axis=(0, 2), dtype=np.float64) for c in chunks) / count
    centred = (np.square(c - mean[None, :, None]).sum(axis=(0, 2)) for c in chunks)
    std = np.sqrt(sum(centred) / count)
    std[std < 1e-8] = 1.0  # a constant channel or feature: leave its scale alone
    shape = (x.shape[1], 1, 1) if x.ndim == 4 else (x.shape[1],)
    return (
        torch.from_numpy(mean.reshape(shape).astype(np.float32)),
        torch.from_numpy(std.reshape(shape).astype(np.float32)),
    )
