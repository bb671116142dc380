"""The report: fits from the best trial per size, its outputs, the dashboard, and bad input.

Most tests read one store built once per module with trials whose metrics
follow known laws (created directly with Optuna, so the fits can be checked
against the truth in seconds); one test goes through a real `scaling-optuna
run` and `report`.
"""

from __future__ import annotations

import ast
import json
import math
import re
import select
import socket
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import scaling_optuna
from scaling_optuna.dashboard import NOTE_BEGIN
from scaling_optuna.dashboard import NOTE_END
from scaling_optuna.dashboard import merge_note
from scaling_optuna.dashboard import publish_report
from scaling_optuna.report import build_report
from scaling_optuna.report import write_report
from scaling_optuna.spec import suggest_params as suggest
from tests import forked_cli
from tests.browser import render
from tests.conftest import TINY_DIGITS
from tests.conftest import run_cli
from tests.conftest import tmpfs
from tests.conftest import write_spec

# The known laws the synthetic store follows (the first size sits on the plateau).
SIZES = (40, 80, 160, 320, 640, 1100)
RUNNING_SIZE = 1151  # has a running trial only: skipped with a warning
PLATEAU_ERROR = 0.92
TUNED = (2.0, -0.5)  # test error α·m^β of the best trial
UNTUNED = (4.0, -0.4)  # the seed's default model
LOSS = (6.0, -0.6)
PARAMS = (1000.0, 0.3)
# Small deterministic multiplicative noise, so the fits are realistic but checkable.
NOISE = {40: 1.0, 80: 1.02, 160: 0.98, 320: 1.01, 640: 0.99, 1100: 1.0}
LUCKY_SIZE = 320  # a trial with a far lower test error but a worse validation loss


def law(coef: tuple[float, float], m: float) -> float:
    return coef[0] * m ** coef[1]


def _complete(study: optuna.Study, spec, val_loss: float, attrs: dict, params: dict | None = None) -> None:
    distributions = dict(spec.search_space)
    params = params or {k: (d.low if hasattr(d, "low") else d.choices[0]) for k, d in distributions.items()}
    study.add_trial(
        optuna.trial.create_trial(
            params=params, distributions=distributions, value=val_loss, user_attrs=attrs, state=TrialState.COMPLETE
        )
    )


def _metrics(m: int, error: float, scale: float = 1.0) -> dict:
    return {
        "test_error": error,
        "val_error": error * 1.1,
        "test_loss": law(LOSS, m) * scale,
        "n_params": int(law(PARAMS, m) * scale),
        "epochs_run": 3,
        "best_epoch": 2,
        "wall_time_s": 0.1,
        "stopped_reason": "max_epochs",
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """An experiment whose trials follow the known laws; returns (spec path, storage URL)."""
    folder = tmp_path_factory.mktemp("synthetic")
    spec_path = write_spec(
        folder, TINY_DIGITS.format(name="syn", trials=6, counts=list(SIZES) + [RUNNING_SIZE], epochs=3), "syn.toml"
    )
    url = f"sqlite:///{folder / 'store.db'}"
    spec = scaling_optuna.load_spec(spec_path)
    exp = scaling_optuna.create_experiment(spec, url)
    for m in SIZES:
        study = exp.studies[m]
        noise = NOISE[m]
        tuned = PLATEAU_ERROR if m == SIZES[0] else law(TUNED, m) * noise
        untuned = PLATEAU_ERROR * 1.01 if m == SIZES[0] else law(UNTUNED, m) * noise
        # The enqueued untuned baseline, trained as a worker would (ask pops it).
        trial = study.ask()
        suggest(trial, spec.search_space)
        for key, value in _metrics(m, untuned, 1.3).items():
            trial.set_user_attr(key, value)
        study.tell(trial, 3.0 * untuned)
        # The best trial by validation loss, two near-best ones, one poor one.
        _complete(study, spec, 3.0 * tuned, _metrics(m, tuned))
        _complete(study, spec, 3.0 * tuned * 1.08, _metrics(m, tuned * 1.06, 1.02))
        _complete(study, spec, 3.0 * tuned * 1.15, _metrics(m, tuned * 0.97, 0.97))
        _complete(study, spec, 3.0, _metrics(m, 0.9, 1.5))
        if m == LUCKY_SIZE:
            _complete(study, spec, 3.0 * tuned * 1.5, _metrics(m, tuned / 10))
        study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={"stopped_reason": "pruned"}))
        if m == SIZES[-1]:
            study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    exp.studies[RUNNING_SIZE].ask()  # a worker is on it right now
    return spec_path, url


@pytest.fixture(scope="module")
def synthetic_report(synthetic):
    spec_path, url = synthetic
    exp = scaling_optuna.load_experiment(spec_path, storage=url)
    return exp, build_report(exp, target=0.03)


def test_report_recovers_the_laws_the_trials_follow(synthetic_report):
    exp, report = synthetic_report
    data = report.to_dict()
    fits = data["fits"]

    tuned = fits["test_error"]["tuned"]
    assert tuned["beta"] == pytest.approx(TUNED[1], abs=0.05)
    lo, hi = tuned["intervals"]["beta"]
    assert lo <= TUNED[1] <= hi
    assert tuned["sizes_excluded"] == [SIZES[0]]  # the plateau is not fitted
    untuned = fits["test_error"]["baseline"]["fit"]
    assert untuned["beta"] == pytest.approx(UNTUNED[1], abs=0.05)
    assert fits["test_error"]["baseline"]["sizes"] == list(SIZES)
    assert fits["test_loss"]["tuned"]["beta"] == pytest.approx(LOSS[1], abs=0.05)
    assert fits["n_params"]["tuned"]["beta"] == pytest.approx(PARAMS[1], abs=0.02)
    assert fits["n_params"]["tuned"]["form"] == "power"
    assert "fitted points" in fits["test_error"]["intervals"]
    assert tuned["interval_method"].startswith("residual-bootstrap")

    # 2× and 10× the largest fitted size, close to the truth, inside their band.
    preds = fits["test_error"]["predictions"]
    assert [p["size"] for p in preds] == [2 * SIZES[-1], 10 * SIZES[-1]]
    for p in preds:
        assert p["lower"] <= p["mean"] <= p["upper"]
        assert p["mean"] == pytest.approx(law(TUNED, p["size"]), rel=0.15)

    # Target 0.03: the truth is (2/0.03)^2 ≈ 4444 examples.
    need = data["target"]["tuned"]
    assert need["reachable"] and need["size"] == pytest.approx((TUNED[0] / 0.03) ** 2, rel=0.15)
    assert need["lower"] <= need["size"] <= (math.inf if need["upper"] == "inf" else need["upper"])
    untuned_need = data["target"]["baseline"]["size"]
    assert untuned_need == "inf" or untuned_need > need["size"]  # untuned needs more data, or never gets there

    # Backtest without the largest one and two sizes: exact-law data extrapolates well from four points; from
    # three (80, 160, 320) nothing tells a power law from a saturating one, and the fit, which leans then on the
    # families real three-point curves favour, still beats the last point and the plain least-squares fit.
    backtest = fits["test_error"]["backtest"]
    assert [b["held_out"] for b in backtest] == [1, 2]
    assert [p["size"] for p in backtest[1]["points"]] == [640, 1100]
    for b in backtest:
        for p in b["points"]:
            if b["held_out"] == 1:
                assert abs(p["relative_error"]) < 0.1
            else:
                assert abs(p["relative_error"]) < min(abs(p["naive_relative_error"]), abs(p["least_squares_relative_error"]))
            assert p["naive_relative_error"] is not None
            assert p["least_squares_relative_error"] is not None  # the baseline a user would fit by hand
            # a measured value is judged by the band for a measurement: wider than the curve's band
            assert p["lower"] < p["curve_lower"] <= p["predicted"] <= p["curve_upper"] < p["upper"]
    assert exp.studies[SIZES[-1]].user_attrs["test_size"] == 359  # the digits test split the spec sets aside
    assert "359 test examples" in fits["test_error"]["backtest_band"]
    assert fits["test_loss"]["backtest_band"].startswith("the band for one measurement")
    assert "test examples" not in fits["test_loss"]["backtest_band"]  # no binomial noise for a loss
    assert "mean over many training runs" in fits["test_error"]["prediction_band"]
    for text in (report.to_text(), report.to_markdown()):
        assert "the 2×/10× bands are the curve's band (where the mean over many training runs lies)" in text
        assert "the backtest's bands are the band for one measurement" in text and "inside the band for a measurement" in text
    assert "prediction (band for a measurement)" in report.to_html() and "359 test examples" in report.to_html()
    assert not any("test-set size" in w for w in data["warnings"])

    # The report says how it predicted and how its band was calibrated, in the text, the note and the page.
    assert tuned["method"] and tuned["band_method"] and abs(sum(tuned["family_weights"].values()) - 1) < 1e-6
    for text in (report.to_text(), report.to_markdown(), report.to_html()):
        assert "predictions: " in text and "band: " in text and "least-squares" in text
    assert "L(m) = " in report.to_text() and "N(m) = " in report.to_text()  # each metric's own symbol

    json.dumps(data, allow_nan=False)


def test_a_store_without_the_test_set_size_says_what_its_backtest_band_leaves_out(synthetic, tmp_path):
    spec_path, url = synthetic
    old = tmp_path / "old.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(old) as db:
        source.backup(db)  # a consistent copy, whatever the journal mode
        # a store created before studies recorded their test-set size
        db.execute("DELETE FROM study_user_attributes WHERE key = 'test_size'")
    data = build_report(str(spec_path), f"sqlite:///{old}", n_bootstrap=200).to_dict()
    assert any("do not record the test-set size" in w and "scaling-optuna create" in w for w in data["warnings"])
    band = data["fits"]["test_error"]["backtest_band"]
    assert "does not record the test-set size" in band and "binomial noise is left out" in band
    for backtest in data["fits"]["test_error"]["backtest"]:
        assert all(p["lower"] <= p["curve_lower"] and p["upper"] >= p["curve_upper"] for p in backtest["points"])
    # re-running create records it
    exp = scaling_optuna.create_experiment(scaling_optuna.load_spec(spec_path), f"sqlite:///{old}")
    assert all(study.user_attrs["test_size"] == 359 for study in exp.studies.values())


def test_bootstrap_over_trials_resamples_the_near_best_trials_of_each_size(synthetic_report):
    exp, by_points = synthetic_report
    by_trials = build_report(exp, target=0.03, bootstrap="trials")
    fit = by_trials.curves["test_error"].fit
    assert fit.interval_method.startswith("group-bootstrap")
    assert "near-best trials" in by_trials.curves["test_error"].intervals_from
    assert fit.beta == pytest.approx(by_points.curves["test_error"].fit.beta)  # same point estimate
    assert fit.intervals["beta"] != by_points.curves["test_error"].fit.intervals["beta"]
    lo, hi = fit.intervals["beta"]
    assert lo < TUNED[1] < hi
    with pytest.raises(ValueError, match="bootstrap must be one of points, trials"):
        build_report(exp, bootstrap="auto")


def test_best_trial_is_chosen_by_validation_loss_never_by_test_error(synthetic_report):
    _, report = synthetic_report
    row = next(r for r in report.to_dict()["sizes"] if r["size"] == LUCKY_SIZE)
    assert row["best"]["test_error"] == pytest.approx(law(TUNED, LUCKY_SIZE) * NOISE[LUCKY_SIZE])
    lucky = law(TUNED, LUCKY_SIZE) * NOISE[LUCKY_SIZE] / 10
    assert min(r["test_error"] for r in row["near_best"]) > lucky


def test_sizes_without_a_finished_trial_are_skipped_with_a_warning_and_counts_are_shown(synthetic_report):
    _, report = synthetic_report
    data = report.to_dict()
    running = next(r for r in data["sizes"] if r["size"] == RUNNING_SIZE)
    assert running["best"] is None and running["trials"]["running"] == 1
    assert any(f"size {RUNNING_SIZE}: no finished trial yet" in w for w in data["warnings"])
    assert RUNNING_SIZE not in data["fits"]["test_error"]["sizes"]
    largest = next(r for r in data["sizes"] if r["size"] == SIZES[-1])
    assert largest["trials"]["complete"] == 5 and largest["trials"]["pruned"] == 1 and largest["trials"]["failed"] == 1

    text = report.to_text()
    header = text.splitlines()[2]
    for column in ("size", "best", "val loss", "test loss", "test err", "params", "complete", "pruned", "failed"):
        assert column in header
    line = next(l for l in text.splitlines() if l.strip().startswith(str(SIZES[-1])))
    assert line.split()[-4:] == ["5", "1", "1", "0"]
    assert "2× the largest size (2,200)" in text and "10× the largest size (11,000)" in text
    # the headline says how wide each band is and why
    assert re.search(r"With 10× the data \(11,000 examples\) it would be about [0-9.]+ \([0-9.]+–[0-9.]+, ×[0-9.]+ between edges\): 10× beyond the data", text)
    assert "per-size tuning changes the exponent from β=-0.4" in text
    assert "backtest, fitted on sizes ≤ 640 without the largest 1" in text
    assert "To reach test error 0.03 the tuned model needs about" in text


def test_to_dict_is_the_content_of_report_json_and_a_spec_path_builds_the_same_report(synthetic, synthetic_report, tmp_path):
    spec_path, url = synthetic
    exp, report = synthetic_report
    json_path, html_path = write_report(report, tmp_path / "out")
    written = json.loads(json_path.read_text())
    from_path = scaling_optuna.build_report(str(spec_path), url, target=0.03).to_dict()
    for d in (written, from_path):
        d.pop("generated_at")
    assert from_path == written
    assert html_path.stat().st_size > 1_000_000  # plotly.js is inside
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["report.html", "report.json"]  # no write-test file left


def test_best_prints_the_reports_table_with_the_hyperparameters(synthetic, synthetic_report):
    spec_path, url = synthetic
    _, report = synthetic_report
    result = run_cli("best", str(spec_path), "--storage", url, timeout=120)
    assert result.returncode == 0, result.stderr
    best_lines = result.stdout.strip("\n").splitlines()
    text_lines = report.to_text().splitlines()[2 : 3 + len(report.rows)]
    assert best_lines[0] == text_lines[0] + "  hyperparameters"
    for line, text in zip(best_lines[1:], text_lines[1:]):
        assert line.startswith(text)
    row = next(r for r in report.rows if r.size == SIZES[-1])
    assert best_lines[len(SIZES)].endswith(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.best.params.items()))
    assert best_lines[-1].split() == [str(RUNNING_SIZE)] + ["-"] * 6 + ["0", "0", "0", "1"]


# The writable control builds and publishes a whole report (over 10 s on a busy machine).
@pytest.mark.parametrize("out", ["/proc/nope", "{tmp}/file", "{tmp}/file/sub", pytest.param("{tmp}/writable", marks=pytest.mark.slow)])
def test_a_report_that_cannot_write_its_folder_fails_before_writing_to_the_store(synthetic, tmp_path, out):
    if out.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    spec_path, url = synthetic
    store = tmp_path / "store.db"
    with sqlite3.connect(url.split(":///", 1)[1]) as source, sqlite3.connect(store) as copy:
        source.backup(copy)  # a copy of the shared store, so that what this test writes stays here
    url = f"sqlite:///{store}"
    (tmp_path / "file").write_text("not a folder")
    before = _study_attrs(url)

    result = run_cli("report", str(spec_path), "--storage", url, "--out", out.format(tmp=tmp_path), timeout=120)
    if out.endswith("writable"):
        # The control: a report that can write its folder publishes, and the snapshot sees it.
        assert result.returncode == 0, result.stderr
        assert any(k.startswith("dashboard:") for k in _study_attrs(url)[f"syn-n{RUNNING_SIZE:07d}"][1])
        return
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--out" in lines[0], result.stderr
    assert _study_attrs(url) == before  # no graph object, no note


def test_a_report_on_a_full_disk_writes_and_publishes_nothing(synthetic, tmp_path):
    """The folder takes the write test and report.json but not report.html: nothing is published, the old report stays."""
    spec_path, url = synthetic
    store = tmp_path / "store.db"
    with sqlite3.connect(url.split(":///", 1)[1]) as source, sqlite3.connect(store) as copy:
        source.backup(copy)
    url = f"sqlite:///{store}"
    before = _study_attrs(url)
    out = tmp_path / "small"
    out.mkdir()
    with tmpfs(out, "256k"):
        (out / "report.json").write_text("the previous report")
        result = run_cli("report", str(spec_path), "--storage", url, "--out", str(out), timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "No space left on device" in errors[0] and "--out" in errors[0], result.stderr
        assert _study_attrs(url) == before  # no graph object, no note
        assert [p.name for p in out.iterdir()] == ["report.json"]  # no temporary file left behind
        assert (out / "report.json").read_text() == "the previous report"


def test_a_report_file_that_is_a_symlink_is_replaced_not_followed(synthetic_report, tmp_path):
    _, report = synthetic_report
    out = tmp_path / "out"
    out.mkdir()
    victims = {name: tmp_path / f"someone-else-{name}" for name in ("report.json", "report.html")}
    for name, victim in victims.items():
        victim.write_text("someone else's file")
        (out / name).symlink_to(victim)
    json_path, html_path = write_report(report, out)
    for name, victim in victims.items():
        assert victim.read_text() == "someone else's file"
        assert not (out / name).is_symlink()
    assert "fits" in json.loads(json_path.read_text()) and "<html" in html_path.read_text()[:1000]
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]


def _study_attrs(url: str) -> dict[str, tuple[dict, dict]]:
    """Every study's user and system attributes (optuna-dashboard keeps graph objects and notes in the latter)."""
    storage = optuna.storages.RDBStorage(url)
    try:
        return {s.study_name: (s.user_attrs, s.system_attrs) for s in storage.get_all_studies()}
    finally:
        storage.remove_session()
        storage.engine.dispose()


@pytest.mark.slow
def test_fewer_than_three_usable_sizes_is_a_message_not_a_crash(tmp_path):
    spec_path = write_spec(tmp_path, TINY_DIGITS.format(name="two", trials=2, counts=[60, 240, 960], epochs=3))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    spec = scaling_optuna.load_spec(spec_path)
    exp = scaling_optuna.create_experiment(spec, url)
    for m in (60, 240):
        _complete(exp.studies[m], spec, 1.0 / m**0.5, _metrics(m, law(TUNED, m)))
    report = build_report(exp, target=0.05)
    data = report.to_dict()
    assert data["fits"]["test_error"]["tuned"] is None
    assert "need finished trials at 3 or more sizes" in data["fits"]["test_error"]["message"]
    assert "have 2 (60, 240)" in data["fits"]["test_error"]["message"]
    assert "no fit yet" in data["target"]["message"]
    text = report.to_text()
    assert "need finished trials at 3 or more sizes" in text
    write_report(report, tmp_path / "out")  # the page is written with the points alone

    result = run_cli("report", str(spec_path), "--storage", url, "--out", str(tmp_path / "cli"), "--no-publish")
    assert result.returncode == 0, result.stderr
    assert "need finished trials at 3 or more sizes" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_curve_that_rises_with_data_is_flagged_not_extrapolated(tmp_path):
    counts = [60, 120, 240, 480, 960]
    spec_path = write_spec(tmp_path, TINY_DIGITS.format(name="up", trials=2, counts=counts, epochs=3))
    spec = scaling_optuna.load_spec(spec_path)
    exp = scaling_optuna.create_experiment(spec, f"sqlite:///{tmp_path / 'store.db'}")
    for m, error in zip(counts, (0.1, 0.15, 0.2, 0.3, 0.4)):
        _complete(exp.studies[m], spec, 1.0, _metrics(m, error))
    data = build_report(exp, target=0.05, n_bootstrap=0).to_dict()
    assert any("test error grows with the training-set size" in w for w in data["warnings"])
    assert "does not fall with more data" in data["target"]["message"]
    for backtest in data["fits"]["test_error"]["backtest"]:
        assert all(p["inside_band"] is None for p in backtest["points"])  # no bootstrap, no band


@pytest.mark.parametrize(
    "sizes, values, message",
    [
        ([100, 200, 400], [0.5, 0.4], "different lengths"),
        ([100, 0, 400], [0.5, 0.4, 0.3], "sizes must be positive"),
        ([100, -200, 400], [0.5, 0.4, 0.3], "sizes must be positive"),
        ([100, 200, 400], [0.5, float("nan"), 0.3], "values must be positive finite"),
        ([100, 200], [0.5, 0.4], "need at least 3"),
    ],
)
def test_bad_curves_are_one_clear_error_from_python_and_the_cli(sizes, values, message):
    with pytest.raises(ValueError, match=message):
        scaling_optuna.fit_scaling_law(sizes, values)
    result = run_cli(
        "fit", "--sizes", ",".join(map(str, sizes)), "--values", ",".join(map(str, values)), timeout=120
    )
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_fit_command_answers_for_a_good_curve():
    result = run_cli("fit", "--sizes", "100,200,400,800,1600", "--values", "0.5,0.36,0.27,0.2,0.15", "--target", "0.1", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2× the largest size (3,200)" in result.stdout
    assert "target 0.1 is reached at about" in result.stdout


@pytest.mark.parametrize("target, message", [("abc", "not a number"), ("nan", "strictly between 0 and 1"), ("5", "strictly between 0 and 1"), ("0", "strictly between 0 and 1")])
def test_a_bad_target_is_one_clear_error(synthetic, synthetic_report, target, message, tmp_path):
    spec_path, url = synthetic
    exp, _ = synthetic_report
    result = run_cli("report", str(spec_path), "--storage", url, "--target", target, "--out", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "report.json").exists()
    with pytest.raises(ValueError, match=message if target != "abc" else "must be a test error such as 0.05"):
        build_report(exp, target=target if target == "abc" else float(target))


def test_merge_note_keeps_the_users_text_and_replaces_only_its_section():
    first = merge_note("my own notes", "report 1")
    assert first.startswith("my own notes") and "report 1" in first
    second = merge_note(first + "\n\nmore of mine", "report 2")
    assert "report 1" not in second and "report 2" in second
    assert second.count(NOTE_BEGIN) == 1 and second.count(NOTE_END) == 1
    assert "my own notes" in second and "more of mine" in second
    assert merge_note("", "only") == f"{NOTE_BEGIN}\n\nonly\n\n{NOTE_END}"


@pytest.mark.slow
def test_real_run_then_report_publishes_to_the_dashboard_and_serves_it(tiny_digits, tmp_path):
    spec = tiny_digits(name="real", trials=2, counts=(60, 120, 240, 480), epochs=3)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = run_cli("run", str(spec), "--storage", url, "--workers", "2")
    assert result.returncode == 0, result.stderr
    study_name = "real-n0000480"
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    optuna_dashboard.save_note(optuna.load_study(study_name=study_name, storage=url), "note by a user")

    out = tmp_path / "report"
    for _ in range(2):  # a second run replaces the published plots and note section
        result = run_cli("report", str(spec), "--storage", url, "--out", str(out), "--target", "0.1")
        assert result.returncode == 0, result.stderr
    stdout = result.stdout
    assert re.search(r"^\s+480\s+\d+\s", stdout, re.M)
    assert "Test error:" in stdout and "Parameters of the best model:" in stdout
    assert f"on study '{study_name}'" in stdout
    data = json.loads((out / "report.json").read_text())
    assert [r["size"] for r in data["sizes"]] == [60, 120, 240, 480]
    assert all(r["best"] is not None and 0 <= r["best"]["test_error"] <= 1 for r in data["sizes"])
    assert all(r["baseline"] is not None for r in data["sizes"])  # the enqueued default model ran first
    assert data["dashboard"]["published"] and data["dashboard"]["study"] == study_name
    page = (out / "report.html").read_text()
    assert not re.search(r"<script[^>]*\ssrc=", page), "plotly.js must be inline, not fetched"
    assert "plotly.js v" in page[:200_000]

    study = optuna.load_study(study_name=study_name, storage=url)
    storage = optuna.storages.RDBStorage(url)
    system_attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(study_name))
    keys = [k for k in system_attrs if k.startswith("dashboard:plot_data:")]
    assert {k.split(":")[2] for k in keys} == {"scaling-law-test-error", "scaling-law-test-loss"}
    note = optuna_dashboard.get_note(study)
    assert "note by a user" in note and note.count(NOTE_BEGIN) == 1 and "Scaling law of experiment" in note

    with _dashboard(url) as base:
        studies = _get_json(f"{base}/api/studies")["study_summaries"]
        assert {s["study_name"] for s in studies} == {f"real-n{m:07d}" for m in (60, 120, 240, 480)}
        study_id = next(s["study_id"] for s in studies if s["study_name"] == study_name)
        detail = _get_json(f"{base}/api/studies/{study_id}")
        graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
        assert set(graphs) == {"scaling-law-test-error", "scaling-law-test-loss"}
        figure = graphs["scaling-law-test-error"]
        assert figure["layout"]["xaxis"]["type"] == "log"
        assert any(t.get("name", "").startswith("best trial per size") for t in figure["data"])
        assert "Scaling law of experiment" in detail["note"]["body"]


def test_dashboard_on_a_missing_store_is_one_clear_error(tmp_path):
    result = run_cli("dashboard", "--storage", f"sqlite:///{tmp_path / 'none.db'}", "--port", "0", timeout=60)
    assert result.returncode == 2
    assert "no store at" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_publish_reports_a_refused_write_instead_of_raising(synthetic, synthetic_report):
    spec_path, url = synthetic
    exp, _ = synthetic_report
    # The same store opened read-only (SQLite's mode=ro refuses writes even to root).
    read_only = optuna.storages.RDBStorage(f"sqlite:///file:{url.split(':///', 1)[1]}?mode=ro&uri=true")
    exp_ro = scaling_optuna.Experiment(exp.spec, read_only, url, exp.sizes)
    report = build_report(exp_ro, n_bootstrap=100)
    info = publish_report(exp_ro, report)
    assert info["published"] is False and "readonly" in info["error"].replace("-", "").lower()
    report.dashboard = info
    assert "Not published to optuna-dashboard: " in report.to_text()


@pytest.mark.slow
def test_report_html_renders_in_a_headless_browser(synthetic_report, tmp_path):
    _, report = synthetic_report
    _, html_path = write_report(report, tmp_path)
    shot = tmp_path / "report.png"
    page = render(html_path, screenshot=shot)
    plots = page.dom.split('class="plot-container plotly"')[1:]
    assert page.count("js-plotly-plot") == 3 and page.count("main-svg") >= 3 * 3
    assert all(len(re.findall(r'class="trace scatter', plot)) >= 4 for plot in plots), "trials, fit, band, best points at least"
    assert page.count("point") > 40 and len(page.text) > 500
    assert page.errors == [], page.errors
    assert page.remote_requests == [], "the page must work offline"
    assert shot.stat().st_size > 50_000  # a real picture, not a blank page


def test_the_report_package_imports_one_way_and_only_curves_calls_the_fit():
    package = Path(scaling_optuna.__file__).parent / "report"
    imports: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        found = imports.setdefault(path.stem, set())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.module is None:
                continue
            if node.module.startswith("scaling_optuna.report."):
                module = node.module.rsplit(".", 1)[1]
                found.add(module)
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {module}"
            fit_module = node.module == "scaling_optuna.fit" or node.module.split(".")[:2] == ["scaling_optuna", "fit"]
            if fit_module and path.stem != "curves":
                assert _under_type_checking(tree, node), f"{path.name} imports the fit; only curves.py may"
            assert not node.module.startswith(("scaling_optuna.cli", "scaling_optuna.dashboard")), path.name
    imports.pop("__init__")  # the package's lazy table names every module

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(m == goal or (m not in seen and reaches(m, goal, seen | {m})) for m in imports.get(start, ()))

    cycles = [m for m in imports if reaches(m, m)]
    assert cycles == [], f"import cycle through {cycles}"


def _under_type_checking(tree: ast.Module, node: ast.ImportFrom) -> bool:
    return any(
        isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING" and node in ast.walk(block)
        for block in tree.body
    )


# ---------------------------------------------------------------------------
# Helpers: optuna-dashboard as a subprocess
# ---------------------------------------------------------------------------


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


class _dashboard:
    """`scaling-optuna dashboard` on a free port; yields its base URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> str:
        self.proc = forked_cli.start(["dashboard", "--storage", self.url, "--port", "0"])
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"dashboard did not start: {line!r} {self.proc.stderr.read()}")
        base = f"http://127.0.0.1:{match.group(1)}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=1):
                    return base
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


