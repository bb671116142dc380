"""Property-based tests of the spec loader: no input raises anything but SpecError,
and what parses lies within the documented ranges.

Each property has a failure branch: an input that should be refused but parses
fails the test, and so does a valid one that is refused.
"""

from __future__ import annotations

import copy
import math
import sys

from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution

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
        for name, dist in spec.search_space.items():
            values = dist.choices if isinstance(dist, CategoricalDistribution) else (dist.low, dist.high)
            assert all(_valid(name, v) for v in values), (name, dist)
        assert all(_valid(name, v) for name, v in spec.default_params.items())


def _at(table, path):
    for key in path:
        table = table[key]
    return table


# Every key of the valid spec that holds one value, with the Python type it holds.
SCALAR_PATHS = [p for p in PATHS if not isinstance(_at(VALID, p), (dict, list))]


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(SCALAR_PATHS), value=toml_scalars)
def test_each_key_takes_values_of_its_own_type_only(path, value):
    raw = copy.deepcopy(VALID)
    _at(raw, path[:-1])[path[-1]] = value
    wanted = type(_at(VALID, path))
    try:
        parse_spec(raw)
    except SpecError as e:
        assert "\n" not in str(e)
    else:
        # A number key takes an integer too; nothing else crosses types (true is not 1).
        same = type(value) is wanted or (wanted is float and type(value) is int)
        assert same, f"{'.'.join(path)} = {value!r} was accepted where {wanted.__name__} belongs"


def _valid(name: str, value) -> bool:
    """The documented range of each hyperparameter, written out independently of the spec module."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if name == "lr":
        return value > 0
    if name == "weight_decay":
        return value >= 0
    if name == "momentum":
        return 0 <= value <= 1
    return isinstance(value, int) and value >= 1  # layer widths and the batch size


@settings(max_examples=200, deadline=None)
@given(
    where=st.sampled_from([(), ("data",), ("trainer",), ("sizes",)]),
    extra=st.dictionaries(st.text(min_size=1, max_size=10), toml_values, min_size=1, max_size=3),
)
def test_unknown_keys_are_named(where, extra):
    raw = copy.deepcopy(VALID)
    table = raw
    for key in where:
        table = table[key]
    unknown = {k: v for k, v in extra.items() if k not in table}
    assume(unknown)
    table.update(unknown)
    try:
        parse_spec(raw)
    except SpecError as e:
        prefix = "".join(f"{w}." for w in where)
        assert any(str(e).startswith((f"{prefix}{k}: unknown key", f"{prefix}{k!r}: unknown key")) for k in unknown), str(e)
        assert "\n" not in str(e)
    else:
        raise AssertionError(f"unknown key(s) {sorted(unknown)} in {'.'.join(where) or 'the top level'} were accepted")


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
    valid = 0 <= seed < 2**32 and bool(choices) and all(_valid("lr", c) for c in choices)
    try:
        spec = parse_spec(raw)
    except SpecError:
        assert not valid, (seed, choices)
    else:
        assert valid, (seed, choices)
        assert spec.seed == seed and list(spec.search_space["lr"].choices) == choices


finite_or_not = st.one_of(st.floats(-10, 10), st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["lr", "weight_decay", "momentum", "conv1", "fc2", "batch_size"]), low=finite_or_not, high=finite_or_not, fixed=finite_or_not)
def test_hyperparameters_parse_exactly_within_their_ranges(name, low, high, fixed):
    for value, expected in (
        ({"low": low, "high": high}, _valid(name, low) and _valid(name, high) and low <= high),
        (fixed, _valid(name, fixed)),
    ):
        raw = copy.deepcopy(VALID)
        raw["search_space"][name] = value
        try:
            parse_spec(raw)
        except SpecError as e:
            assert not expected, f"{name} = {value!r} was refused: {e}"
            assert str(e).startswith(f"search_space.{name}"), str(e)
        else:
            assert expected, f"{name} = {value!r} was accepted"
    raw = copy.deepcopy(VALID)
    raw["search_space"]["batch_size"] = {"low": 8, "high": 32}
    raw["default_params"] = {**{k: 1 for k in raw["search_space"]}, "lr": 0.1, "momentum": 0.5, name: fixed}
    try:
        parse_spec(raw)
    except SpecError as e:
        assert not _valid(name, fixed) and str(e).startswith(f"default_params.{name}"), str(e)
    else:
        assert _valid(name, fixed), f"default_params.{name} = {fixed!r} was accepted"


@settings(max_examples=150, deadline=None)
@given(value=toml_values)
def test_sampler_and_pruner_options_have_their_constructors_types(value):
    for kind, name, key in (("sampler", "TPESampler", "n_startup_trials"), ("pruner", "MedianPruner", "n_warmup_steps")):
        raw = copy.deepcopy(VALID)
        raw[kind] = {"name": name, key: value}
        well_typed = isinstance(value, int) and not isinstance(value, bool)
        try:
            parse_spec(raw)
        except SpecError as e:
            # A well-typed value may still be out of range for the constructor (n_warmup_steps < 0).
            assert not well_typed or "rejects its options" in str(e), str(e)
            assert str(e).startswith(kind), str(e)
        else:
            assert well_typed, f"{kind}.{key} = {value!r} was accepted"
