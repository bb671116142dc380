"""The experiment's studies on their own: budgets as queued trials, counts, foreign studies, paths."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import scaling_optuna
from scaling_optuna.errors import ExperimentMismatchError
from scaling_optuna.experiment import METRIC_NAME
from scaling_optuna.experiment import create_experiment
from scaling_optuna.experiment import load_experiment
from scaling_optuna.experiment import set_budget
from scaling_optuna.experiment import trial_kind
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._shared import HANDED_BACK
from scaling_optuna.storages._shared import LOST
from scaling_optuna.storages._shared import end_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_create_takes_a_path_queues_the_budget_and_names_the_metric(tiny_digits, tmp_path):
    path = tiny_digits(trials=3, counts=(60, 120))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    exp = create_experiment(path, url)  # a path, like load_experiment
    for size in exp.sizes:
        study = exp.studies[size]
        assert study.metric_names == [METRIC_NAME]
        assert [t.state for t in study.trials] == [TrialState.WAITING] * 3
        assert study.trials[0].user_attrs == {"baseline": True}
        assert exp.budget(size) == 3
    again = create_experiment(path, url)  # idempotent
    assert [len(again.studies[s].trials) for s in again.sizes] == [3, 3]
    assert load_experiment(path, url).sizes == [60, 120]
    # Optuna's own table names the objective too (optuna-dashboard reads the same metric names).
    study = exp.studies[60]
    trial = study.ask()
    study.tell(trial, 0.5)
    frame = optuna.load_study(study_name=study.study_name, storage=url).trials_dataframe()
    assert frame.loc[frame["state"] == "COMPLETE", "value_val_loss"].tolist() == [0.5]


def test_raising_the_budget_queues_more_and_lowering_it_withdraws_fresh_trials_only(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    exp = create_experiment(tiny_digits(trials=2, counts=(60,)), url)
    storage, study = exp.storage, exp.studies[60]
    set_budget(storage, study, 5)
    assert sum(t.state == TrialState.WAITING for t in study.trials) == 5
    set_budget(storage, study, 2)
    held = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(held) == 2 and held[0].user_attrs.get("baseline")  # the baseline stays
    assert [trial_kind(t) for t in study.trials].count(None) == 3  # withdrawn: counted nowhere
    assert load_experiment(tiny_digits(trials=2, counts=(60,)), url).status()[0].waiting == 2


def test_status_tells_handed_back_and_lost_trials_from_failures(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    exp = create_experiment(tiny_digits(trials=3, counts=(60,)), url)
    storage, study = exp.storage, exp.studies[60]
    study_id = storage.get_study_id_from_name(study.study_name)
    for reason in (HANDED_BACK, LOST, "error: boom"):
        trial = study.ask()
        assert end_trial(storage, study_id, trial.number, reason, "me")
    (row,) = load_experiment(tiny_digits(trials=3, counts=(60,)), url).status()
    assert (row.handed_back, row.lost, row.failed, row.waiting) == (1, 1, 1, 0)


def test_a_plain_study_with_the_experiments_name_is_refused_before_anything_is_written(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    optuna.create_study(study_name="tiny-n0000060", storage=url, direction="maximize")
    with pytest.raises(ExperimentMismatchError, match="not created by scaling-optuna"):
        create_experiment(tiny_digits(counts=(60, 120)), url)
    storage = open_storage(url)
    assert [s.study_name for s in storage.get_all_studies()] == ["tiny-n0000060"]


def test_the_package_exports_what_the_readme_uses():
    for name in ("load_experiment", "create_experiment", "build_report", "fit_scaling_law", "run_worker",
                 "SizeStatus", "TrialRecord", "Prediction", "DataNeeded", "parse_spec", "load_spec"):
        assert getattr(scaling_optuna, name) is not None, name


def test_workers_changing_the_budget_together_leave_it_whole(tiny_digits, tmp_path):
    """Each of several workers started with the same new --trials queues what it found missing, or withdraws the surplus."""
    import threading

    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tiny_digits(trials=2, counts=(60,))
    create_experiment(path, url)
    experiments = [load_experiment(path, url) for _ in range(4)]  # one store connection each
    errors = []

    def change_budget(exp, budget: int, start: threading.Barrier) -> None:
        start.wait()
        try:
            set_budget(exp.storage, exp.studies[60], budget)
        except Exception as e:  # noqa: BLE001 - the test reports it below
            errors.append(e)

    for budget in (10, 4, 12, 3):
        start = threading.Barrier(len(experiments))
        threads = [threading.Thread(target=change_budget, args=(exp, budget, start)) for exp in experiments]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        trials = experiments[0].studies[60].get_trials()
        assert sum(t.state == TrialState.WAITING for t in trials) == budget
        assert sum(bool(t.user_attrs.get("baseline")) for t in trials if t.state == TrialState.WAITING) == 1


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_budget_below_what_is_finished_is_refused_unless_confirmed(store, tiny_digits, tmp_path, capsys, request):
    from scaling_optuna.cli import main
    from scaling_optuna.experiment import rank_trials

    url = f"sqlite:///{tmp_path / 'store.db'}" if store == "sqlite" else request.getfixturevalue("postgres_url")
    path = tiny_digits(name="lower", trials=3, counts=(60,))
    study = create_experiment(path, url).studies[60]
    for value in (0.3, 0.2):
        trial = study.ask()
        trial.set_user_attr("test_error", value)
        study.tell(trial, value)

    for argv in (["create", str(path), "--trials", "1"], ["worker", str(path), "--trials", "1", "--threads", "1"]):
        assert main([*argv, "--storage", url]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        # (Other tests' URLs teach mask_url passwords such as 0000: the study name is not checked whole.)
        assert len(lines) == 1 and "below the 2 trials study 'lower-n" in lines[0] and "has already finished" in lines[0], lines
        assert "budget stays 3" in lines[0] and "--allow-lower-budget" in lines[0]
        assert load_experiment(path, url).budget(60) == 3  # nothing changed
    assert main(["create", str(path), "--trials", "2", "--storage", url]) == 0  # as many as finished: fine
    assert main(["create", str(path), "--trials", "1", "--allow-lower-budget", "--storage", url]) == 0
    again = load_experiment(path, url)
    assert again.budget(60) == 1 and [t.state for t in again.trials(60, tuple(TrialState))].count(TrialState.WAITING) == 0
    assert len(rank_trials(again.trials(60))) == 2  # finished trials stay


@pytest.mark.parametrize(
    "ask",
    [
        pytest.param(lambda exp, size: exp.budget(size), id="budget"),
        pytest.param(lambda exp, size: exp.remeasure_setting(size), id="remeasure_setting"),
        pytest.param(lambda exp, size: exp.records(size), id="records"),
        pytest.param(lambda exp, size: exp.configurations(size), id="configurations"),
        pytest.param(lambda exp, size: exp.best_trial(size), id="best_trial"),
        pytest.param(lambda exp, size: exp.trials(size), id="trials"),
        pytest.param(lambda exp, size: exp.best_model(size), id="best_model"),
        pytest.param(lambda exp, size: exp.studies[size], id="studies"),
    ],
)
@pytest.mark.parametrize("size", [90, "60", [60]], ids=["absent", "text", "list"])
def test_a_size_the_experiment_lacks_is_one_error_with_one_message_everywhere(tiny_digits, tmp_path, ask, size):
    exp = create_experiment(tiny_digits(trials=1, counts=(60, 120)), f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(scaling_optuna.UnknownSizeError) as caught:
        ask(exp, size)
    assert str(caught.value) == f"size {size!r} is not one of this experiment's sizes [60, 120]"
    assert isinstance(caught.value, scaling_optuna.UserError) and not isinstance(caught.value, KeyError)
