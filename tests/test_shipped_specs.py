"""The experiment specs under studies/ load, and describe the experiments the README promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaling_optuna.data import load_dataset
from scaling_optuna.spec import load_spec

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
