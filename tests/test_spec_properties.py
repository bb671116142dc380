"""Property-based tests of the spec loader: no input raises anything but SpecError."""

from __future__ import annotations

import copy
import sys

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from scaling_optuna.errors import SpecError
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.spec import load_spec
from scaling_optuna.spec import parse_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VALID = {
    "name": "x",
    "seed": 0,
    "trials_per_size": 3,
    "data": {"dataset": "digits", "validation_fraction": 0.2},
    "sizes": {"counts": [10, 20]},
    "search_space": {
        "lr": {"low": 0.01, "high": 0.1, "log": True},
        "weight_decay": 1e-5,
        "momentum": {"low": 0.5, "high": 0.9},
        "conv1": {"low": 4, "high": 8},
        "conv2": {"low": 4, "high": 8},
        "fc1": {"low": 8, "high": 16},
        "fc2": {"low": 8, "high": 16},
    },
    "trainer": {"max_epochs": 3, "patience": 2, "batch_size": 16},
    "sampler": {"name": "TPESampler", "n_startup_trials": 2},
    "pruner": {"name": "MedianPruner"},
}

toml_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)
# Paths to every key of the valid spec, so mutations hit real and nested keys.
PATHS = [(k,) for k in VALID] + [(k, k2) for k, v in VALID.items() if isinstance(v, dict) for k2 in v] + [
    ("search_space", k, k2) for k, v in VALID["search_space"].items() if isinstance(v, dict) for k2 in v
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.sampled_from(PATHS), toml_values, st.booleans()), min_size=1, max_size=4))
def test_mutated_specs_parse_or_raise_spec_error(mutations):
    raw = copy.deepcopy(VALID)
    for path, value, delete in mutations:
        table = raw
        for key in path[:-1]:
            table = table.get(key) if isinstance(table, dict) else None
            if not isinstance(table, dict):
                break
        else:
            if delete:
                table.pop(path[-1], None)
            else:
                table[path[-1]] = value
    try:
        spec = parse_spec(raw)
    except SpecError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(spec, ExperimentSpec)
        assert spec.trials_per_size > 0 and spec.trainer.max_epochs > 0


@settings(max_examples=200, deadline=None)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=10), toml_values, min_size=1, max_size=3))
def test_unknown_keys_are_named(extra):
    raw = {**copy.deepcopy(VALID), **{k: v for k, v in extra.items() if k not in VALID}}
    try:
        parse_spec(raw)
    except SpecError as e:
        assert any(k in str(e) for k in extra) or "must" in str(e)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_files_load_or_raise_spec_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("spec") / "s.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_spec(path)
    except SpecError:
        pass


def test_the_valid_spec_round_trips_through_toml(tmp_path):
    lines = []
    for key in ("name", "seed", "trials_per_size"):
        lines.append(f"{key} = {VALID[key]!r}".replace("'", '"'))
    text = "\n".join(lines) + '\n[data]\ndataset = "digits"\n[sizes]\ncounts = [10, 20]\n'
    path = tmp_path / "s.toml"
    path.write_text(text)
    assert tomllib.loads(text)["name"] == "x"
    assert load_spec(path).sizes.counts == (10, 20)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(-(2**40), 2**40),
    choices=st.lists(toml_scalars, min_size=0, max_size=4),
)
def test_seeds_and_choices_are_checked(seed, choices):
    raw = copy.deepcopy(VALID)
    raw["seed"] = seed
    raw["search_space"]["lr"] = {"choices": choices}
    try:
        spec = parse_spec(raw)
    except SpecError:
        return
    assert 0 <= spec.seed < 2**32
    assert all(c > 0 for c in spec.search_space["lr"].choices)
