"""Every bad input gets one clear line, exit code 2, a specific exception, and an unchanged store.

Each row runs the real CLI entry point (in-process, so the table stays fast) and
the matching Python call, against a store that already holds an experiment.
The pre-flight table holds what used to pass ``create`` and fail only in the
workers: each case goes through ``create``, ``run`` and ``worker``.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
import pytest
import torch

import scaling_optuna
from scaling_optuna import DataError
from scaling_optuna import DeviceError
from scaling_optuna import ExperimentMismatchError
from scaling_optuna import SpecError
from scaling_optuna import StorageError
from scaling_optuna.cli import main
from scaling_optuna.data import load_dataset
from scaling_optuna.spec import load_spec
from tests.conftest import TINY_DIGITS
from tests.conftest import run_cli

GOOD = TINY_DIGITS.format(name="tiny", trials=2, counts=[60, 240], epochs=2)
NPZ_SPEC = "name = 'mine'\n[data]\ndataset = 'npz'\npath = '{path}'\n[sizes]\ncounts = [4]\n"


def _npz(folder: Path, **overrides) -> Path:
    arrays = {
        "x_train": np.zeros((20, 3), np.float32),
        "y_train": np.arange(20) % 2,
        "x_test": np.zeros((6, 3), np.float32),
        "y_test": np.arange(6) % 2,
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = folder / "data.npz"
    np.savez(path, **arrays)
    return path


def _replace(old: str, new: str) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        assert old in GOOD
        return GOOD.replace(old, new)

    return make


def _text(text: str) -> Callable[[Path], str]:
    return lambda folder: text


def _npz_case(**overrides) -> Callable[[Path], str]:
    return lambda folder: NPZ_SPEC.format(path=_npz(folder, **overrides))


def _corrupt_cifar(folder: Path) -> str:
    root = folder / "cifar"
    batches = root / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (batches / name).write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})[:-7])
    return f"name = 'c'\n[data]\ndataset = 'cifar10'\nroot = '{root}'\ndownload = false\n[sizes]\ncounts = [1]\n"


# (id, spec text builder, extra CLI args, message fragment, Python exception)
SPEC_CASES = [
    ("malformed-toml", _text("name = 'x'\n[data\n"), [], "invalid TOML", SpecError),
    ("truncated-toml", lambda f: GOOD[: GOOD.index("[search_space]") + 20], [], "invalid TOML", SpecError),
    ("wrong-type", _replace("trials_per_size = 2", "trials_per_size = 'two'"), [], "trials_per_size: 'two' must be an integer", SpecError),
    ("unknown-key", _replace("trials_per_size = 2", "trails_per_size = 2"), [], "did you mean 'trials_per_size'", SpecError),
    ("unknown-nested-key", _replace("patience = 2", "patiance = 2"), [], "did you mean 'patience'", SpecError),
    ("empty-search-space", lambda f: GOOD.split("[search_space]")[0] + "[search_space]\n" + "[trainer]" + GOOD.split("[trainer]")[1], [], "search_space: is empty", SpecError),
    ("inverted-range", _replace("low = 0.05, high = 0.3", "low = 0.3, high = 0.05"), [], "swap them", SpecError),
    ("log-range-from-zero", _replace("low = 1e-6, high = 1e-4, log = true", "low = 0.0, high = 1e-4, log = true"), [], "needs low > 0", SpecError),
    ("missing-model-param", _replace("fc2 = { low = 16, high = 48 }", ""), [], "missing fc2", SpecError),
    ("sizes-out-of-order", _replace("counts = [60, 240]", "counts = [240, 60]"), [], "increasing order", SpecError),
    ("sizes-duplicated", _replace("counts = [60, 240]", "counts = [60, 60]"), [], "duplicated", SpecError),
    ("size-zero", _replace("counts = [60, 240]", "counts = [0, 240]"), [], "not a positive count", SpecError),
    ("size-above-pool", _replace("counts = [60, 240]", "counts = [60, 5000]"), [], "larger than the training pool", SpecError),
    ("start-fraction-above-one", _replace("counts = [60, 240]", "start_fraction = 1.5"), [], "must lie in (0, 1]", SpecError),
    ("unknown-dataset", _replace('dataset = "digits"', 'dataset = "mnist"'), [], "unknown dataset 'mnist'", SpecError),
    ("unknown-model", _replace("[search_space]", "[model]\nkind = 'transformer'\n[search_space]"), [], "unknown model", SpecError),
    ("unknown-sampler", _replace('name = "RandomSampler"', 'name = "RandomSamplr"'), [], "did you mean 'RandomSampler'", SpecError),
    ("bad-pruner-option", _replace("n_startup_trials = 2", "n_startup_trial = 2"), [], "MedianPruner rejects its options", SpecError),
    ("missing-name", _replace('name = "tiny"', ""), [], "name: missing required key", SpecError),
    ("remeasure-repeats-negative", _replace("repeats = 0", "repeats = -1"), [], "remeasure.repeats: -1 must be 0 (off) or a positive integer", SpecError),
    ("remeasure-repeats-not-an-integer", _replace("repeats = 0", "repeats = 1.5"), [], "remeasure.repeats: 1.5 must be an integer", SpecError),
    ("remeasure-repeats-a-string", _replace("repeats = 0", "repeats = 'two'"), [], "remeasure.repeats: 'two' must be an integer", SpecError),
    ("remeasure-top-zero", _replace("repeats = 0", "top = 0\nrepeats = 2"), [], "remeasure.top: 0 must be a positive integer", SpecError),
    ("remeasure-top-boolean", _replace("repeats = 0", "top = true"), [], "remeasure.top: True must be an integer", SpecError),
    ("remeasure-unknown-key", _replace("repeats = 0", "repeat = 2"), [], "did you mean 'repeats'", SpecError),
    ("remeasure-not-a-table", lambda f: GOOD.replace("[remeasure]\nrepeats = 0", "").replace('name = "tiny"', 'name = "tiny"\nremeasure = 2'), [], "remeasure: 2 must be a table", SpecError),
    ("npz-wrong-shapes", _npz_case(y_train=np.zeros(19, int)), [], "one label per row", DataError),
    ("npz-negative-labels", _npz_case(y_train=-np.ones(20, int)), [], "labels must be integers", DataError),
    ("npz-nan-pixels", _npz_case(x_train=np.full((20, 3), np.nan, np.float32)), [], "NaN", DataError),
    ("npz-missing-arrays", _npz_case(y_test=None), [], "missing array(s) y_test", DataError),
    ("npz-not-an-archive", lambda f: (f / "data.npz").write_bytes(b"garbage") and NPZ_SPEC.format(path=f / "data.npz"), [], "not a readable .npz", DataError),
    ("npz-missing-file", lambda f: NPZ_SPEC.format(path=f / "nowhere.npz"), [], "does not exist", DataError),
    ("cifar-truncated-batch", _corrupt_cifar, [], "not a CIFAR-10 python batch", DataError),
    ("too-many-trials-to-queue", lambda f: GOOD.replace("counts = [60, 240]", f"counts = {list(range(2, 202))}").replace("trials_per_size = 2", "trials_per_size = 1000"), [], "200 sizes × 1,000 trials is 200,000 trials to queue, above the maximum of 100,000", SpecError),
]


@functools.cache
def _storage(url: str) -> optuna.storages.RDBStorage:
    # Opening a store checks its schema (a tenth of a second): once per store, not per read.
    return optuna.storages.RDBStorage(url)


def _snapshot(url: str) -> list:
    rows = []
    storage = _storage(url)
    for summary in sorted(optuna.get_all_study_summaries(storage), key=lambda s: s.study_name):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = [(t.number, t.state, t.params, t.user_attrs) for t in study.get_trials(deepcopy=False)]
        rows.append((summary.study_name, study.user_attrs, trials))
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    spec = folder / "tiny.toml"
    spec.write_text(GOOD)
    url = f"sqlite:///{folder / 'store.db'}"
    scaling_optuna.create_experiment(load_spec(spec), url)
    return url


def _run_main(argv: list[str], capsys) -> tuple[int, list[str]]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own exits
        code = e.code
    err = capsys.readouterr().err
    return code, err.strip().splitlines()


@pytest.mark.parametrize("case_id, build, extra, message, error", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_bad_spec_or_data(case_id, build, extra, message, error, store, tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(build(tmp_path))
    before = _snapshot(store)
    code, lines = _run_main(["create", str(spec), "--storage", store, *extra], capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert _snapshot(store) == before
    with pytest.raises(error, match=None) as raised:
        scaling_optuna.create_experiment(load_spec(spec), store)
    assert message in str(raised.value)
    assert _snapshot(store) == before


def test_spec_file_not_utf8(tmp_path, capsys):
    spec = tmp_path / "binary.toml"
    spec.write_bytes(b"\xff\xfe\x00garbage")
    code, lines = _run_main(["status", str(spec)], capsys)
    assert code == 2 and "not a UTF-8 text file" in lines[0]
    with pytest.raises(SpecError):
        load_spec(spec)


def test_missing_spec_file(tmp_path, capsys):
    code, lines = _run_main(["best", str(tmp_path / "nope.toml")], capsys)
    assert code == 2 and len(lines) == 1 and "does not exist" in lines[0]
    with pytest.raises(SpecError):
        load_spec(tmp_path / "nope.toml")


def _good_spec(folder: Path, text: str = GOOD) -> Path:
    path = folder / "tiny.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "{spec}", "--trials", "0"], "must be a positive integer"),
        (["create", "{spec}", "--trials", "1000000000"], "--trials: 1,000,000,000 trials per size is above the maximum of 10,000"),
        (["run", "{spec}", "--trials", "10001"], "--trials: 10,001 trials per size is above the maximum of 10,000"),
        (["worker", "{spec}", "--trials", "99999999999999999999999"], "--trials: 99,999,999,999,999,999,999,999 trials per size is above"),
        (["run", "{spec}", "--workers", "abc"], "is not an integer"),
        (["worker", "{spec}", "--threads", "-2"], "must be a positive integer"),
        (["frobnicate", "{spec}"], "invalid choice"),
        (["status", "{spec}", "--storage", "no-scheme-here"], "malformed"),
        (["status", "{spec}", "--storage", "sqlite:///{tmp}/missing-folder/x.db"], "no store at"),
        (["create", "{spec}", "--storage", "sqlite:///{tmp}/missing-folder/x.db"], "does not exist"),
        (["status", "{spec}", "--storage", "postgresql://u:topsecret@127.0.0.1:1/db"], "cannot open storage"),
        (["status", "{spec}", "--storage", "postgres://u:topsecret@127.0.0.1/db"], "write postgresql://"),
        (["--storage", "postgres://u:topsecret@127.0.0.1/db", "create", "{spec}"], "write postgresql://"),
        (["run", "{spec}", "--storage", "postgres+psycopg2://u:topsecret@127.0.0.1/db"], "write postgresql://"),
        (["status", "{spec}", "--watch", "0"], "not a positive number of seconds"),
        (["status", "{spec}", "--watch", "soon"], "is not a number of seconds"),
        (["status", "{spec}", "--watch", "nan"], "not a positive number of seconds"),
        (["status", "{spec}", "--watch", "0.001"], "pass at least --watch 1"),
        (["status", "{spec}", "--log-format", "xml"], "invalid choice: 'xml'"),
        (["--log-format", "xml", "status", "{spec}"], "invalid choice: 'xml'"),
        (["worker", "{spec}", "--log-level", "loud"], "invalid choice: 'loud'"),
        (["worker", "{spec}", "--threads", "0"], "must be a positive integer"),
        (["worker", "{spec}", "--threads", "10000", "--storage", "sqlite:///{tmp}/missing-folder/x.db"], "pass --threads"),
        (["run", "{spec}", "--threads", "10000", "--storage", "sqlite:///{tmp}/missing-folder/x.db"], "pass --threads"),
        (["worker", "{spec}", "--storage", "grpc://[::1:1"], "is malformed (Invalid IPv6 URL)"),
        (["status", "{spec}", "--storage", "grpc://[::1:1"], "an IPv6 host in brackets: grpc://[::1]:13000"),
        (["worker", "{spec}", "--storage", "grpc://proxy-without-port"], "needs a host and a port"),
        (["worker", "{spec}", "--workers", "0"], "must be a positive integer"),
        (["proxy", "--grpc-threads", "0"], "must be a positive integer"),
        (["proxy", "--threads", "many"], "is not an integer"),
        (["fit", "--sizes", "100,200,400", "--values", "0.5,0.4,0.3", "--target", "2"], "strictly between 0 and 1"),
        (["fit", "--sizes", "100,200,400", "--values", "0.5,0.4,0.3", "--target", "0"], "strictly between 0 and 1"),
        (["fit", "--sizes", "100,200,400", "--values", "0.5,0.4,0.3", "--target", "half"], "is not a number"),
        (["fit", "--sizes", "100,200,400", "--values", "5,4,3", "--target", "-1"], "positive finite number"),
        (["fit", "--sizes", "100,200,400", "--values", "0.5,0.4,0.3", "--form", "linear"], "invalid choice: 'linear'"),
    ],
)
def test_bad_command_lines(argv, message, tmp_path, capsys):
    spec = _good_spec(tmp_path)
    argv = [a.format(spec=spec, tmp=tmp_path) for a in argv]
    code, lines = _run_main(argv, capsys)
    assert code == 2
    assert len(lines) == 1 and message in lines[0], lines
    assert "topsecret" not in lines[0]
    assert not (tmp_path / "missing-folder").exists()


def test_unreachable_store_from_python():
    with pytest.raises(StorageError, match="cannot open storage"):
        scaling_optuna.load_experiment(
            load_spec(_good_spec(Path(pytest.importorskip("tempfile").mkdtemp()))),
            storage="postgresql://u:pw@127.0.0.1:1/db",
        )


def test_same_name_other_spec_is_refused_and_store_unchanged(store, tmp_path, capsys):
    other = _good_spec(tmp_path, GOOD.replace("max_epochs = 2", "max_epochs = 9"))
    before = _snapshot(store)
    code, lines = _run_main(["create", str(other), "--storage", store], capsys)
    assert code == 2 and "different spec" in lines[0] and "new name" in lines[0]
    with pytest.raises(ExperimentMismatchError):
        scaling_optuna.create_experiment(load_spec(other), store)
    with pytest.raises(ExperimentMismatchError):
        scaling_optuna.load_experiment(other, storage=store)
    assert _snapshot(store) == before


def test_worker_with_other_data_is_refused(tmp_path, capsys):
    path = _npz(tmp_path, x_train=np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32))
    spec = _good_spec(tmp_path, "trials_per_size = 1\n" + NPZ_SPEC.format(path=path))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert _run_main(["create", str(spec), "--storage", url], capsys)[0] == 0
    _npz(tmp_path, x_train=np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32))
    before = _snapshot(url)
    code, lines = _run_main(["worker", str(spec), "--storage", url], capsys)
    assert code == 2 and "fingerprint" in lines[0]
    assert _snapshot(url) == before
    with pytest.raises(DataError, match="fingerprint"):
        from scaling_optuna.worker import run_worker

        run_worker(load_spec(spec), url)


def test_loading_a_dataset_directly_raises_the_documented_error(tmp_path):
    spec = _good_spec(tmp_path, NPZ_SPEC.format(path=tmp_path / "absent.npz"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(load_spec(spec))


# Cases a worker would trip on: (id, spec text builder, extra arguments, message fragment, Python exception).
_NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
_LR = "lr = { low = 0.05, high = 0.3, log = true }"
_MOMENTUM = "momentum = { low = 0.8, high = 0.95 }"
_VECTORS = {"x_train": np.zeros((20, 3), np.float32), "x_test": np.zeros((6, 3), np.float32)}
PREFLIGHT_CASES = [
    ("fixed-negative-lr", _replace(_LR, "lr = -0.5"), [], "search_space.lr: -0.5 must be a learning rate > 0", SpecError),
    ("negative-lr-bound", _replace(_LR, "lr = { low = -0.5, high = 0.3 }"), [], "search_space.lr.low: -0.5 must be a learning rate > 0", SpecError),
    ("zero-lr", _replace(_LR, "lr = 0.0"), [], "must be a learning rate > 0", SpecError),
    ("nan-lr", _replace(_LR, "lr = nan"), [], "must be a learning rate > 0", SpecError),
    ("negative-momentum-bound", _replace(_MOMENTUM, "momentum = { low = -0.5, high = 0.95 }"), [], "momentum.low: -0.5 must be a momentum between 0 and 1", SpecError),
    ("momentum-above-one", _replace(_MOMENTUM, "momentum = { low = 0.8, high = 1.5 }"), [], "momentum.high: 1.5 must be a momentum between 0 and 1", SpecError),
    ("negative-weight-decay", _replace("weight_decay = { low = 1e-6, high = 1e-4, log = true }", "weight_decay = { low = -1e-3, high = 1e-4 }"), [], "must be a weight decay ≥ 0", SpecError),
    ("zero-width", _replace("conv1 = { low = 4, high = 12 }", "conv1 = { low = 0, high = 12 }"), [], "conv1.low: 0 must be a positive integer", SpecError),
    ("fractional-width", _replace("conv1 = { low = 4, high = 12 }", "conv1 = 4.5"), [], "conv1: 4.5 must be a positive integer", SpecError),
    ("zero-batch-choice", _replace("[default_params]", "batch_size = { choices = [0, 16] }\n[default_params]"), [], "batch_size.choices: 0 must be a positive integer", SpecError),
    ("default-negative-lr", _replace("lr = 0.1\n", "lr = -0.5\n"), [], "default_params.lr: -0.5 must be a learning rate > 0", SpecError),
    ("default-momentum-two", _replace("momentum = 0.9\n", "momentum = 2.0\n"), [], "default_params.momentum: 2.0 must be", SpecError),
    ("default-fractional-width", _replace("conv1 = 6\n", "conv1 = 6.5\n"), [], "default_params.conv1: 6.5 must be a positive integer", SpecError),
    ("sampler-option-type", _replace('name = "RandomSampler"\nseed = 1', 'name = "TPESampler"\nn_startup_trials = "two"'), [], "sampler.n_startup_trials: 'two' must be an integer", SpecError),
    ("pruner-option-type", _replace("n_startup_trials = 2", 'n_startup_trials = "two"'), [], "pruner.n_startup_trials: 'two' must be an integer", SpecError),
    ("sampler-callable-option", _replace('name = "RandomSampler"', 'name = "TPESampler"\ngamma = "mine"'), [], "which a TOML spec cannot give", SpecError),
    ("sampler-fails-in-use", _replace('name = "RandomSampler"\nseed = 1', 'name = "GridSampler"\nsearch_space = { lr = [0.1] }'), [], "GridSampler fails when used", SpecError),
    ("deeply-nested-toml", _text("name = 'x'\nv = " + "[" * 5000 + "]" * 5000 + "\n"), [], "nested too deeply", SpecError),
    ("npz-empty-file", lambda f: (f / "data.npz").write_bytes(b"") or NPZ_SPEC.format(path=f / "data.npz"), [], "the file is empty", DataError),
    ("npz-is-an-npy", lambda f: _npy_renamed(f / "data.npz"), [], "a single .npy array", DataError),
    ("npz-uint64-labels", _npz_case(y_train=np.full(20, 2**63 + 1, np.uint64)), [], "renumber them", DataError),
    ("npz-labels-of-a-billion", _npz_case(y_train=np.where(np.arange(20) % 2 == 0, 10**9, 0)), [], "renumber them", DataError),
    ("npz-complex-x", _npz_case(x_train=np.ones((20, 3), np.complex64)), [], "complex numbers", DataError),
    ("npz-beyond-float32", _npz_case(x_train=np.full((20, 3), 1e300)), [], "beyond float32", DataError),
    ("cnn-on-vectors", lambda f: _npz_case(**_VECTORS)(f) + "[model]\nkind = 'cnn'\n", [], 'use kind = "mlp"', SpecError),
    ("cnn-on-1x1-images", lambda f: _npz_case(x_train=np.zeros((20, 1, 1, 1), np.float32), x_test=np.zeros((6, 1, 1, 1), np.float32))(f) + "[model]\nkind = 'cnn'\n", [], "too small", SpecError),
    ("spec-device-not-a-device", _replace("batch_size = 16", 'batch_size = 16\ndevice = "cuda:abc"'), [], "trainer.device: 'cuda:abc' must be", SpecError),
    # A default the study cannot record, a model no worker can hold, an Optuna range that would shrink silently.
    ("default-weight-decay-zero-on-log-range", _replace("weight_decay = 1e-6\n", "weight_decay = 0\n"), [], "default_params.weight_decay: 0 cannot be recorded on the log-scaled search_space.weight_decay", SpecError),
    ("default-not-a-choice", _replace("[default_params]", "batch_size = { choices = [16, 32] }\n[default_params]\nbatch_size = 64"), [], "default_params.batch_size: 64 is not one of search_space.batch_size.choices [16, 32]", SpecError),
    ("default-fc2-of-a-billion", _replace("fc2 = 32\n", "fc2 = 1000000000\n"), [], "default_params.fc2: the untuned baseline (conv1 = 6, conv2 = 8, fc1 = 32, fc2 = 1000000000) needs about", SpecError),
    ("fc1-up-to-a-billion", _replace("fc1 = { low = 16, high = 48 }", "fc1 = { low = 16, high = 1000000000 }"), [], "search_space.fc1.high: the largest model of the search space (conv1 = 12, conv2 = 12, fc1 = 1000000000, fc2 = 48) needs about", SpecError),
    ("conv-widths-in-the-hundred-thousands", _replace("= { low = 4, high = 12 }", "= { low = 100000, high = 200000 }"), [], "search_space.conv1.high: the largest model of the search space (conv1 = 200000, conv2 = 200000", SpecError),
    ("step-beyond-the-range", _replace("conv1 = { low = 4, high = 12 }", "conv1 = { low = 4, high = 8, step = 100 }"), [], "search_space.conv1.step: 100 is larger than the range 4..8; use a step of at most 4", SpecError),
    ("step-not-dividing-the-range", _replace("conv1 = { low = 4, high = 12 }", "conv1 = { low = 4, high = 12, step = 3 }"), [], "(Optuna would cut it to 4..10); use high = 10", SpecError),
    ("validation-size-and-fraction", _replace('dataset = "digits"', 'dataset = "digits"\nvalidation_size = 100\nvalidation_fraction = 0.2'), [], "data: validation_size and validation_fraction both given; keep one", SpecError),
    ("ten-thousand-sizes", _replace("counts = [60, 240]", f"counts = {list(range(1, 10001))}"), [], "sizes.counts: 10000 sizes, more than the maximum of 1,000", SpecError),
    ("budget-beyond-the-maximum", _replace("trials_per_size = 2", "trials_per_size = 9223372036854775807"), [], "trials_per_size: 9,223,372,036,854,775,807 trials per size is above the maximum of 10,000", SpecError),
    ("name-beyond-optunas-study-names", _replace('name = "tiny"', f'name = "{"n" * 610}"'), [], "name: 610 characters, more than the 503 that fit Optuna's study names", SpecError),
    ("artifacts-where-nothing-can-be-written", _replace("trials_per_size = 2", 'trials_per_size = 2\nartifacts = "/proc/nope"'), [], "artifact folder /proc/nope cannot be written", StorageError),
    # Experimental Optuna classes: their ExperimentalWarning must not surround the one error line.
    ("experimental-sampler-then-an-error", lambda f: GOOD.replace('name = "RandomSampler"\nseed = 1', 'name = "BruteForceSampler"').replace("n_startup_trials = 2", "n_startup_trial = 2"), [], "MedianPruner rejects its options", SpecError),
    ("qmc-options-then-an-error", lambda f: GOOD.replace('name = "RandomSampler"', 'name = "QMCSampler"\nqmc_type = "halton"\nscramble = true').replace("n_startup_trials = 2", "n_startup_trial = 2"), [], "MedianPruner rejects its options", SpecError),
    ("wilcoxon-pruner-option-type", _replace('name = "MedianPruner"\nn_startup_trials = 2', 'name = "WilcoxonPruner"\np_threshold = "x"'), [], "pruner.p_threshold: 'x' must be a number", SpecError),
    ("patient-pruner-option-type", _replace('name = "MedianPruner"\nn_startup_trials = 2', 'name = "PatientPruner"\npatience = "x"'), [], "pruner.patience: 'x' must be an integer", SpecError),
]
# Devices given on the command line (create trains nothing and takes no --device).
DEVICE_CASES = [
    ("device-junk", ["--device", "junk"], "device 'junk' is not a device"),
    pytest.param("device-cuda-without-gpu", ["--device", "cuda"], "no CUDA GPU", marks=_NO_GPU),
    pytest.param("device-cuda-1-without-gpu", ["--device", "cuda:1"], "no CUDA GPU", marks=_NO_GPU),
]


def _npy_renamed(path: Path) -> str:
    np.save(path.with_suffix(".npy"), np.zeros(4))
    path.with_suffix(".npy").rename(path)
    return NPZ_SPEC.format(path=path)


def _preflight_argv(command: str, spec: Path, store: str, extra: list[str]) -> list[str]:
    more = ["--trials", "1", "--threads", "1"] if command != "create" else []
    return [command, str(spec), "--storage", store, *more, *extra]


@pytest.mark.parametrize("command", ["create", "run", "worker"])
@pytest.mark.parametrize("case_id, build, extra, message, error", PREFLIGHT_CASES, ids=[c[0] for c in PREFLIGHT_CASES])
def test_what_a_worker_would_trip_on_stops_every_command(case_id, build, extra, message, error, command, store, tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(build(tmp_path))
    # create and run against a store that does not exist yet: it must not be created;
    # worker against the existing store: it must not change.
    fresh = tmp_path / "fresh.db"
    url = store if command == "worker" else f"sqlite:///{fresh}"
    before = _snapshot(store)
    code, lines = _run_main(_preflight_argv(command, spec, url, extra), capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not fresh.exists() and not Path(f"{fresh}-artifacts").exists()
    assert _snapshot(store) == before
    if command == "create":
        with pytest.raises(error) as raised:
            scaling_optuna.create_experiment(load_spec(spec), url)
        assert message in str(raised.value)
        assert not fresh.exists()


@pytest.mark.parametrize("command", ["run", "worker"])
@pytest.mark.parametrize("case_id, extra, message", DEVICE_CASES)
def test_a_device_this_machine_lacks_stops_run_and_worker(case_id, extra, message, command, store, tmp_path, capsys):
    spec = _good_spec(tmp_path)
    fresh = tmp_path / "fresh.db"
    url = store if command == "worker" else f"sqlite:///{fresh}"
    before = _snapshot(store)
    code, lines = _run_main(_preflight_argv(command, spec, url, extra), capsys)
    assert code == 2
    assert len(lines) == 1 and message in lines[0], lines
    assert not fresh.exists() and _snapshot(store) == before
    from scaling_optuna.worker import run_worker

    with pytest.raises(DeviceError, match=message):
        run_worker(load_spec(spec), store, device=extra[1])
    assert _snapshot(store) == before


@_NO_GPU
def test_create_accepts_a_gpu_spec_on_a_machine_without_one_but_run_refuses(tmp_path, capsys):
    # The machine that creates the studies need not be the one that trains them.
    spec = _good_spec(tmp_path, GOOD.replace("batch_size = 16", 'batch_size = 16\ndevice = "cuda"'))
    created = f"sqlite:///{tmp_path / 'created.db'}"
    assert _run_main(["create", str(spec), "--storage", created], capsys)[0] == 0
    code, lines = _run_main(["run", str(spec), "--storage", f"sqlite:///{tmp_path / 'run.db'}"], capsys)
    assert code == 2 and len(lines) == 1 and "no CUDA GPU" in lines[0]
    assert not (tmp_path / "run.db").exists()


@_NO_GPU
def test_a_worker_process_refuses_a_missing_gpu_in_one_line(store, tmp_path):
    # As a user starts it: its own process, its own exit code and stderr.
    before = _snapshot(store)
    result = run_cli("worker", str(_good_spec(tmp_path)), "--storage", store, "--device", "cuda")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: device 'cuda'") and "no CUDA GPU" in lines[0], lines
    assert _snapshot(store) == before


def test_the_longest_name_fits_postgresqls_study_names_and_one_more_character_writes_nothing(postgres_url, tmp_path, capsys):
    import sqlalchemy

    from scaling_optuna.spec import MAX_NAME_LENGTH

    too_long = _good_spec(tmp_path, GOOD.replace('name = "tiny"', f'name = "{"n" * (MAX_NAME_LENGTH + 1)}"'))
    code, lines = _run_main(["create", str(too_long), "--storage", postgres_url], capsys)
    assert code == 2 and len(lines) == 1 and f"name: {MAX_NAME_LENGTH + 1} characters" in lines[0], lines
    engine = sqlalchemy.create_engine(postgres_url)
    assert sqlalchemy.inspect(engine).get_table_names() == []  # not even Optuna's tables
    # Optuna's column: the longest name plus "-n" and a 7-digit size fill it exactly.
    longest = _good_spec(tmp_path, GOOD.replace('name = "tiny"', f'name = "{"n" * MAX_NAME_LENGTH}"'))
    assert _run_main(["create", str(longest), "--storage", postgres_url], capsys)[0] == 0
    (column,) = [c for c in sqlalchemy.inspect(engine).get_columns("studies") if c["name"] == "study_name"]
    assert column["type"].length == MAX_NAME_LENGTH + len("-n0000060") == 512
    engine.dispose()
