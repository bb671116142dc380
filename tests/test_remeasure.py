"""Re-measuring the winners: after a size's search, its best configurations re-trained with fresh seeds.

Real runs (the CLI in subprocesses, on SQLite and PostgreSQL) check what a
user relies on: the re-runs start only once the search is done, each of the
top configurations gets exactly ``repeats`` complete, unpruned re-runs with
their own seeds, workers share them, a worker killed mid-re-run costs nothing,
and ``best_trial`` gives the means over the runs. The Python API checks that
changing ``[remeasure]`` queues and withdraws placeholders exactly, also when
several processes do it at once.
"""

from __future__ import annotations

import signal
import statistics
import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

import scaling_optuna
from scaling_optuna.experiment import create_experiment
from scaling_optuna.experiment import load_experiment
from scaling_optuna.experiment import set_budget
from scaling_optuna.remeasure import NEAR_BEST
from scaling_optuna.remeasure import stored_setting
from scaling_optuna.report.rows import size_rows
from scaling_optuna.spec import RemeasureSpec
from scaling_optuna.spec import parse_spec
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._shared import REPLACES_ATTR
from scaling_optuna.storages._shared import WITHDRAWN
from scaling_optuna.storages._shared import ended_reason
from scaling_optuna.storages._shared import queue_replacement
from scaling_optuna.worker import run_worker
from tests.conftest import run_cli
from tests.test_distributed import all_trials
from tests.test_distributed import running_mid_trial
from tests.test_distributed import wait_until
from tests.test_distributed import worker_args
from tests.test_distributed import workers  # noqa: F401 - a fixture

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Prunes a trial at any epoch where it is not about the best of the finished trials: every re-run
# would be pruned if a re-run asked the pruner. With n_startup_trials equal to the search budget,
# the search itself is never pruned.
STRICT_PRUNER = '[pruner]\nname = "PercentilePruner"\npercentile = 1.0\nn_startup_trials = 3\nn_warmup_steps = 0\n'
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _strict(path: Path) -> Path:
    text = path.read_text()
    start, end = text.index("[pruner]"), text.index("[remeasure]")
    path.write_text(text[:start] + STRICT_PRUNER + "\n" + text[end:])
    return path


def _search(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if "remeasure" not in t.user_attrs]


def _reruns(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if "remeasure" in t.user_attrs]


def _remeasured(trials: list[FrozenTrial], top: int) -> list[FrozenTrial]:
    """The original run each rank 0 … top-1 re-measures: the best distinct configurations of the
    complete search trials, the best one where fewer lie within NEAR_BEST of its validation loss."""
    seen, originals = set(), []
    for t in sorted((t for t in _search(trials) if t.state == TrialState.COMPLETE), key=lambda t: (t.value, t.number)):
        key = tuple(sorted(t.params.items()))
        near_best = not originals or t.value <= (1 + NEAR_BEST) * originals[0].value
        if key not in seen and near_best:
            seen.add(key)
            originals.append(t)
    return [originals[rank] if rank < len(originals) else originals[0] for rank in range(top)]


def _check_reruns(trials: list[FrozenTrial], *, budget: int, top: int, repeats: int) -> None:
    """The search finished its budget before any re-run started; each top configuration re-ran ``repeats`` times."""
    states = [t.state for t in trials]
    assert TrialState.WAITING not in states and TrialState.RUNNING not in states, states
    search, reruns = _search(trials), _reruns(trials)
    assert sum(t.state in FINISHED for t in search) == budget
    last_search = max(t.datetime_complete for t in search if t.state in FINISHED)
    assert all(t.datetime_start >= last_search for t in reruns if t.datetime_start), "a re-run started during the search"
    done = [t for t in reruns if t.state in FINISHED]
    assert all(t.state == TrialState.COMPLETE for t in done), [t.user_attrs.get("stopped_reason") for t in done]
    ranks = [t.number for t in _remeasured(trials, top)]
    for original in {t.number: t for t in _remeasured(trials, top)}.values():
        runs = [t for t in done if t.user_attrs["remeasure_of"] == original.number]
        assert len(runs) == ranks.count(original.number) * repeats, (original.number, [t.user_attrs for t in done])
        assert all(t.params == original.params and t.intermediate_values for t in runs)
        # Each its own initialisation: no two runs of a configuration end alike.
        assert len({t.value for t in [original, *runs]}) == len(runs) + 1
    assert len(done) == top * repeats


def _check_best_is_the_mean_of_its_runs(exp, size: int) -> None:
    trials = exp.studies[size].get_trials(deepcopy=False)
    best = exp.best_trial(size)
    runs = [t for t in trials if t.state == TrialState.COMPLETE and (t.number == best.trial_number or t.user_attrs.get("remeasure_of") == best.trial_number)]
    assert best.runs == len(runs) > 1
    assert best.val_loss == pytest.approx(statistics.fmean(t.value for t in runs))
    assert best.val_loss_sd == pytest.approx(statistics.stdev(t.value for t in runs))
    for key in ("test_error", "test_loss"):
        assert getattr(best, key) == pytest.approx(statistics.fmean(t.user_attrs[key] for t in runs))
        assert getattr(best, f"{key}_sd") == pytest.approx(statistics.stdev(t.user_attrs[key] for t in runs))
    # The chosen configuration is the re-measured one with the lowest mean validation loss.
    configs = exp.configurations(size)
    assert configs[0].trial_number == best.trial_number
    assert all(c.val_loss >= best.val_loss for c in configs if c.remeasured)
    # The report's rows list each configuration once: its re-runs are no near-best trials of their own.
    (row,) = [r for r in size_rows(exp) if r.size == size]
    assert row.best.trial_number == best.trial_number and row.best.runs == best.runs
    assert len({r.trial_number for r in row.near_best}) == len(row.near_best)
    assert not any(r.remeasure_of is not None for r in row.near_best)
    assert exp.best_model(size) is not None  # the weights of one of its runs


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_workers_rerun_the_top_configurations_after_the_search(store, tiny_digits, tmp_path, request):
    url = request.getfixturevalue("postgres_url") if store == "postgresql" else f"sqlite:///{tmp_path / 'store.db'}"
    spec = _strict(tiny_digits(name="again", trials=3, counts=(60, 120), epochs=4, top=2, repeats=2))
    result = run_cli("run", str(spec), "--storage", url, "--workers", "2", "--heartbeat", "2", "--grace", "20")
    assert result.returncode == 0, result.stderr
    assert "3 trials + 4 re-run(s) each" in result.stdout
    assert "14/14 trials finished" in result.stdout  # the progress total holds the re-runs
    assert "re-measured configurations" in result.stdout

    trials = all_trials(url)
    for ts in trials.values():
        _check_reruns(ts, budget=3, top=2, repeats=2)
    assert len({t.user_attrs["worker"] for ts in trials.values() for t in ts}) == 2  # the work was shared
    exp = load_experiment(spec, url)
    for size in exp.sizes:
        _check_best_is_the_mean_of_its_runs(exp, size)
    # The report reads the chosen configurations: their means, and how many runs each is over.
    sizes = scaling_optuna.build_report(exp).to_dict()["sizes"]
    assert [s["best"]["runs"] for s in sizes] == [exp.best_trial(size).runs for size in exp.sizes]
    assert [s["best"]["test_error"] for s in sizes] == pytest.approx([exp.best_trial(size).test_error for size in exp.sizes])
    status = run_cli("status", str(spec), "--storage", url)
    assert [line.split()[3] for line in status.stdout.splitlines()[1:]] == ["4/4", "4/4"], status.stdout
    best = run_cli("best", str(spec), "--storage", url)
    assert best.returncode == 0 and sum(line.endswith(" *") for line in best.stdout.splitlines()) == 2, best.stdout


@pytest.mark.slow
def test_a_rerun_whose_worker_is_killed_is_rerun_in_its_slot(tiny_digits, postgres_url, workers):  # noqa: F811
    # Trials without early stopping, long enough to be killed mid-way.
    spec = tiny_digits(name="killed", trials=2, counts=(240,), epochs=20, top=1, repeats=2)
    spec.write_text(spec.read_text().replace("patience = 2", "patience = 20"))
    assert run_cli("create", str(spec), "--storage", postgres_url).returncode == 0
    a = workers("a", *worker_args(spec, postgres_url, fast=True))

    def rerun_mid_way():
        found = running_mid_trial(postgres_url, a.pid)
        return found if found and "remeasure" in found[1].user_attrs else None

    name, victim = wait_until(rerun_mid_way, 240, "a re-run of worker a mid-way")
    a.proc.send_signal(signal.SIGKILL)
    a.wait(10)
    b = workers("b", *worker_args(spec, postgres_url, fast=True))
    assert b.wait(240) == 0, b.output()

    trials = all_trials(postgres_url)[name]
    assert trials[victim.number].state == TrialState.FAIL
    (replacement,) = [t for t in trials if t.system_attrs.get(REPLACES_ATTR) == victim.number]
    assert replacement.state == TrialState.COMPLETE
    assert replacement.user_attrs["remeasure"] == victim.user_attrs["remeasure"]  # the same slot
    assert replacement.user_attrs["remeasure_of"] == victim.user_attrs["remeasure_of"]
    assert replacement.params == victim.params
    _check_reruns(trials, budget=2, top=1, repeats=2)  # exactly the budget, nothing re-run twice


def test_the_setting_has_defaults_is_clipped_to_the_budget_and_may_change_between_runs():
    raw = {"name": "x", "data": {"dataset": "digits"}, "sizes": {"counts": [10]}}
    spec = parse_spec(raw)
    assert spec.remeasure == RemeasureSpec(top=2, repeats=2)
    other = parse_spec({**raw, "remeasure": {"top": 5, "repeats": 0}})
    assert other.compatibility_hash() == spec.compatibility_hash()  # like trials_per_size, not part of the experiment


def _placeholders(study: optuna.Study) -> list[tuple[int, int]]:
    """The slots of the queued placeholders, sorted (a slot twice would show twice)."""
    return sorted(
        (t.user_attrs["remeasure"]["rank"], t.user_attrs["remeasure"]["repeat"])
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) if "remeasure" in t.user_attrs
    )


def _slots(top: int, repeats: int) -> list[tuple[int, int]]:
    return [(k, j) for k in range(top) for j in range(repeats)]


def test_changing_remeasure_between_creates_queues_and_withdraws_exactly(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tiny_digits(trials=3, counts=(60,), top=2, repeats=2)
    study = create_experiment(path, url).studies[60]
    assert _placeholders(study) == _slots(2, 2)
    assert study.user_attrs["remeasure"] == {"top": 2, "repeats": 2}
    assert sum("remeasure" not in t.user_attrs for t in study.trials) == 3  # the search budget is apart
    create_experiment(path, url)  # idempotent
    assert _placeholders(study) == _slots(2, 2)

    # A worker has started one placeholder: it is never withdrawn, and its slot is held.
    storage = open_storage(url)
    (started,) = [t for t in study.trials if t.user_attrs.get("remeasure") == {"rank": 0, "repeat": 0}]
    assert storage.set_trial_state_values(started._trial_id, TrialState.RUNNING)
    create_experiment(tiny_digits(trials=3, counts=(60,), top=1, repeats=0), url)
    assert _placeholders(study) == []
    assert study.trials[started.number].state == TrialState.RUNNING
    create_experiment(tiny_digits(trials=3, counts=(60,), top=3, repeats=2), url)
    assert _placeholders(study) == [s for s in _slots(3, 2) if s != (0, 0)]
    withdrawn = [t for t in study.trials if t.state == TrialState.FAIL]
    assert withdrawn and all(ended_reason(t) == WITHDRAWN for t in withdrawn)
    assert load_experiment(path, url).status()[0].repeats == 6

    # --trials below top (worker --trials keeps the stored setting): only as many ranks as search trials.
    set_budget(storage, study, 1)
    assert _placeholders(study) == [(0, 1)]
    set_budget(storage, study, 3)
    assert _placeholders(study) == [s for s in _slots(3, 2) if s != (0, 0)]


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def test_processes_changing_remeasure_together_leave_each_slot_queued_once(store, tiny_digits, tmp_path, request):
    url = request.getfixturevalue("postgres_url") if store == "postgresql" else f"sqlite:///{tmp_path / 'store.db'}"
    path = tiny_digits(trials=2, counts=(60,), top=2, repeats=1)
    create_experiment(path, url)
    experiments = [load_experiment(path, url) for _ in range(4)]  # one store connection each
    errors: list[BaseException] = []

    def change(exp, setting: RemeasureSpec, start: threading.Barrier) -> None:
        start.wait()
        try:
            set_budget(exp.storage, exp.studies[60], 2, remeasure=setting)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    for setting in (RemeasureSpec(2, 3), RemeasureSpec(1, 1), RemeasureSpec(2, 4), RemeasureSpec(2, 0), RemeasureSpec(2, 2)):
        start = threading.Barrier(len(experiments))
        threads = [threading.Thread(target=change, args=(exp, setting, start)) for exp in experiments]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        study = experiments[0].studies[60]
        assert _placeholders(study) == _slots(setting.top, setting.repeats), setting
        assert sum(t.state == TrialState.WAITING and "remeasure" not in t.user_attrs for t in study.trials) == 2


def test_a_store_without_the_setting_rerun_nothing_and_a_lost_rerun_keeps_its_slot(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    exp = create_experiment(tiny_digits(trials=2, counts=(60,), top=1, repeats=1), url)
    study = exp.studies[60]
    # An older store: studies without the ``remeasure`` attribute queue and count no re-run.
    old = optuna.create_study(study_name="old", storage=exp.storage)
    assert stored_setting(old.user_attrs).repeats == 0
    set_budget(exp.storage, old, 3)
    assert [t.user_attrs for t in old.trials] == [{}, {}, {}]

    (placeholder,) = [t for t in study.trials if "remeasure" in t.user_attrs]
    study_id = exp.storage.get_study_id_from_name(study.study_name)
    assert queue_replacement(exp.storage, study_id, placeholder, who="test") is not None
    (replacement,) = [t for t in study.trials if t.system_attrs.get(REPLACES_ATTR) == placeholder.number]
    assert replacement.user_attrs == {"remeasure": {"rank": 0, "repeat": 0}}
    assert "fixed_params" not in replacement.system_attrs  # the claiming worker resolves its configuration


def test_with_no_complete_search_trial_the_placeholders_are_withdrawn(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tiny_digits(trials=1, counts=(60,), top=1, repeats=2)
    study = create_experiment(path, url).studies[60]
    baseline = study.ask()  # the queue's head: the search's one trial
    study.tell(baseline, state=TrialState.PRUNED)
    summary = run_worker(path, url, threads=1)
    assert summary.trials == 0
    (status,) = load_experiment(path, url).status()
    assert (status.repeats, status.waiting, status.running, status.pruned) == (0, 0, 0, 1)
    assert all(ended_reason(t) == WITHDRAWN for t in study.trials if "remeasure" in t.user_attrs)
    assert scaling_optuna.load_experiment(path, url).best_trial(60) is None
