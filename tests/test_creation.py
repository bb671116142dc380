"""Creating and extending an experiment that a kill cannot break.

A ``create`` cut off anywhere (a stop between two steps, SIGTERM, SIGKILL, a
study that a kill left without its identity, a study begun by an older
version that wrote the experiment's name first) leaves every whole study
usable, and the next ``create`` finishes the job: every study whole, exactly
one baseline, exactly its budget queued. Two ``create`` of the same new
experiment at once, on every kind of store, leave the same.
"""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import scaling_optuna
from scaling_optuna.cli import main
from scaling_optuna.errors import ExperimentMismatchError
from scaling_optuna.errors import StorageError
from scaling_optuna.experiment import BUDGET_STATES
from scaling_optuna.experiment import CreationStopped
from scaling_optuna.experiment import create_experiment
from scaling_optuna.experiment import load_experiment
from scaling_optuna.experiment import set_budget
from scaling_optuna.identity import survey
from scaling_optuna.spec import load_spec
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._shared import WITHDRAWN
from scaling_optuna.storages._shared import end_trial
from tests import forked_cli
from tests.conftest import run_cli
from tests.test_distributed import wait_until
from tests.test_proxy import _free_port
from tests.test_proxy import _proxy
from tests.test_proxy import _wait_listening

optuna.logging.set_verbosity(optuna.logging.WARNING)


def audit(url: str, name: str) -> dict[str, tuple[int, int, bool]]:
    """Per study of experiment ``name``: (baselines holding a place, trials holding a place, whole)."""
    storage = open_storage(url)
    out = {}
    for study in storage.get_all_studies():
        if not study.study_name.startswith(f"{name}-n"):
            continue
        trials = storage.get_all_trials(storage.get_study_id_from_name(study.study_name), deepcopy=False)
        held = [t for t in trials if t.state in BUDGET_STATES]
        baselines = sum(bool(t.user_attrs.get("baseline")) for t in held)
        out[study.study_name] = (baselines, len(held), study.user_attrs.get("experiment") == name)
    return out


def assert_complete(url: str, name: str, sizes: int, budget: int) -> None:
    assert audit(url, name) == {n: (1, budget, True) for n in audit(url, name)}
    assert len(audit(url, name)) == sizes


@pytest.mark.parametrize("cut_after", [0, 1, 2, 3, 5])
def test_a_create_stopped_between_any_two_steps_is_finished_by_the_next(cut_after, tiny_digits, tmp_path):
    """The stop lands after ``cut_after`` queued trials: in a study's budget, or between two studies."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tiny_digits(name="cut", trials=2, counts=(60, 120, 240))
    stop = threading.Event()

    def progress(done: int, total: int, queued: int) -> None:
        if queued >= cut_after:
            stop.set()

    with pytest.raises(CreationStopped) as stopped:
        create_experiment(path, url, stop=stop, progress=progress)
    whole = stopped.value.done
    assert whole == (cut_after // 2 if cut_after else 0)
    if whole:
        # The whole studies are usable meanwhile; the one cut off is passed over.
        assert load_experiment(path, url).sizes == [60, 120, 240][:whole]
    else:
        begun = "(its creation was cut off before any study was whole)" if cut_after else "holds no study of experiment 'cut';"
        with pytest.raises(StorageError, match=re.escape(begun)):
            load_experiment(path, url)
    create_experiment(path, url)
    assert_complete(url, "cut", sizes=3, budget=2)
    assert load_experiment(path, url).sizes == [60, 120, 240]


def test_a_study_left_without_its_identity_or_half_written_is_finished(tiny_digits, tmp_path):
    """What a kill leaves: a study and nothing else, or (an older version) the experiment's name without the rest."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    create_experiment(tiny_digits(name="half", trials=2, counts=(60,)), url)
    path = tiny_digits(name="half", trials=2, counts=(60, 120, 240))  # the same file, with the sizes a killed create was making
    bare = optuna.create_study(study_name="half-n0000120", storage=url, direction="minimize")
    older = optuna.create_study(study_name="half-n0000240", storage=url, direction="minimize")
    older.set_user_attr("experiment", "half")
    older.set_user_attr("size", 240)
    assert bare.user_attrs == {}
    # Readers pass over both; neither is taken for a foreign study nor a spec with hash None.
    assert load_experiment(path, url).sizes == [60]
    result = run_cli("status", str(path), "--storage", url)
    assert result.returncode == 0 and "half-n0000060" in result.stdout and "half-n0000120" not in result.stdout, result.stderr
    create_experiment(path, url)
    assert_complete(url, "half", sizes=3, budget=2)


def test_a_study_cut_off_while_two_creates_trimmed_each_other_is_finished(tiny_digits, tmp_path):
    """Both creates queued a baseline and withdrew surplus, and both were killed before the study was whole."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tiny_digits(name="both", trials=2, counts=(60,))
    params = dict(load_spec(path).default_params)
    study = optuna.create_study(study_name="both-n0000060", storage=url, direction="minimize")
    for _ in range(2):
        study.enqueue_trial(params, user_attrs={"baseline": True})
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING))
    storage = open_storage(url)
    study_id = storage.get_study_id_from_name("both-n0000060")
    for number in (2, 3):  # one withdrawn, the other claimed for withdrawal when the kill came
        assert storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, number), TrialState.RUNNING)
    end_trial(storage, study_id, 3, WITHDRAWN, who="budget")
    create_experiment(path, url)
    assert audit(url, "both") == {"both-n0000060": (1, 2, True)}


def test_a_foreign_study_with_the_experiments_name_is_still_refused(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    ran = optuna.create_study(study_name="own-n0000060", storage=url, direction="minimize")
    ran.optimize(lambda trial: 1.0, n_trials=1)  # a trial that ran: somebody's work
    tagged = optuna.create_study(study_name="own-n0000120", storage=url, direction="minimize")
    tagged.set_user_attr("owner", "someone else")
    for counts in ((60,), (120,)):
        with pytest.raises(ExperimentMismatchError, match="not created by scaling-optuna"):
            create_experiment(tiny_digits(name="own", counts=counts), url)
    assert [len(s.trials) for s in (ran, tagged)] == [1, 0] and tagged.user_attrs == {"owner": "someone else"}


def test_a_half_begun_study_of_another_spec_is_refused(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    stop = threading.Event()
    with pytest.raises(CreationStopped):
        create_experiment(tiny_digits(name="other", epochs=4), url, stop=stop, progress=lambda *a: stop.set() if a[2] else None)
    with pytest.raises(ExperimentMismatchError, match="different spec"):
        create_experiment(tiny_digits(name="other", epochs=9), url)


def _open_kind(kind: str, tmp_path: Path, request) -> str:
    """A store of ``kind`` whose tables (or file) exist already: the concurrent first open is another test's."""
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_url")
    elif kind == "grpc":
        port = _free_port()
        proc, log = _proxy(tmp_path, "behind.db", port)
        request.addfinalizer(lambda: (proc.kill(), proc.wait()))
        _wait_listening(proc, log)
        url = f"grpc://127.0.0.1:{port}"
    else:
        url = {"sqlite": f"sqlite:///{tmp_path / 'store.db'}", "journal": f"journal:///{tmp_path / 'store.log'}"}[kind]
    open_storage(url, create=True).get_all_studies()
    return url


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "journal", "grpc"])
def test_two_creates_at_once_leave_one_baseline_per_study(kind, tiny_digits, tmp_path, request):
    url = _open_kind(kind, tmp_path, request)
    path = tiny_digits(name="race", trials=3, counts=(60, 120, 240, 480))
    spec = load_spec(path)
    start, errors = threading.Barrier(2, timeout=120), []

    def meet(done: int, total: int, queued: int) -> None:
        if (done, queued) == (0, 0):
            start.wait()  # both checked the store and found no study: now they create them together

    def create() -> None:
        try:
            create_experiment(spec, url, progress=meet)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    for _ in range(2):  # the second round finds the studies of the first, and must change nothing
        threads = [threading.Thread(target=create) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert_complete(url, "race", sizes=4, budget=3)


def test_a_spare_baseline_being_withdrawn_elsewhere_does_not_shift_the_budget(tiny_digits, tmp_path):
    """Two creates queued a baseline each; one process is withdrawing the spare (RUNNING for a moment) as another trims."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    exp = create_experiment(tiny_digits(name="spare", trials=2, counts=(60,)), url)
    study, storage = exp.studies[60], exp.storage
    study.enqueue_trial(dict(exp.spec.default_params), user_attrs={"baseline": True})  # the other create's baseline, #2
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING))  # and its plain trial, #3
    study_id = storage.get_study_id_from_name(study.study_name)
    assert storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, 2), TrialState.RUNNING)
    set_budget(storage, study, 2)
    assert [t.state for t in study.trials] == [TrialState.WAITING, TrialState.WAITING, TrialState.RUNNING, TrialState.FAIL]
    end_trial(storage, study_id, 2, WITHDRAWN, who="budget")  # the other process finishes its withdrawal
    assert audit(url, "spare") == {"spare-n0000060": (1, 2, True)}


def _create_process(path: Path, url: str):
    return forked_cli.start(["create", str(path), "--storage", url])


def _whole(url: str, path: Path) -> int:
    try:
        return len(survey(load_spec(path), open_storage(url)).ready)
    except StorageError:
        return 0  # the store file is not there yet


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_create_with_one_line_and_the_next_create_finishes(sig, tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tiny_digits(name="term", trials=1, counts=tuple(range(40, 440, 10)))
    proc = _create_process(path, url)
    wait_until(lambda: _whole(url, path) >= 2 or proc.poll() is not None, 120, "two whole studies")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.strip().splitlines() if " INFO scaling_optuna.create: " not in line]  # progress may come first
    assert proc.returncode == 128 + sig and len(lines) == 1, err
    assert lines[0].startswith(f"stopped by {sig.name} after ") and lines[0].endswith("the same command finishes the rest"), err
    done = int(lines[0].split(" after ")[1].split(" of ")[0])
    assert done == _whole(url, path) and 2 <= done < 40
    create_experiment(path, url)
    assert_complete(url, "term", sizes=40, budget=1)


def test_create_says_how_far_it_got(tiny_digits, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("scaling_optuna.cli.CREATE_PROGRESS_S", 0.0)  # every step, instead of every 2 s
    path = tiny_digits(name="said", trials=2, counts=(60, 120))
    assert main(["create", str(path), "--storage", f"sqlite:///{tmp_path / 'store.db'}"]) == 0
    said = [line.split(" INFO scaling_optuna.create: ")[1] for line in capsys.readouterr().err.splitlines()]
    assert [line.split("] ")[1].split(" · ETA")[0] for line in said] == [
        "0/2 studies created · 0 trials queued",
        "0/2 studies created · 1 trial queued",
        "0/2 studies created · 2 trials queued",
        "1/2 studies created · 2 trials queued",
        "1/2 studies created · 3 trials queued",
        "1/2 studies created · 4 trials queued",
        "2/2 studies created · 4 trials queued",
    ]


@pytest.mark.slow
def test_an_extension_cut_off_leaves_the_finished_results_readable(tiny_digits, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    small = tiny_digits(name="grow", trials=1, counts=(60, 120, 240), epochs=1)
    create_experiment(small, url)
    scaling_optuna.run_worker(small, url, threads=1)
    best = [(b.size, b.trial_number, b.val_loss) for b in load_experiment(small, url).best_trials()]
    larger = tmp_path / "grow-larger.toml"
    text = small.read_text().replace("counts = [60, 120, 240]", f"counts = {[60, 120, 240, *range(300, 400, 10)]}")
    larger.write_text(text.replace("trials_per_size = 1", "trials_per_size = 2"))
    stop = threading.Event()
    with pytest.raises(CreationStopped):  # one more trial for each finished size, then cut off in the sixth new study's budget
        create_experiment(larger, url, stop=stop, progress=lambda done, total, queued: stop.set() if queued == 3 + 2 * 5 + 1 else None)
    # status, best and report of the original spec read the finished results as they were.
    for command in (["status"], ["best"], ["report", "--no-publish", "--out", str(tmp_path / "report")]):
        assert main([command[0], str(small), "--storage", url, *command[1:]]) == 0, capsys.readouterr().err
    assert [(b.size, b.trial_number, b.val_loss) for b in load_experiment(small, url).best_trials()[:3]] == best
    assert load_experiment(larger, url).sizes == [60, 120, 240, 300, 310, 320, 330, 340]
    create_experiment(larger, url)
    assert_complete(url, "grow", sizes=13, budget=2)


def test_a_worker_passes_over_a_study_cut_off_and_queues_a_budget_cut_off(tiny_digits, tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tiny_digits(name="top", trials=1, counts=(60,), epochs=1)
    exp = create_experiment(path, url)
    optuna.create_study(study_name="top-n0000120", storage=url, direction="minimize")  # a create killed there
    stopped = threading.Event()
    stopped.set()
    # `create --trials 3` or `worker --trials 3` cut off after writing the budget, before queuing it.
    assert not set_budget(exp.storage, exp.studies[60], 3, stop=stopped)
    with caplog.at_level("WARNING", logger="scaling_optuna.worker"):
        summary = scaling_optuna.run_worker(path, url, threads=1, heartbeat_interval=1, grace_period=2)
    assert summary.complete + summary.pruned == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("top-n0000120: its creation was cut off" in m for m in messages), messages
    assert any("2 of its 3 trials were never queued" in m for m in messages), messages
    assert audit(url, "top")["top-n0000060"] == (1, 3, True)


def test_a_sampler_seed_at_the_top_of_its_range_runs_with_any_worker_offset(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tiny_digits(name="seed", trials=2, counts=(60,), epochs=1)
    path.write_text(path.read_text().replace("seed = 1", "seed = 4294967295"))
    create_experiment(path, url)
    for offset in (-5, 1, 10**30):
        assert load_spec(path).create_sampler(offset) is not None
    summary = scaling_optuna.run_worker(path, url, threads=1, seed_offset=-5)
    assert (summary.complete + summary.pruned, summary.failed) == (2, 0)
