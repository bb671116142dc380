"""``scaling-optuna compare``: experiments on one data ladder set against each other, checked against known laws.

Most tests read one store of four experiments on the same digits subsets whose
trials follow known laws (``tests/compare_store.py``): ``half`` needs half the
data ``ref`` needs for any error (k = 2), ``copy`` is ``ref`` again with other
noise, ``flat`` crosses ``ref`` at 256 examples.  One test compares two real
tiny experiments, identical but for their names, each trained by its own
workers; the bad-input table runs the CLI in-process against the same store.
"""

from __future__ import annotations

import json
import math
import re

import optuna
import optuna_dashboard
import pytest

import scaling_optuna
from scaling_optuna import SpecError
from scaling_optuna import UserError
from scaling_optuna.cli import main
from scaling_optuna.compare.pairs import factors
from scaling_optuna.compare.draws import normal_draws
from scaling_optuna.dashboard import comparison_ids
from scaling_optuna.spec import parse_spec
from tests.compare_store import CROSSING
from tests.compare_store import SECONDS_EXPONENT
from tests.compare_store import SIZES
from tests.compare_store import make_store
from tests.compare_store import spec_path
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(folder, URL): the four experiments of known laws; beside them, without trials, ``empty`` (same data),
    ``seed1`` (another seed: other subsets) and ``other-sizes`` (no size in common); ``never`` has a spec only."""
    folder = tmp_path_factory.mktemp("compare")
    url = make_store(folder)
    for path in (spec_path(folder, "empty"), spec_path(folder, "seed1", seed=1), spec_path(folder, "other-sizes", counts=(100, 200, 400))):
        scaling_optuna.create_experiment(scaling_optuna.load_spec(path), url)
    spec_path(folder, "never")
    return folder, url


@pytest.fixture(scope="module")
def comparison(store):
    folder, url = store
    specs = [spec_path(folder, name) for name in ("ref", "half", "copy", "flat")]
    return scaling_optuna.compare_experiments(specs, url, target=0.03, cost_per_example=1.0, cost_per_gpu_hour=10.0, n_bootstrap=300)


def _pair(comparison, other):
    return next(p for p in comparison.pairs if p.other == other)


def test_a_model_that_needs_half_the_data_has_factor_two(comparison):
    pair = _pair(comparison, "half")
    for f in pair.factors:
        assert f.k == pytest.approx(2.0, rel=0.1), f
        assert f.lower <= 2.0 <= f.upper
    # Measured on the same subsets, its smaller error is significant at every size.
    assert [d.verdict("ref", "half") for d in pair.differences] == ["half is better"] * len(SIZES)
    assert pair.crossing.size is None and pair.crossing.better_after == "half"


def test_an_identical_copy_holds_one_everywhere_and_never_differs(comparison):
    pair = _pair(comparison, "copy")
    assert pair.factors and all(f.lower <= 1.0 <= f.upper for f in pair.factors)
    assert not any(d.significant for d in pair.differences)
    assert pair.verdict is None and not pair.crossing.significant
    assert "no significant difference" in pair.crossing.message


def test_curves_that_cross_are_found_where_they_cross(comparison):
    cross = _pair(comparison, "flat").crossing
    assert cross.size == pytest.approx(CROSSING, rel=0.15)
    assert cross.lower <= CROSSING <= cross.upper
    assert cross.significant and (cross.better_before, cross.better_after) == ("flat", "ref")
    assert _pair(comparison, "flat").verdict == "ref"  # past the crossing, at 2× the data


def test_the_factor_interval_comes_from_both_bands(comparison):
    ref, half = comparison.members[0].fit, comparison.members[1].fit
    z_ref, z_half = normal_draws(2000, 0)
    at = [(960.0, None)]
    (both,) = factors(ref, half, at, z_ref, z_half)
    (one,) = factors(ref, half, at, z_ref, 0.0 * z_half)
    assert one.upper / one.lower < both.upper / both.lower  # the other's band adds its width


def test_target_costs_cheapest_way_and_plan(comparison):
    target = comparison.target
    truth = {"ref": (2 / 0.03) ** 2, "half": (2 / 0.03) ** 2 / 2}
    for name, examples in truth.items():
        need = target.needs[name]
        assert need.size == pytest.approx(examples, rel=0.15) and need.lower <= examples <= need.upper
    assert target.cheapest == "switch to half and collect more data (both)"
    ways = {o.experiment: o for o in target.options}
    pool = comparison.members[0].pool_size
    assert ways["half"].collect == pytest.approx(target.needs["half"].size - pool)
    assert ways["half"].cost == pytest.approx(ways["half"].collect * 1.0 + ways["half"].device_hours * 10.0)
    assert ways["half"].cost < ways["ref"].cost
    compute = comparison.members[0].compute
    assert compute.exponent == pytest.approx(SECONDS_EXPONENT, abs=0.02)
    plan = target.plan
    assert plan.experiment == "half" and plan.total >= plan.estimate
    assert plan.round_total == min(plan.total, 4 * SIZES[-1]) and plan.collect == math.ceil(plan.round_total - pool)
    assert "run that size, and compare again" in plan.message


def test_text_json_and_page_say_the_same(comparison):
    text = comparison.to_text()
    assert "half with m examples matches ref with k·m" in text
    assert re.search(r"With 2× the data \(1,920 examples\), flat does what ref does with 0\.\d+× as many", text)
    data = json.loads(comparison.to_json())
    assert [e["name"] for e in data["experiments"]] == ["ref", "half", "copy", "flat"]
    assert data["shared_sizes"] == list(SIZES) and data["target"]["cheapest"] == comparison.target.cheapest
    assert [p["verdict"] for p in data["pairs"]] == [p.verdict for p in comparison.pairs]
    page = comparison.to_html()
    assert not re.search(r"<script[^>]*\ssrc=", page), "plotly.js must be inline, not fetched"
    names = {t.name for t in comparison.figure().data}
    assert {"ref: measured", "half: 95% band", "flat: fit, β=-0.250"} <= names


def test_cli_writes_publishes_and_replaces_its_own_note(store, tmp_path):
    folder, url = store
    out = tmp_path / "out"
    study = optuna.load_study(study_name="ref-n0000960", storage=url)
    optuna_dashboard.save_note(study, "note by a user")
    args = ["compare", str(spec_path(folder, "ref")), str(spec_path(folder, "half")), "--storage", url, "--out", str(out), "--target", "0.03"]
    for _ in range(2):
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
    assert "half against ref:" in done.stdout and "fewest examples: switch to half" in done.stdout
    data = json.loads((out / "compare.json").read_text())
    assert [d["published"] for d in data["dashboard"]] == [True, True]
    graph_id, begin, _ = comparison_ids(["ref", "half"])
    for name in ("ref-n0000960", "half-n0000960"):
        note = optuna_dashboard.get_note(optuna.load_study(study_name=name, storage=url))
        assert note.count(begin) == 1 and "Comparison: `ref` vs `half`" in note
        storage = optuna.storages.RDBStorage(url)
        attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(name))
        assert f"dashboard:plot_data:{graph_id}" in {k.rsplit(":", 1)[0] for k in attrs} | set(attrs)
    assert "note by a user" in optuna_dashboard.get_note(study)


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    """The CLI entry point in-process: its exit code (an argparse error exits) and its stderr."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


BAD = [
    ("one experiment", ["ref"], [], "two or more experiment"),
    ("the same twice", ["ref", "ref"], [], "given twice"),
    ("other data", ["ref", "seed1"], [], "different data"),
    ("no shared size", ["ref", "other-sizes"], [], "share no training-set size"),
    ("never created", ["ref", "never"], [], "holds no study of experiment 'never'"),
    ("nothing measured", ["ref", "empty"], [], "no finished trial with a test error"),
    ("negative price", ["ref", "half"], ["--cost-per-example", "-1"], "finite number ≥ 0"),
    ("price not a number", ["ref", "half"], ["--cost-per-gpu-hour", "two"], "not a number"),
    ("target above 1", ["ref", "half"], ["--target", "1.5"], "strictly between 0 and 1"),
    ("an accuracy for a target", ["ref", "half"], ["--target", "0.95"], "guessing the most common class"),
]


@pytest.mark.parametrize("case_id, names, extra, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_nothing_is_written_or_published(case_id, names, extra, message, store, tmp_path, capsys):
    folder, url = store
    out = tmp_path / "out"
    notes = _notes(url)
    code, err = _cli(["compare", *(str(folder / f"{n}.toml") for n in names), "--storage", url, "--out", str(out), *extra], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message in err
    assert not out.exists() and _notes(url) == notes


def _notes(url: str) -> dict[str, str]:
    """The notes of the largest studies, where a comparison publishes."""
    names = [s.study_name for s in optuna.get_all_study_summaries(url) if s.study_name.endswith(f"-n{SIZES[-1]:07d}")]
    return {name: optuna_dashboard.get_note(optuna.load_study(study_name=name, storage=url)) for name in names}


def test_python_callers_get_the_parameters_name(store):
    folder, url = store
    specs = [spec_path(folder, "ref"), spec_path(folder, "half")]
    with pytest.raises(UserError, match="cost_per_example must be a price"):
        scaling_optuna.compare_experiments(specs, url, cost_per_example=float("nan"))
    with pytest.raises(UserError, match="two or more experiments"):
        scaling_optuna.compare_experiments(specs[0], url)


def test_spec_costs_are_checked_and_used_unless_a_flag_says_otherwise(store, tmp_path):
    base = {"name": "c", "data": {"dataset": "digits"}, "sizes": {"counts": [60]}}
    assert parse_spec({**base, "costs": {"per_example": 0.5}}).costs.per_example == 0.5
    for bad, message in [({"per_example": -1}, "costs.per_example"), ({"per_gpu_hour": "x"}, "must be a number"), ({"per_exmaple": 1}, "did you mean")]:
        with pytest.raises(SpecError, match=re.escape(message)):
            parse_spec({**base, "costs": bad})
    folder, url = store
    priced = []
    for name, price in (("ref", 2.0), ("half", 3.0)):
        text = spec_path(folder, name).read_text() + f"\n[costs]\nper_example = {price}\n"
        priced.append(tmp_path / f"{name}.toml")
        priced[-1].write_text(text)
    with pytest.raises(UserError, match=r"\[costs\] per_example differ \(ref 2, half 3\); pass --cost-per-example"):
        scaling_optuna.compare_experiments(priced, url, target=0.03)
    flagged = scaling_optuna.compare_experiments(priced, url, target=0.03, cost_per_example=1.0, n_bootstrap=100)
    assert flagged.target.rates.per_example == 1.0 and flagged.target.rates.source == "--cost-per-example"


@pytest.mark.slow
def test_two_identical_experiments_trained_apart_do_not_differ(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'twins.db'}"
    specs = [tiny_digits(name=name, trials=2, counts=(60, 120, 240, 480), epochs=4) for name in ("twin-a", "twin-b")]
    for spec in specs:
        done = run_cli("run", str(spec), "--storage", url, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    done = run_cli("compare", *map(str, specs), "--storage", url, "--out", str(tmp_path / "out"), "--no-publish", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "out" / "compare.json").read_text())
    (pair,) = data["pairs"]
    # every fitted size (the smallest may be left out as the small-data plateau), then 2× and 10×
    assert len(pair["factors"]) >= 5 and [f["multiple"] for f in pair["factors"]][-2:] == [2, 10]
    assert all(f["lower"] <= 1 <= _number(f["upper"]) for f in pair["factors"])
    assert pair["crossing"]["significant"] is False and pair["verdict"] is None
    assert not any(d["significant"] for d in pair["differences"])
    assert data["dashboard"] is None


def _number(value) -> float:
    return math.inf if value == "inf" else float(value)
