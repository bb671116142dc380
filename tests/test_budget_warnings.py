"""Warnings that save a user's budget: untuned default winning, undertrained sizes, random search.

Each check runs on a real SQLite store whose trials are told to Optuna the way
a worker tells them, with the user attributes a worker writes; every warning is
checked both where it must appear and where it must not.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

import scaling_optuna
from scaling_optuna.experiment import Experiment
from scaling_optuna.experiment import load_experiment
from scaling_optuna.experiment import set_budget
from scaling_optuna.report import budget_warnings
from scaling_optuna.report import build_report
from scaling_optuna.report import write_report
from scaling_optuna.report.budget import startup_trials
from scaling_optuna.spec import ComponentSpec
from scaling_optuna.spec import suggest_params
from tests.conftest import TINY_DIGITS
from tests.conftest import run_cli
from tests.conftest import write_spec

SIZES = (60, 120, 240, 480)
MAX_EPOCHS = 4
EARLY = "early_stopped: no improvement for 2 epochs"
RANDOM = 'name = "RandomSampler"\nseed = 1'


def _spec(folder, *, trials: int = 6, sampler: str = RANDOM, counts=SIZES, epochs: int = MAX_EPOCHS):
    text = TINY_DIGITS.format(name="budget", trials=trials, counts=list(counts), epochs=epochs)
    assert RANDOM in text
    return write_spec(folder, text.replace(RANDOM, sampler), "budget.toml")


def _tell(exp, size: int, val_loss: float, stopped_reason: str = EARLY, epochs: int | None = None, best_epoch: int | None = None) -> int:
    """Train nothing, but finish the size's next queued trial as a worker would record it."""
    study = exp.studies[size]
    trial = study.ask()  # the first one asked is the enqueued untuned baseline
    suggest_params(trial, exp.spec.search_space)
    if epochs is None:
        epochs = MAX_EPOCHS if stopped_reason == "max_epochs" else 3
    for key, value in {
        "test_error": val_loss / 3, "test_loss": val_loss, "val_error": val_loss / 3, "n_params": 1000,
        "epochs_run": epochs, "best_epoch": epochs - 1 if best_epoch is None else best_epoch, "wall_time_s": 0.1, "stopped_reason": stopped_reason,
    }.items():
        trial.set_user_attr(key, value)
    study.tell(trial, val_loss)
    return trial.number


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One experiment of four sizes, created once; each test gets a copy of its store."""
    folder = tmp_path_factory.mktemp("budget")
    spec = _spec(folder)
    scaling_optuna.create_experiment(spec, f"sqlite:///{folder / 'store.db'}")
    return spec, folder / "store.db"


@pytest.fixture
def experiment(template, tmp_path):
    """A fresh copy of the template experiment; returns a factory taking its sampler and budget."""

    def make(sampler: ComponentSpec | None = None, trials: int | None = None) -> Experiment:
        spec, store = template
        # SQLite's backup reads through the write-ahead log, which a file copy would miss.
        with sqlite3.connect(store) as source, sqlite3.connect(tmp_path / "store.db") as copy:
            source.backup(copy)
        exp = load_experiment(spec, f"sqlite:///{tmp_path / 'store.db'}")
        if trials is not None:
            for study in exp.studies.values():
                set_budget(exp.storage, study, trials)
        if sampler is not None:
            exp = Experiment(dataclasses.replace(exp.spec, sampler=sampler), exp.storage, exp.storage_url, exp.sizes)
        return exp

    return make


def _untuned(warnings: list[str]) -> list[str]:
    return [w for w in warnings if "did not beat the untuned default" in w]


@pytest.mark.parametrize(
    "untuned_wins, expected",
    [
        ((), None),
        ((60,), None),  # one of four: tuning paid at most sizes
        ((60, 240), "at 2 of 4 sizes (60, 240)"),
        (SIZES, "at 4 of 4 sizes (60, 120, 240, 480)"),
    ],
)
def test_untuned_default_best_at_half_the_sizes_or_more_is_warned(experiment, untuned_wins, expected):
    exp = experiment()
    for size in SIZES:
        baseline_loss = 0.5 if size in untuned_wins else 0.9
        _tell(exp, size, baseline_loss)  # the untuned baseline comes first
        _tell(exp, size, 0.7)
        _tell(exp, size, 1.2)
    found = _untuned(budget_warnings(exp))
    if expected is None:
        assert found == []
    else:
        (message,) = found
        assert expected in message and "trials_per_size" in message


def test_a_size_where_only_the_untuned_default_finished_is_not_judged(experiment):
    exp = experiment()
    _tell(exp, 60, 0.5)  # the baseline alone: nothing was tuned yet at 60
    _tell(exp, 120, 0.5)
    _tell(exp, 120, 0.9)  # the baseline beat the one tuned trial at 120
    for size in (240, 480):
        _tell(exp, size, 0.9)
        _tell(exp, size, 0.7)
    assert _untuned(budget_warnings(exp)) == []  # 1 of 3 judged sizes, not 2 of 4
    _tell(exp, 240, 0.2)  # a tuned trial wins 240 again: still 1 of 3
    assert _untuned(budget_warnings(exp)) == []
    _tell(exp, 60, 0.9)  # now 60 is judged, and its baseline wins: 2 of 4
    (message,) = _untuned(budget_warnings(exp))
    assert "at 2 of 4 sizes (60, 120)" in message


def test_a_best_trial_still_improving_at_max_epochs_is_warned_as_undertrained(experiment):
    exp = experiment()
    for size in SIZES:
        _tell(exp, size, 0.9)
        _tell(exp, size, 0.5, stopped_reason="max_epochs" if size in (120, 480) else EARLY)
        # A trial that ran every epoch but is not the best says nothing about the size.
        _tell(exp, size, 0.8, stopped_reason="max_epochs")
    (message,) = [w for w in budget_warnings(exp) if "max_epochs" in w]
    assert "sizes 120, 480 was still improving when it reached max_epochs (4)" in message
    assert "60" not in message and "raise [trainer] max_epochs" in message


def test_no_undertrained_warning_when_every_best_trial_stopped_early(experiment):
    exp = experiment()
    for size in SIZES:
        _tell(exp, size, 0.9, stopped_reason="max_epochs")
        if size == 240:
            # Every epoch run, but the best one long before the last (patience 2): the curve had flattened.
            _tell(exp, size, 0.5, stopped_reason="max_epochs", best_epoch=2)
        else:
            # Stopping early in the very last epoch is stopping early.
            _tell(exp, size, 0.5, epochs=MAX_EPOCHS if size == 480 else 3)
    assert [w for w in budget_warnings(exp) if "max_epochs" in w] == []


TPE = ComponentSpec("TPESampler")


@pytest.mark.parametrize(
    "sampler, trials, expected",
    [
        (TPE, 4, "every size has a budget of 4 trials, not above TPESampler's 10 startup trials"),
        (TPE, 10, "every size has a budget of 10 trials, not above TPESampler's 10 startup trials"),
        (TPE, 11, None),
        (ComponentSpec("TPESampler", {"n_startup_trials": 3}), 4, None),
        (ComponentSpec("TPESampler", {"n_startup_trials": 6}), 6, "not above TPESampler's 6 startup trials"),
        (ComponentSpec("GPSampler"), 8, "not above GPSampler's 10 startup trials"),
        (ComponentSpec("GPSampler"), 11, None),
        (ComponentSpec("RandomSampler"), 2, None),  # random search on purpose
    ],
)
def test_a_budget_within_the_samplers_startup_trials_is_warned_as_random_search(experiment, sampler, trials, expected):
    found = [w for w in budget_warnings(experiment(sampler, trials)) if "random search" in w]
    if expected is None:
        assert found == []
    else:
        (message,) = found
        assert expected in message


def test_the_random_search_warning_reads_the_spec_and_the_budget_the_store_has(tmp_path):
    spec = _spec(tmp_path, trials=12, sampler='name = "TPESampler"')
    exp = scaling_optuna.create_experiment(spec, f"sqlite:///{tmp_path / 'store.db'}")
    assert budget_warnings(exp) == []
    # A worker started with --trials 3 for the two largest sizes only sets their budget.
    for size in (240, 480):
        set_budget(exp.storage, exp.studies[size], 3)
    exp = load_experiment(spec, exp.storage_url)
    (message,) = budget_warnings(exp)
    assert message.startswith("sizes 240, 480 have a budget of 3 trials, not above TPESampler's 10")


def test_startup_trials_follow_the_spec_then_the_optuna_default():
    assert startup_trials(ComponentSpec("TPESampler")) == 10
    assert startup_trials(ComponentSpec("TPESampler", {"n_startup_trials": 4})) == 4
    assert startup_trials(ComponentSpec("CmaEsSampler")) == 1
    assert startup_trials(ComponentSpec("RandomSampler")) is None
    assert startup_trials(ComponentSpec("GridSampler", {"search_space": {"lr": [0.1]}})) is None


def test_the_report_shows_the_warnings_in_its_text_json_and_page(experiment, tmp_path):
    exp = experiment(TPE, trials=3)
    for size in SIZES:
        _tell(exp, size, 0.4, stopped_reason="max_epochs")  # the untuned default wins every size
        _tell(exp, size, 0.6)
    report = build_report(exp, n_bootstrap=20)
    expected = ["did not beat the untuned default", "still improving when it reached max_epochs", "random search"]
    for phrase in expected:
        assert sum(phrase in w for w in report.warnings) == 1, report.warnings
        assert phrase in report.to_text().split("Warnings:", 1)[1]
    json_path, html_path = write_report(report, tmp_path / "report")
    saved = json.loads(json_path.read_text())["warnings"]
    page = html_path.read_text().split("<h2>Warnings</h2>", 1)[1]
    for phrase in expected:
        assert any(phrase in w for w in saved)
        assert phrase in page


@pytest.mark.slow
def test_run_prints_the_warnings_after_the_best_trials(tmp_path):
    spec = _spec(tmp_path, trials=2, sampler='name = "TPESampler"', counts=(60,), epochs=2)
    result = run_cli("run", str(spec), "--storage", f"sqlite:///{tmp_path / 'run.db'}", "--threads", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    warning = out.index("warning: every size has a budget of 2 trials, not above TPESampler's 10 startup trials")
    assert out.index("hyperparameters") < warning  # after the best-per-size table
