"""Datasets: deterministic nested splits, fingerprints, the CIFAR-10 and npz loaders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from scaling_optuna.data import RawData
from scaling_optuna.data import load_dataset
from scaling_optuna.data import read_digits
from scaling_optuna.data import split
from scaling_optuna.errors import DataError
from scaling_optuna.spec import DataSpec
from scaling_optuna.spec import parse_spec


def _numbered(n_train: int = 500, n_test: int = 100) -> RawData:
    # Each row holds its own index, so the split can be traced back exactly.
    x_train = np.repeat(np.arange(n_train, dtype=np.float32)[:, None], 4, axis=1)
    x_test = np.repeat(np.arange(n_test, dtype=np.float32)[:, None], 4, axis=1) + 10_000
    return RawData(x_train, np.arange(n_train) % 10, x_test, np.arange(n_test) % 10)


def test_split_is_nested_disjoint_without_replacement_and_deterministic():
    raw = _numbered()
    spec = DataSpec(dataset="npz", path="x.npz", validation_fraction=0.2)
    a = split(raw, spec, seed=3, name="t")
    b = split(raw, spec, seed=3, name="t")
    other = split(raw, spec, seed=4, name="t")
    pool_ids = a._raw_pool[0][:, 0].astype(int)
    assert len(set(pool_ids)) == len(pool_ids) == 400  # no repeats: drawn without replacement
    # Normalisation is affine with the pool's statistics: undo it to recover the row ids.
    val_ids = set(np.round(a.x_val[:, 0].numpy() * pool_ids.std() + pool_ids.mean()).astype(int))
    assert len(val_ids) == 100
    assert not set(pool_ids) & val_ids
    assert set(pool_ids) | val_ids == set(range(500))
    assert np.array_equal(a.x_pool.numpy(), b.x_pool.numpy())
    assert not np.array_equal(a.x_pool.numpy(), other.x_pool.numpy())
    small, large = a.train_subset(50)[0], a.train_subset(100)[0]
    assert np.array_equal(small.numpy(), large[:50].numpy())  # nested
    assert a.fingerprint(100) == b.fingerprint(100) != other.fingerprint(100)
    assert a.fingerprint(50) != a.fingerprint(100)


def test_pool_is_normalised_once():
    data = split(_numbered(), DataSpec(dataset="npz", path="x.npz"), seed=0, name="t")
    assert abs(float(data.x_pool.mean())) < 1e-4
    assert abs(float(data.x_pool.std()) - 1.0) < 1e-2


def test_digits_dataset_loads_with_a_test_split():
    spec = parse_spec({"name": "d", "data": {"dataset": "digits"}, "sizes": {"start_fraction": 0.25}})
    data = load_dataset(spec)
    assert data.input_shape == (1, 8, 8)
    assert data.num_classes == 10
    assert len(data.y_test) == 359 and data.pool_size + len(data.y_val) == 1797 - 359
    assert 0.85 < data.majority_error() < 0.95


def test_digits_are_read_exactly_as_scikit_learn_loads_them():
    from sklearn.datasets import load_digits

    images, target = read_digits()
    bunch = load_digits()
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(target, bunch.target)


def _write_official_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    # The layout of the official cifar-10-python archive: a latin-1 pickle of a dict
    # with byte-string keys, 'data' an N×3072 uint8 array (channel-major rows).
    batch = {
        b"batch_label": b"training batch",
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(images), 3072),
        b"filenames": [b"x.png"] * len(labels),
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def _write_small_cifar(root: Path, per_batch: int = 40, n_test: int = 60, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        labels = rng.integers(0, 10, per_batch)
        # Class-dependent brightness so that a CNN can learn something.
        images = (rng.integers(0, 60, (per_batch, 3, 32, 32)) + labels[:, None, None, None] * 19).astype(np.uint8)
        _write_official_cifar_batch(folder / f"data_batch_{i}", images, labels)
    labels = rng.integers(0, 10, n_test)
    images = (rng.integers(0, 60, (n_test, 3, 32, 32)) + labels[:, None, None, None] * 19).astype(np.uint8)
    _write_official_cifar_batch(folder / "test_batch", images, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, f, protocol=2)


def test_cifar10_loader_reads_the_python_format(tmp_path):
    _write_small_cifar(tmp_path)
    spec = parse_spec({
        "name": "c",
        "data": {"dataset": "cifar10", "root": str(tmp_path), "download": False, "validation_size": 50},
        "sizes": {"counts": [50, 150]},
    })
    data = load_dataset(spec)
    assert data.input_shape == (3, 32, 32)
    assert data.pool_size == 150 and len(data.y_val) == 50 and len(data.y_test) == 60
    assert spec.sizes.resolve(data.pool_size) == [50, 150]


def test_cifar10_missing_without_download_is_a_clear_error(tmp_path):
    spec = parse_spec({"name": "c", "data": {"dataset": "cifar10", "root": str(tmp_path), "download": False}, "sizes": {"counts": [10]}})
    with pytest.raises(DataError, match="CIFAR-10 not found"):
        load_dataset(spec)


def test_cifar10_batch_with_code_in_the_pickle_is_refused(tmp_path):
    _write_small_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    spec = parse_spec({"name": "c", "data": {"dataset": "cifar10", "root": str(tmp_path), "download": False}, "sizes": {"counts": [10]}})
    with pytest.raises(DataError, match="not allowed"):
        load_dataset(spec)


def test_mnist1d_is_generated_offline_and_cached(tmp_path):
    spec = parse_spec({"name": "m", "data": {"dataset": "mnist1d", "root": str(tmp_path), "num_samples": 1000}, "sizes": {"start_fraction": 0.25}})
    data = load_dataset(spec)
    assert data.input_shape == (40,)
    assert (tmp_path / "mnist1d-1000.npz").is_file()
    again = load_dataset(spec)
    assert data.fingerprint(data.pool_size) == again.fingerprint(again.pool_size)
    assert spec.model == "mlp"


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": np.zeros((10, 3)), "y_train": np.zeros(10, int), "x_test": np.zeros((5, 3))}, "missing array"),
        ({"x_train": np.zeros((10, 3)), "y_train": np.zeros(9, int), "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "one label per row"),
        ({"x_train": np.full((10, 3), np.nan), "y_train": np.zeros(10, int), "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "NaN"),
        ({"x_train": np.zeros((10, 3)), "y_train": -np.ones(10, int), "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "labels must be"),
        ({"x_train": np.zeros((10, 3)), "y_train": np.zeros(10, int), "x_test": np.zeros((5, 4)), "y_test": np.zeros(5, int)}, "must match"),
        ({"x_train": np.zeros((10, 3)), "y_train": np.zeros(10) + 0.5, "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "labels must be integers"),
    ],
)
def test_bad_npz_files_are_clear_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    spec = parse_spec({"name": "n", "data": {"dataset": "npz", "path": str(path)}, "sizes": {"counts": [4]}})
    with pytest.raises(DataError, match=message):
        load_dataset(spec)
