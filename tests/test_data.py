"""Datasets: deterministic nested splits, per-subset statistics, fingerprints, the CIFAR-10, Fashion-MNIST and npz loaders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from scaling_optuna.data import FASHION_MNIST_FILES
from scaling_optuna.data import FASHION_MNIST_FOLDER
from scaling_optuna.data import FASHION_MNIST_SYSTEM_FOLDER
from scaling_optuna.data import MAX_CLASSES
from scaling_optuna.data import RawData
from scaling_optuna.data import load_dataset
from scaling_optuna.data import read_digits
from scaling_optuna.data import split
from scaling_optuna.errors import DataError
from scaling_optuna.spec import DataSpec
from scaling_optuna.spec import parse_spec
from tests.cifar10_files import write_batch
from tests.cifar10_files import write_cifar10
from tests.idx_files import small_fashion_mnist
from tests.idx_files import write_fashion_mnist
from tests.idx_files import write_idx


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
    # Inputs stay raw: each row still holds its id.
    val_ids = set(a.x_val[:, 0].numpy().astype(int))
    assert len(val_ids) == 100
    assert not set(pool_ids) & val_ids
    assert set(pool_ids) | val_ids == set(range(500))
    assert np.array_equal(a.x_pool.numpy(), b.x_pool.numpy())
    assert not np.array_equal(a.x_pool.numpy(), other.x_pool.numpy())
    small, large = a.train_subset(50)[0], a.train_subset(100)[0]
    assert np.array_equal(small.numpy(), large[:50].numpy())  # nested
    assert a.fingerprint(100) == b.fingerprint(100) != other.fingerprint(100)
    assert a.fingerprint(50) != a.fingerprint(100)


def test_each_size_is_standardised_with_its_own_training_subset():
    spec = parse_spec({"name": "d", "data": {"dataset": "digits"}, "sizes": {"start_fraction": 0.25}})
    data = load_dataset(spec)
    for size in (36, 287, data.pool_size):
        x = data.x_pool[:size].double()
        mean, std = data.input_stats(size)
        assert mean.shape == std.shape == (1, 1, 1)  # per channel
        np.testing.assert_allclose(mean.item(), x.mean().item(), rtol=1e-6)
        np.testing.assert_allclose(std.item(), x.std(unbiased=False).item(), rtol=1e-6)
        standardised = (x - mean) / std
        assert abs(standardised.mean().item()) < 1e-5 and abs(standardised.std(unbiased=False).item() - 1) < 1e-5
    # A small subset's statistics are its own, not the pool's.
    assert data.input_stats(36)[0].item() != pytest.approx(data.input_stats(data.pool_size)[0].item(), rel=1e-3)
    # Inputs stay raw: digits are the 0..16 pixel counts scikit-learn ships.
    assert data.x_pool.min() == 0 and data.x_pool.max() == 16


def test_vectors_are_standardised_per_feature_and_none_keeps_raw_inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[0.0, 50.0, -3.0], scale=[1.0, 10.0, 0.1], size=(300, 3)).astype(np.float32)
    x[:, 2] = 7.0  # a constant feature keeps its scale
    raw = RawData(x, np.arange(300) % 3, x[:50], np.arange(50) % 3)
    data = split(raw, DataSpec(dataset="npz", path="x.npz"), seed=0, name="t")
    mean, std = data.input_stats(100)
    assert mean.shape == std.shape == (3,)
    np.testing.assert_allclose(mean.numpy(), data.x_pool[:100].double().mean(0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(std.numpy()[:2], data.x_pool[:100, :2].double().std(0, unbiased=False).numpy(), rtol=1e-5)
    assert std[2] == 1.0
    raw_data = split(raw, DataSpec(dataset="npz", path="x.npz", normalize="none"), seed=0, name="t")
    assert raw_data.input_stats(100) is None
    # Raw examples, same fingerprints: the setting changes the model, not the data.
    assert raw_data.fingerprint(100) == data.fingerprint(100)
    assert torch.equal(raw_data.x_pool, data.x_pool)


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


def _write_small_cifar(root: Path, per_batch: int = 40, n_test: int = 60, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, n)
        # Class-dependent brightness so that a CNN can learn something.
        return (rng.integers(0, 60, (n, 3, 32, 32)) + labels[:, None, None, None] * 19).astype(np.uint8), labels

    write_cifar10(root, *draw(5 * per_batch), *draw(n_test))


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
        ({"x_train": np.zeros((10, 3)), "y_train": np.zeros(10, bool), "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "labels must be integers"),
        ({"x_train": np.zeros((10, 3)) + 1j, "y_train": np.zeros(10, int), "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "complex"),
        ({"x_train": np.zeros((10, 3), "m8[s]"), "y_train": np.zeros(10, int), "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "integers or floating-point"),
        ({"x_train": np.zeros((10, 3), bool), "y_train": np.zeros(10, int), "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "integers or floating-point"),
        ({"x_train": np.zeros((10, 0)), "y_train": np.zeros(10, int), "x_test": np.zeros((5, 0)), "y_test": np.zeros(5, int)}, "rows hold no values"),
        ({"x_train": np.full((10, 3), 1e300), "y_train": np.zeros(10, int), "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "beyond float32"),
        ({"x_train": np.zeros((10, 3)), "y_train": np.full(10, 2**63 + 5, np.uint64), "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "renumber them"),
        ({"x_train": np.zeros((10, 3)), "y_train": np.arange(10) * 10**8, "x_test": np.zeros((5, 3)), "y_test": np.zeros(5, int)}, "renumber them"),
        # Eleven classes for ten training examples.
        ({"x_train": np.zeros((10, 3)), "y_train": np.zeros(10, int), "x_test": np.zeros((5, 3)), "y_test": np.full(5, 10)}, "at most the number of training examples"),
    ],
)
def test_bad_npz_files_are_clear_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    spec = parse_spec({"name": "n", "data": {"dataset": "npz", "path": str(path)}, "sizes": {"counts": [4]}})
    with pytest.raises(DataError, match=message):
        load_dataset(spec)


def test_labels_may_reach_the_class_cap_but_not_pass_it(tmp_path):
    n = MAX_CLASSES + 1
    y = np.arange(n) % MAX_CLASSES
    x = np.zeros((n, 1), np.float32)
    path = tmp_path / "many.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
    spec = parse_spec({"name": "n", "data": {"dataset": "npz", "path": str(path)}, "sizes": {"counts": [4]}})
    assert load_dataset(spec).num_classes == MAX_CLASSES
    np.savez(path, x_train=x, y_train=np.arange(n), x_test=x[:5], y_test=y[:5])
    with pytest.raises(DataError, match=f"at most {MAX_CLASSES:,}"):
        load_dataset(spec)


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda path: path.write_bytes(b""), "the file is empty"),
        (lambda path: np.save(path.with_suffix(".npy"), np.zeros(3)) or path.with_suffix(".npy").rename(path), "a single .npy array"),
        (lambda path: path.write_bytes(b"PK\x03\x04 not really a zip"), "not a readable .npz"),
        (lambda path: np.savez(path, x_train=np.zeros((10, 3), object), y_train=np.zeros(10, int), x_test=np.zeros((5, 3)), y_test=np.zeros(5, int)), "not a readable .npz"),
    ],
    ids=["empty", "npy-renamed", "broken-zip", "object-array"],
)
def test_files_that_are_not_npz_archives_are_clear_errors(tmp_path, write, message):
    path = tmp_path / "data.npz"
    write(path)
    spec = parse_spec({"name": "n", "data": {"dataset": "npz", "path": str(path)}, "sizes": {"counts": [4]}})
    with pytest.raises(DataError, match=message):
        load_dataset(spec)


def test_cifar10_labels_beyond_the_class_cap_are_refused(tmp_path):
    _write_small_cifar(tmp_path)
    images = np.zeros((40, 3, 32, 32), np.uint8)
    write_batch(tmp_path / "cifar-10-batches-py" / "data_batch_2", images, np.full(40, 10**9))
    spec = parse_spec({"name": "c", "data": {"dataset": "cifar10", "root": str(tmp_path), "download": False}, "sizes": {"counts": [10]}})
    with pytest.raises(DataError, match="renumber them"):
        load_dataset(spec)


def _fashion_spec(root: Path, validation_size: int = 20, counts=(50, 100)):
    data = {"dataset": "fashion-mnist", "root": str(root), "download": False, "validation_size": validation_size}
    return parse_spec({"name": "f", "data": data, "sizes": {"counts": list(counts)}})


def test_fashion_mnist_is_read_from_the_gzipped_idx_files_as_shipped(tmp_path):
    x_train, y_train, x_test, y_test = small_fashion_mnist()
    write_fashion_mnist(tmp_path, x_train, y_train, x_test, y_test)
    data = load_dataset(_fashion_spec(tmp_path))
    assert data.name == "fashion-mnist" and data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert data.pool_size == 100 and len(data.y_val) == 20 and len(data.y_test) == 40
    # Every image comes back with its own label, raw pixel values as float32.
    np.testing.assert_array_equal(data.x_test[:, 0].numpy(), x_test.astype(np.float32))
    np.testing.assert_array_equal(data.y_test.numpy(), y_test)
    pool = {img.tobytes(): label for img, label in zip(data.x_pool[:, 0].numpy().astype(np.uint8), data.y_pool.numpy())}
    assert all(pool.get(img.tobytes(), label) == label for img, label in zip(x_train, y_train))
    # Unpacked where torchvision's FashionMNIST looks, so the next load reads them as they are.
    assert sorted(p.name for p in (tmp_path / FASHION_MNIST_FOLDER).iterdir()) == sorted(FASHION_MNIST_FILES)


def test_fashion_mnist_reads_torchvisions_unpacked_copy_and_changes_nothing(tmp_path):
    arrays = small_fashion_mnist(seed=3)
    write_fashion_mnist(tmp_path / FASHION_MNIST_FOLDER, *arrays, gz=False)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    first = load_dataset(_fashion_spec(tmp_path))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    np.testing.assert_array_equal(first.y_test.numpy(), arrays[3])
    assert first.fingerprint(100) == load_dataset(_fashion_spec(tmp_path)).fingerprint(100)


def test_fashion_mnist_missing_without_download_is_a_clear_error(tmp_path, monkeypatch):
    # A machine without Debian's package: its folder is absent.
    monkeypatch.setattr("scaling_optuna.data.FASHION_MNIST_SYSTEM_FOLDER", tmp_path / "not-installed")
    with pytest.raises(DataError, match="Fashion-MNIST not found.*dataset-fashion-mnist"):
        load_dataset(_fashion_spec(tmp_path / "empty"))
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip"), "cannot be unpacked"),
        (lambda folder: write_idx(folder / "train-labels-idx1-ubyte", np.zeros((4, 4))), "not Fashion-MNIST's IDX files"),
        (lambda folder: write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(39)), "one label per row"),
    ],
    ids=["not-gzip", "labels-with-two-dimensions", "a-label-missing"],
)
def test_damaged_fashion_mnist_files_are_clear_errors(tmp_path, damage, message):
    write_fashion_mnist(tmp_path, *small_fashion_mnist())
    damage(tmp_path)
    with pytest.raises(DataError, match=message):
        load_dataset(_fashion_spec(tmp_path))
    # A file that failed to unpack leaves nothing half-written behind.
    assert not [p for p in tmp_path.rglob("*partial*")]


@pytest.mark.skipif(
    not (FASHION_MNIST_SYSTEM_FOLDER / f"{FASHION_MNIST_FILES[0]}.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (scripts/setup.sh installs it as root)",
)
def test_fashion_mnist_from_debians_package_is_the_full_dataset(tmp_path):
    spec = parse_spec({
        "name": "f",
        "data": {"dataset": "fashion-mnist", "root": str(tmp_path), "download": False, "validation_size": 10000},
        "sizes": {"start_fraction": 0.005},
    })
    data = load_dataset(spec)
    assert data.pool_size == 50000 and len(data.y_val) == 10000 and len(data.y_test) == 10000
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert torch.bincount(data.y_test).tolist() == [1000] * 10
    assert spec.sizes.resolve(data.pool_size) == [250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 50000]
