"""The core flow as a user runs it: `scaling-optuna run`, then Python queries the studies."""

from __future__ import annotations

import sqlite3

import numpy as np
import optuna
import pytest

import scaling_optuna
from tests import forked_cli
from tests.conftest import run_cli
from tests.conftest import write_spec


@pytest.mark.slow
def test_run_end_to_end_then_query_from_python(tiny_digits, tmp_path):
    spec = tiny_digits(trials=3, counts=(60, 240, 960), epochs=4)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = run_cli("run", str(spec), "--storage", url, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "9/9 trials finished" in result.stdout
    assert "test err" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == f"next: scaling-optuna report {spec} --storage {url}"

    exp = scaling_optuna.load_experiment(spec, storage=url)
    assert exp.sizes == [60, 240, 960]
    best = exp.best_trials()
    assert [b.size for b in best] == [60, 240, 960]
    for b in best:
        assert 0.0 <= b.test_error <= 1.0 and b.test_loss > 0 and b.n_params > 0
        assert set(b.params) == {"lr", "weight_decay", "momentum", "conv1", "conv2", "fc1", "fc2"}
    # More data, lower error: digits is easy enough for this to hold with 3 trials.
    assert best[-1].test_error < best[0].test_error
    for row in exp.status():
        # Workers only claim queued trials: every study ends exactly at its budget.
        assert row.complete + row.pruned == 3 and row.running == 0 and row.failed == 0
    for size in exp.sizes:
        # The spec's RandomSampler has a seed: each worker must add its own offset to it.
        proposals = [tuple(sorted(t.params.items())) for t in exp.trials(size)]
        assert len(set(proposals)) == len(proposals), f"size {size}: workers proposed the same parameters"

    # Plain Optuna reads the store with no help from us.
    names = {s.study_name for s in optuna.get_all_study_summaries(url)}
    assert names == {"tiny-n0000060", "tiny-n0000240", "tiny-n0000960"}
    study = optuna.load_study(study_name="tiny-n0000960", storage=url)
    assert study.user_attrs["experiment"] == "tiny" and study.user_attrs["size"] == 960
    first = study.trials[0]
    assert first.user_attrs["baseline"] is True  # the seed's untuned model is every study's first trial
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in complete:
        assert {"test_loss", "test_error", "n_params", "epochs_run", "wall_time_s"} <= set(t.user_attrs)
        assert len(t.intermediate_values) == t.user_attrs["epochs_run"]

    # The best model of each size is kept and comes back ready to use.
    from scaling_optuna.data import load_dataset
    from scaling_optuna.train import evaluate

    data = load_dataset(scaling_optuna.load_spec(spec))
    model = exp.best_model(960)
    _, error = evaluate(model, (data.x_test, data.y_test))  # raw inputs: the model standardises them
    assert error == pytest.approx(best[-1].test_error, abs=1e-6)
    # Each size's model carries its own training subset's statistics, not the pool's.
    assert exp.best_model(60).standardize.mean.item() == pytest.approx(data.input_stats(60)[0].item(), rel=1e-6)
    assert exp.best_model(60).standardize.mean.item() != pytest.approx(data.input_stats(960)[0].item(), rel=1e-3)
    kept = list((tmp_path / "store.db-artifacts").iterdir())
    assert 3 <= len(kept) <= 3 * 3  # at most keep_models (3) per size

    status = run_cli("status", str(spec), "--storage", url)
    assert status.returncode == 0 and "tiny-n0000960" in status.stdout
    best_cli = run_cli("best", str(spec), "--storage", url)
    assert best_cli.returncode == 0 and len(best_cli.stdout.strip().splitlines()) == 4

    # Running again with the same budget does no new work; a larger budget extends it.
    again = run_cli("run", str(spec), "--storage", url, "--trials", "4")
    assert again.returncode == 0, again.stderr
    exp = scaling_optuna.load_experiment(spec, storage=url)
    assert all(4 <= len(exp.trials(s, states=tuple(optuna.trial.TrialState))) <= 5 for s in exp.sizes)


@pytest.mark.slow
def test_create_is_idempotent_and_rejects_an_incompatible_spec(tiny_digits, tmp_path):
    spec = tiny_digits(counts=(60, 240))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert run_cli("create", str(spec), "--storage", url).returncode == 0
    assert run_cli("create", str(spec), "--storage", url).returncode == 0
    exp = scaling_optuna.load_experiment(spec, storage=url)
    # Each study holds its budget of queued trials, the untuned baseline first, queued once.
    assert [len(exp.studies[s].trials) for s in exp.sizes] == [2, 2]
    assert [[t.user_attrs.get("baseline", False) for t in exp.studies[s].trials] for s in exp.sizes] == [[True, False]] * 2

    changed = spec.read_text().replace("max_epochs = 4", "max_epochs = 7")
    other = write_spec(tmp_path, changed, "changed.toml")
    result = run_cli("create", str(other), "--storage", url)
    assert result.returncode == 2
    assert "different spec" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(scaling_optuna.ExperimentMismatchError):
        scaling_optuna.load_experiment(other, storage=url)


@pytest.mark.slow
def test_worker_refuses_data_with_another_fingerprint(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(path, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    spec = write_spec(tmp_path, f"""
        name = "mine"
        trials_per_size = 1
        [data]
        dataset = "npz"
        path = "{path}"
        [sizes]
        counts = [40, 160]
        [trainer]
        max_epochs = 2
    """)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert run_cli("create", str(spec), "--storage", url).returncode == 0
    x[3, 2] += 1.0  # another machine's copy differs in one value
    np.savez(path, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    result = run_cli("worker", str(spec), "--storage", url)
    assert result.returncode == 2
    assert "fingerprint" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    exp = scaling_optuna.load_experiment(spec, storage=url)
    assert all(r.complete == 0 and r.running == 0 for r in exp.status())


@pytest.mark.slow
def test_a_diverging_trial_is_pruned_with_its_reason_and_the_worker_goes_on(tmp_path):
    spec = write_spec(tmp_path, """
        name = "boom"
        trials_per_size = 2
        [data]
        dataset = "digits"
        [sizes]
        counts = [200]
        [search_space]
        lr = { choices = [1e10, 0.05] }
        weight_decay = 1e-6
        momentum = 0.9
        conv1 = 6
        conv2 = 8
        fc1 = 32
        fc2 = 32
        [default_params]
        lr = 1e10
        weight_decay = 1e-6
        momentum = 0.9
        conv1 = 6
        conv2 = 8
        fc1 = 32
        fc2 = 32
        [trainer]
        max_epochs = 3
        [sampler]
        name = "GridSampler"
        search_space = { lr = [1e10, 0.05] }
        [remeasure]
        repeats = 0
    """)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = run_cli("run", str(spec), "--storage", url, "--trials", "3")
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="boom-n0000200", storage=url)
    diverged = [t for t in study.trials if t.params.get("lr") == 1e10]
    assert diverged and all(t.state == optuna.trial.TrialState.PRUNED for t in diverged)
    assert all(t.user_attrs["stopped_reason"].startswith("diverged") for t in diverged)
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


BAD_SPECS = [
    ("name = 'x'\n[data\ndataset='digits'", "invalid TOML"),
    ("name = 'x'\n[data]\ndataset = 'digits'\n[sizes]\nstart_fraction = 0.1\n[trainr]\n", "did you mean 'trainer'"),
    ("name = 'x'\n[data]\ndataset = 'digts'\n[sizes]\nstart_fraction = 0.1\n", "did you mean 'digits'"),
    ("name = 'x'\n[data]\ndataset = 'digits'\n[sizes]\nstart_fraction = 0.1\n[model]\nkind = 'resnet'\n", "unknown model"),
    ("name = 'x'\n[data]\ndataset = 'digits'\n[sizes]\ncounts = [0, 10]\n", "not a positive count"),
    ("name = 'x'\n[data]\ndataset = 'digits'\n[sizes]\ncounts = [10, 100000]\n", "larger than the training pool"),
    ("name = 'x'\ntrials_per_size = 0\n[data]\ndataset = 'digits'\n[sizes]\ncounts = [10]\n", "positive integer"),
    ("name = 'x'\n[data]\ndataset = 'npz'\npath = 'nowhere.npz'\n[sizes]\ncounts = [10]\n", "does not exist"),
    ("name = 'x'\n[data]\ndataset = 'digits'\n[sizes]\ncounts = [10]\n[search_space]\nlr = { low = 0.1, high = 0.01 }\n", "swap them"),
    ("name = 'x'\n[data]\ndataset = 'digits'\n[sizes]\ncounts = [10]\n[sampler]\nname = 'TPESamplr'\n", "did you mean 'TPESampler'"),
]


@pytest.mark.parametrize("text, message", BAD_SPECS)
def test_bad_specs_give_one_line_and_exit_2_and_write_nothing(tmp_path, text, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    store = tmp_path / "store.db"
    result = run_cli("run", str(spec), "--storage", f"sqlite:///{store}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert not store.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trials", "0"], "must be a positive integer"),
        (["--workers", "-1"], "must be a positive integer"),
        (["--storage", "not a url"], "malformed"),
        (["--storage", "postgresql://someone:hunter2@127.0.0.1:1/nowhere"], "cannot open storage"),
    ],
)
def test_bad_command_lines_give_one_line_and_exit_2(tiny_digits, tmp_path, args, message):
    spec = tiny_digits()
    result = run_cli("run", str(spec), *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert not (tmp_path / "scaling-optuna.db").exists()


def test_status_of_a_missing_store_writes_nothing(tiny_digits, tmp_path):
    spec = tiny_digits()
    store = tmp_path / "typo.db"
    result = run_cli("status", str(spec), "--storage", f"sqlite:///{store}")
    assert result.returncode == 2 and "no store" in result.stderr
    assert not store.exists()
    with pytest.raises(scaling_optuna.StorageError):
        scaling_optuna.load_experiment(spec, storage=f"sqlite:///{store}")


@pytest.mark.slow
def test_studies_keep_wal_mode_for_concurrent_readers(tiny_digits, tmp_path):
    spec = tiny_digits()
    store = tmp_path / "store.db"
    assert run_cli("create", str(spec), "--storage", f"sqlite:///{store}").returncode == 0
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    "device, workers, gpus, expected",
    [
        ("auto", 4, 2, ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]),
        ("cuda", 3, 3, ["cuda:0", "cuda:1", "cuda:2"]),
        ("auto", 2, 1, ["auto", "auto"]),  # one GPU (or none): every worker shares it
        ("auto", 2, 0, ["auto", "auto"]),
        ("cpu", 2, 4, ["cpu", "cpu"]),
        ("cuda:1", 2, 4, ["cuda:1", "cuda:1"]),  # a device asked for by name is used as given
    ],
)
def test_run_spreads_its_workers_over_the_gpus(device, workers, gpus, expected):
    from scaling_optuna.cli import worker_devices

    assert worker_devices(device, workers, gpus) == expected


def test_shared_flags_go_before_or_after_the_command_and_after_wins(monkeypatch):
    from scaling_optuna.cli import _parser

    monkeypatch.delenv("SCALING_OPTUNA_STORAGE", raising=False)
    parse = _parser().parse_args
    plain = parse(["status", "s.toml"])
    assert (plain.storage, plain.log_level, plain.log_format, plain.watch) == (None, "info", "text", None)
    after = parse(["status", "s.toml", "--storage", "sqlite:///a.db", "--log-level", "debug", "--log-format", "json"])
    assert (after.storage, after.log_level, after.log_format) == ("sqlite:///a.db", "debug", "json")
    before = parse(["--storage", "sqlite:///a.db", "--log-level", "debug", "--log-format", "json", "report", "s.toml"])
    assert (before.storage, before.log_level, before.log_format) == ("sqlite:///a.db", "debug", "json")
    both = parse(["--log-level", "error", "--storage", "sqlite:///a.db", "worker", "s.toml", "--log-level", "warning", "--storage", "sqlite:///b.db"])
    assert (both.log_level, both.storage) == ("warning", "sqlite:///b.db")
    monkeypatch.setenv("SCALING_OPTUNA_STORAGE", "sqlite:///env.db")
    parse = _parser().parse_args  # the environment is read when the parser is built
    assert parse(["best", "s.toml"]).storage == "sqlite:///env.db"
    assert parse(["dashboard"]).storage == "sqlite:///env.db"
    assert parse(["status", "s.toml", "--watch"]).watch == 5.0 and parse(["status", "s.toml", "--watch", "1.5"]).watch == 1.5


def test_renamed_flags_keep_their_old_spelling_out_of_help(capsys):
    from scaling_optuna.cli import _parser

    parse = _parser().parse_args
    assert parse(["proxy", "--grpc-threads", "4"]).grpc_threads == 4
    assert parse(["proxy", "--threads", "3"]).grpc_threads == 3  # the proxy's flag before --grpc-threads
    assert parse(["proxy"]).grpc_threads == 16
    assert parse(["worker", "s.toml"]).threads is None  # 1 thread: see _worker_threads
    with pytest.raises(SystemExit):
        parse(["proxy", "--help"])
    proxy_help = capsys.readouterr().out
    assert "--grpc-threads" in proxy_help and "--threads" not in proxy_help.replace("--grpc-threads", "")
    with pytest.raises(SystemExit):
        parse(["worker", "--help"])
    worker_help = " ".join(capsys.readouterr().out.split())
    assert "--workers" not in worker_help and "torch threads of this worker (default 1" in worker_help
    with pytest.raises(SystemExit):
        parse(["fit", "--help"])
    assert "saturating, a·n^b + c" in " ".join(capsys.readouterr().out.split())


def test_a_worker_uses_one_thread_unless_told_otherwise():
    import os

    from scaling_optuna.cli import _parser
    from scaling_optuna.cli import _worker_threads

    parse = _parser().parse_args
    assert _worker_threads(parse(["worker", "s.toml"])) == 1
    assert _worker_threads(parse(["worker", "s.toml", "--threads", "3"])) == 3
    cores = len(os.sched_getaffinity(0))
    assert _worker_threads(parse(["worker", "s.toml", "--workers", "1"])) == cores  # the old spelling: cores / N


def test_version(capsys):
    from importlib.metadata import version

    from scaling_optuna.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"scaling-optuna {version('scaling-optuna')}"


def test_fit_takes_any_positive_target_for_a_curve_that_is_not_an_error_rate(capsys):
    from scaling_optuna.cli import main

    assert main(["fit", "--sizes", "100,200,400,800,1600", "--values", "3.1,2.4,1.9,1.6,1.4", "--target", "1.2"]) == 0
    assert "1.2" in capsys.readouterr().out


def _created_and_watched(spec, url: str):
    """Create the experiment in ``url``, then start ``status --watch 1`` on it."""

    assert run_cli("create", str(spec), "--storage", url).returncode == 0
    return forked_cli.start(["status", str(spec), "--storage", url, "--watch", "1"])


@pytest.mark.slow
def test_status_watch_follows_workers_started_elsewhere_until_the_budget_is_finished(tiny_digits, tmp_path):
    # every trial runs all its epochs: the worker outlasts several refreshes of the watch, also on a busy machine
    spec = tiny_digits(trials=3, counts=(60, 120), epochs=12, whole_epochs=True)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    watch = _created_and_watched(spec, url)
    try:
        assert watch.stdout.readline().split()[:2] == ["size", "study"]  # watching before any trial ran
        worker = run_cli("worker", str(spec), "--storage", url, "--threads", "1")
        assert worker.returncode == 0, worker.stderr
        out, err = watch.communicate(timeout=120)  # a guard against a watch that never ends
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0 and err == ""
    tables = out.split("\n\n")
    assert len(tables) >= 2  # it printed again as trials finished
    assert tables[-1].splitlines()[-1].startswith("[") and "6/6 trials finished" in tables[-1]


@pytest.mark.slow
def test_status_watch_ends_quietly_on_ctrl_c(tiny_digits, tmp_path):
    import signal

    spec = tiny_digits(trials=2, counts=(60,))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    watch = _created_and_watched(spec, url)
    try:
        lines = [watch.stdout.readline() for _ in range(3)]  # header, one size, the progress line
        assert "0/2 trials finished" in lines[2]
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0 and err == ""
