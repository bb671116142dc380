"""The experiment specs under studies/ load, and describe the experiments the README promises."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from scaling_optuna.data import load_dataset
from scaling_optuna.model import build_model
from scaling_optuna.model import count_parameters
from scaling_optuna.remeasure import is_remeasure
from scaling_optuna.spec import load_spec
from tests.conftest import run_cli
from tests.idx_files import small_fashion_mnist
from tests.idx_files import write_fashion_mnist

STUDIES = Path(__file__).resolve().parents[1] / "studies"


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_spec_loads(path):
    spec = load_spec(path)
    assert spec.trials_per_size > 0 and spec.name == path.stem
    # The untuned baseline is a full point of the search space's parameters.
    assert set(spec.search_space) <= set(spec.default_params)


def test_cifar10_spec_is_the_seeds_experiment():
    spec = load_spec(STUDIES / "cifar10.toml")
    assert spec.sizes.resolve(40000) == [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 40000]
    assert spec.data.validation_size == 10000 and spec.trials_per_size == 20 and spec.trainer.max_epochs == 15
    lr = spec.search_space["lr"]
    assert (lr.low, lr.high, lr.log) == (1e-6, 1e-1, True)
    assert {k: spec.default_params[k] for k in ("conv1", "conv2", "fc1", "fc2")} == {"conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84}


def test_digits_spec_ladder_fits_its_pool():
    spec = load_spec(STUDIES / "digits.toml")
    data = load_dataset(spec)
    sizes = spec.sizes.resolve(data.pool_size)
    assert sizes[0] == 36 and sizes[-1] == data.pool_size == 1151
    assert all(b == 2 * a or b == data.pool_size for a, b in zip(sizes, sizes[1:]))


def test_digits_mlp_spec_trains_the_mlp_on_the_digits_specs_subsets():
    # `compare` sets it against digits.toml: the same data, seed and split, so the same nested subsets.
    cnn, mlp = load_spec(STUDIES / "digits.toml"), load_spec(STUDIES / "digits-mlp.toml")
    cnn_data, mlp_data = load_dataset(cnn), load_dataset(mlp)
    sizes = mlp.sizes.resolve(mlp_data.pool_size)
    assert sizes == cnn.sizes.resolve(cnn_data.pool_size)
    assert [mlp_data.fingerprint(m) for m in sizes] == [cnn_data.fingerprint(m) for m in sizes]
    assert mlp.model == "mlp" and (mlp.trainer, mlp.remeasure, mlp.trials_per_size) == (cnn.trainer, cnn.remeasure, cnn.trials_per_size)
    assert {k: mlp.default_params[k] for k in ("lr", "fc1", "fc2")} == {k: cnn.default_params[k] for k in ("lr", "fc1", "fc2")}


def test_fashion_mnist_spec_is_the_seeds_experiment_on_one_channel():
    spec, cifar = load_spec(STUDIES / "fashion-mnist.toml"), load_spec(STUDIES / "cifar10.toml")
    assert spec.sizes.resolve(50000) == [250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 50000]
    assert (spec.data.dataset, spec.data.validation_size, spec.model) == ("fashion-mnist", 10000, "cnn")
    assert (spec.search_space, spec.default_params, spec.trainer) == (cifar.search_space, cifar.default_params, cifar.trainer)
    # The tutorial's layers on 1×28×28: unpadded 5×5 convolutions leave 16 maps of 4×4 for fc1.
    net = build_model(spec.model, (1, 28, 28), 10, spec.default_params)
    assert net.conv1.kernel_size == (5, 5) and net.conv1.padding == (0, 0) and net.fc1.in_features == 16 * 4 * 4
    assert count_parameters(net) == 44426


@pytest.mark.slow
def test_fashion_mnist_spec_runs_on_idx_files(tmp_path):
    write_fashion_mnist(tmp_path / "fm", *small_fashion_mnist(n_train=160, n_test=40))
    text = (STUDIES / "fashion-mnist.toml").read_text()
    for old, new in [
        ('root = "data"', f'root = "{tmp_path / "fm"}"'),
        ("validation_size = 10000", "validation_size = 32"),
        ("start_fraction = 0.005", "start_fraction = 0.25"),
        ("trials_per_size = 20", "trials_per_size = 1"),
        ("max_epochs = 15", "max_epochs = 2"),
    ]:
        assert old in text
        text = text.replace(old, new)
    spec = tmp_path / "fashion-mnist.toml"
    spec.write_text(text)
    url = f"sqlite:///{tmp_path / 'fm.db'}"
    done = run_cli("run", str(spec), "--storage", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 sizes 32..128" in done.stdout
    for size in (32, 64, 128):
        study = optuna.load_study(study_name=f"fashion-mnist-n{size:07d}", storage=url)
        finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        # the search's one trial (the untuned baseline), then the default re-measuring: it twice more
        assert sorted(is_remeasure(t) for t in finished) == [False, True, True]
        assert study.user_attrs["input_shape"] == [1, 28, 28] and study.user_attrs["dataset"] == "fashion-mnist"
