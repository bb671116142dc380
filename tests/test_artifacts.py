"""Trained weights: in the database of a PostgreSQL store, in a folder, or under an S3 prefix.

Every test runs the real part: the PostgreSQL server at 127.0.0.1:5432, a
tmpfs mounted full, moto's S3 server over HTTP (the one part that stands in
for a service this machine cannot reach), and workers started with the CLI.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading

import optuna
import pytest
import torch
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import TrialState

import scaling_optuna
from scaling_optuna.experiment import rank_trials
from scaling_optuna.storages import open_storage
from scaling_optuna.storages.artifacts import ATTR_ARTIFACT
from scaling_optuna.storages.artifacts import UPLOAD_ATTR
from scaling_optuna.storages.artifacts import WeightPruner
from scaling_optuna.storages.artifacts import DatabaseArtifactStore
from scaling_optuna.storages.artifacts import FolderArtifactStore
from scaling_optuna.storages.artifacts import PrefixedArtifactStore
from scaling_optuna.storages.artifacts import artifact_location
from scaling_optuna.storages.artifacts import open_artifact_store
from scaling_optuna.storages.artifacts import save_state_dict
from scaling_optuna.errors import StorageError
from tests.conftest import digits_spec_text
from tests.conftest import run_cli
from tests.conftest import write_spec

ENV = {"SCALING_OPTUNA_STORAGE": "", "SCALING_OPTUNA_ARTIFACTS": ""}


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return [t for s in optuna.get_all_study_summaries(storage) for t in optuna.load_study(study_name=s.study_name, storage=storage).trials]
    finally:
        storage.engine.dispose()


# --- Where weights go --------------------------------------------------------------------------


def test_location_follows_the_store(monkeypatch):
    monkeypatch.delenv("SCALING_OPTUNA_ARTIFACTS", raising=False)
    assert artifact_location(None, "sqlite:///runs/exp.db") == "runs/exp.db-artifacts"
    assert artifact_location(None, "journal:///shared/exp.log") == "shared/exp.log-artifacts"
    assert artifact_location(None, "postgresql://me:pw@db:5432/exp") == "postgresql://me:pw@db:5432/exp"
    assert artifact_location(None, "mysql+pymysql://me@db/exp") == "mysql+pymysql://me@db/exp"
    assert artifact_location(None, "grpc://proxy:13000") == "scaling-optuna-artifacts"  # the proxy hides its database
    assert artifact_location("s3://bucket/exp", "postgresql://me@db/exp") == "s3://bucket/exp"
    monkeypatch.setenv("SCALING_OPTUNA_ARTIFACTS", "/shared/weights")
    assert artifact_location(None, "postgresql://me@db/exp") == "/shared/weights"


# --- The database store ------------------------------------------------------------------------


def test_database_store_round_trip_on_postgres(postgres_url):
    store = open_artifact_store(postgres_url)
    with pytest.raises(ArtifactNotFound):
        store.open_reader("nothing-yet")  # before the table exists
    with pytest.raises(ArtifactNotFound):
        store.remove("nothing-yet")
    payload = os.urandom(3 * 1024 * 1024)  # megabytes, like a real network's weights
    store.write("a", io.BytesIO(payload))
    store.write("a", io.BytesIO(b"replaced"))  # a retried write replaces its own row
    store.write("b", io.BytesIO(payload))
    assert store.open_reader("a").read() == b"replaced"
    assert store.open_reader("b").read() == payload
    store.remove("a")
    with pytest.raises(ArtifactNotFound):
        store.open_reader("a")
    with pytest.raises(ArtifactNotFound):
        store.remove("a")
    assert DatabaseArtifactStore(postgres_url).artifact_ids() == ["b"]


def test_workers_creating_the_table_at_once_all_succeed(postgres_url):
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            DatabaseArtifactStore(postgres_url).write(f"w{i}", io.BytesIO(b"x" * i))
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(DatabaseArtifactStore(postgres_url).artifact_ids()) == [f"w{i}" for i in range(6)]


@pytest.mark.slow
def test_postgres_store_keeps_weights_in_its_database_for_every_machine(postgres_url, tiny_digits, tmp_path):
    spec = tiny_digits(name="dbweights", trials=3, counts=(60, 120), epochs=3)
    workdir = tmp_path / "worker-host"
    workdir.mkdir()
    done = run_cli("run", str(spec), "--storage", postgres_url, "--workers", "1", "--threads", "1", cwd=workdir, env=ENV)
    assert done.returncode == 0, done.stderr
    assert list(workdir.iterdir()) == []  # nothing written beside the worker

    trials = _trials(postgres_url)
    kept = {t.user_attrs[ATTR_ARTIFACT] for t in trials if ATTR_ARTIFACT in t.user_attrs}
    assert kept and set(DatabaseArtifactStore(postgres_url).artifact_ids()) == kept
    # Optuna's own artifact list (what optuna-dashboard shows) names the same weights.
    for t in trials:
        if ATTR_ARTIFACT in t.user_attrs:
            (meta,) = optuna.artifacts.get_all_artifact_meta(t, storage=optuna.storages.RDBStorage(postgres_url))
            assert meta.artifact_id == t.user_attrs[ATTR_ARTIFACT] and meta.filename == "model.pt"

    # Another process, in another folder, loads the best model of every size from the database alone.
    other = tmp_path / "another-host"
    other.mkdir()
    check = (
        "import scaling_optuna, sys\n"
        "from scaling_optuna.data import load_dataset\n"
        "from scaling_optuna.train import evaluate\n"
        f"exp = scaling_optuna.load_experiment({str(spec)!r}, storage={postgres_url!r})\n"
        "data = load_dataset(exp.spec)\n"
        "for best in exp.best_trials():\n"
        "    _, error = evaluate(exp.best_model(best.size), (data.x_test, data.y_test))\n"
        "    print(best.size, abs(error - best.test_error) < 1e-6)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check],
        cwd=other, capture_output=True, text=True, timeout=120, env={**os.environ, **ENV},
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["60", "True", "120", "True"]


# --- A failed write never fails a trial --------------------------------------------------------


@pytest.fixture
def full_folder(tmp_path):
    """A 4 KiB tmpfs: any model's weights fill it."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("mounting a full tmpfs needs root, which CI has")
        pytest.skip("mounting a full tmpfs needs root")
    folder = tmp_path / "full"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.slow
def test_full_disk_keeps_trials_complete_and_leaves_no_partial_file(full_folder, tiny_digits, tmp_path):
    spec = tiny_digits(name="full", trials=3, counts=(60,), epochs=2)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert run_cli("create", str(spec), "--storage", url, env=ENV).returncode == 0
    done = run_cli("worker", str(spec), "--storage", url, "--threads", "1", "--artifacts", str(full_folder), env=ENV)
    assert done.returncode == 0, done.stderr
    assert "worker done (no trials left)" in done.stdout
    trials = _trials(url)
    assert [t.state for t in trials].count(TrialState.FAIL) == 0, [t.state for t in trials]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete
    for t in complete:
        assert ATTR_ARTIFACT not in t.user_attrs and not any(k.startswith("artifacts:") for k in t.system_attrs)
    assert sorted(p.name for p in full_folder.iterdir()) == []  # no partial, no empty file
    warnings = [line for line in done.stderr.splitlines() if "not kept" in line]
    assert len(warnings) == len(complete), done.stderr
    assert all("No space left on device" in line for line in warnings), warnings
    assert "Traceback" not in done.stderr


def test_a_database_error_while_saving_keeps_the_trial_complete(postgres_url, caplog):
    missing = postgres_url.rsplit("/", 1)[0] + "/so_no_such_database"
    store = open_artifact_store(missing)
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        assert save_state_dict(trial, {"w": torch.zeros(3)}, store) is None
        return 1.0

    with caplog.at_level(logging.WARNING, logger="scaling_optuna.storages.artifacts"):
        study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == 1.0
    assert ATTR_ARTIFACT not in trial.user_attrs
    (warning,) = [r for r in caplog.records if r.name == "scaling_optuna.storages.artifacts" and r.levelno == logging.WARNING]
    assert "not kept" in warning.getMessage() and "so_no_such_database" in warning.getMessage()


def test_folder_store_writes_whole_files_or_none(tmp_path):
    store = FolderArtifactStore(tmp_path)

    class Broken(io.BytesIO):
        def read(self, *args):  # the process dies mid-copy, say
            if self.tell() > 0:
                raise OSError("source went away")
            return super().read(4)

    with pytest.raises(OSError):
        store.write("x", Broken(b"0123456789"))
    assert list(tmp_path.iterdir()) == []
    store.write("x", io.BytesIO(b"whole"))
    assert [p.name for p in tmp_path.iterdir()] == ["x"] and store.open_reader("x").read() == b"whole"
    with pytest.raises(ValueError):
        store.write("../escape", io.BytesIO(b""))


# --- S3 with a prefix --------------------------------------------------------------------------


def test_prefixed_store_puts_every_key_under_the_prefix(tmp_path):
    store = PrefixedArtifactStore(FolderArtifactStore(tmp_path), "/team/exp1/")
    store.write("a1", io.BytesIO(b"w"))
    assert (tmp_path / "team" / "exp1" / "a1").read_bytes() == b"w"
    assert store.open_reader("a1").read() == b"w"
    store.remove("a1")
    assert not (tmp_path / "team" / "exp1" / "a1").exists()


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 server on a free local port; boto3 in this process and its children talk to it."""
    pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        yield env
    finally:
        server.stop()


@pytest.mark.slow
def test_s3_prefix_is_honoured_by_workers_and_best_model(s3_server, tiny_digits, tmp_path):
    import boto3

    boto3.client("s3").create_bucket(Bucket="weights-bucket")
    spec = tiny_digits(name="s3w", trials=2, counts=(60,), epochs=2)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    location = "s3://weights-bucket/team/exp1"
    done = run_cli("run", str(spec), "--storage", url, "--threads", "1", "--artifacts", location, env={**ENV, **s3_server})
    assert done.returncode == 0, done.stderr
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="weights-bucket").get("Contents", [])]
    kept = {t.user_attrs[ATTR_ARTIFACT] for t in _trials(url) if ATTR_ARTIFACT in t.user_attrs}
    assert kept and sorted(keys) == sorted(f"team/exp1/{a}" for a in kept)
    assert not (tmp_path / "store.db-artifacts").exists()

    exp = scaling_optuna.load_experiment(spec, storage=url)
    assert exp.best_model(60, artifacts=location) is not None
    with pytest.raises(StorageError, match="are not in s3://weights-bucket"):
        exp.best_model(60, artifacts="s3://weights-bucket")  # the bucket's root holds none of them


def test_the_dashboard_listing_key_is_optunas():
    """Weights are listed under the key optuna.artifacts.upload_artifact uses (written after the weights here)."""
    from optuna.artifacts import _upload

    from scaling_optuna.storages.artifacts import DASHBOARD_ATTR_PREFIX

    assert DASHBOARD_ATTR_PREFIX == _upload.ARTIFACTS_ATTR_PREFIX


# --- Only the best keep_models weights per size stay -------------------------------------------

KEEP = 2


def _keep_spec(folder, name: str, keep: int = KEEP, trials: int = 4, counts=(60, 120)):
    return write_spec(folder, f"keep_models = {keep}\n" + digits_spec_text(name, trials, counts, 2, whole_epochs=True), f"{name}.toml")


def _kept_by_rank(url: str, keep: int = KEEP) -> dict[str, set[str]]:
    """Per study, the weights the report's ranking keeps: those of its best ``keep`` measured trials."""
    storage = optuna.storages.RDBStorage(url)
    try:
        out = {}
        for s in optuna.get_all_study_summaries(storage):
            trials = optuna.load_study(study_name=s.study_name, storage=storage).get_trials()
            assert all(ATTR_ARTIFACT in t.user_attrs for t in trials if t.state == TrialState.COMPLETE)
            out[s.study_name] = {t.user_attrs[ATTR_ARTIFACT] for t in rank_trials(trials)[:keep]}
        return out
    finally:
        storage.engine.dispose()


def _assert_best_models_load(spec, url: str, artifacts: str | None = None) -> None:
    exp = scaling_optuna.load_experiment(spec, storage=url)
    for size in exp.sizes:
        assert exp.best_trial(size).trial_number == rank_trials(exp.trials(size))[0].number
        assert exp.best_model(size, artifacts=artifacts) is not None


def _trial_with_weights(study: optuna.Study, store, value: float | None, state: TrialState = TrialState.COMPLETE) -> str:
    """A trial that uploads weights as a worker does, then ends in ``state``; returns its artifact id."""
    trial = study.ask()
    trial.set_user_attr("test_error", 0.1)
    artifact_id = save_state_dict(trial, {"w": torch.zeros(2)}, store)
    study.tell(trial, value, state=state)
    return artifact_id


def test_weights_beyond_the_best_go_ranked_as_the_report_ranks(tmp_path):
    store = FolderArtifactStore(tmp_path / "weights")
    study = optuna.create_study()
    ids = {v: _trial_with_weights(study, store, v) for v in (0.5, 0.2, 0.9, 0.2)}  # 0.2 twice: the earlier wins
    failed = _trial_with_weights(study, store, None, TrialState.FAIL)  # taken over after its upload
    by_hand = study.ask()
    study.tell(by_hand, 0.01)  # completed by hand: no test error, no weights, never ranked
    pruner = WeightPruner(lambda: store, keep=2, rank=rank_trials)
    removed = pruner.prune(study.get_trials(deepcopy=False))
    assert sorted(removed) == sorted([ids[0.5], ids[0.9], failed])
    kept = sorted(p.name for p in (tmp_path / "weights").iterdir())
    best_two = [t.user_attrs[ATTR_ARTIFACT] for t in rank_trials(study.get_trials())[:2]]
    assert kept == sorted(best_two) and len(kept) == 2
    assert pruner.prune(study.get_trials(deepcopy=False)) == []  # nothing new: no store call at all


def test_an_upload_whose_trial_never_recorded_it_is_removed(tmp_path):
    """The worker died between writing the weights and recording them: the id it noted finds them."""
    store = FolderArtifactStore(tmp_path)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s")
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("s"), study.ask().number)
    storage.set_trial_system_attr(trial_id, UPLOAD_ATTR, "orphan")
    store.write("orphan", io.BytesIO(b"weights"))
    pruner = WeightPruner(lambda: store, keep=3, rank=rank_trials)
    assert pruner.prune(study.get_trials()) == []  # still running: its upload may be under way
    storage.set_trial_state_values(trial_id, TrialState.FAIL)  # its worker was lost
    assert pruner.prune(study.get_trials()) == ["orphan"]
    assert list(tmp_path.iterdir()) == []


def test_keeping_none_opens_no_store_until_there_is_something_to_remove(tmp_path):
    opened = []
    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    pruner = WeightPruner(lambda: opened.append(1) or FolderArtifactStore(tmp_path), keep=0, rank=rank_trials)
    assert pruner.prune(study.get_trials()) == [] and opened == []
    _trial_with_weights(study, FolderArtifactStore(tmp_path), 0.3)  # left by an earlier run that kept weights
    assert len(pruner.prune(study.get_trials())) == 1 and opened == [1]
    assert list(tmp_path.iterdir()) == []


def test_pruners_racing_on_one_study_keep_exactly_the_best(tmp_path):
    """Several workers finish at once and prune on their own views: the best weights always stay."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    storage = open_storage(url, create=True)
    study = optuna.create_study(storage=storage, study_name="race")
    store = FolderArtifactStore(tmp_path / "weights")
    workers = 4
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        own = optuna.load_study(study_name="race", storage=open_storage(url))
        pruner = WeightPruner(lambda: store, keep=KEEP, rank=rank_trials)
        try:
            barrier.wait()
            for j in range(3):
                _trial_with_weights(own, store, (7 * i + 3 * j) % 11 / 10)
                pruner.prune(own.get_trials(deepcopy=False))
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    best = {t.user_attrs[ATTR_ARTIFACT] for t in rank_trials(study.get_trials())[:KEEP]}
    left = {p.name for p in (tmp_path / "weights").iterdir()}
    # No pruner removed a best one; the last to finish saw every trial and left exactly the best.
    assert best <= left
    WeightPruner(lambda: store, keep=KEEP, rank=rank_trials).prune(study.get_trials())
    assert {p.name for p in (tmp_path / "weights").iterdir()} == best


@pytest.mark.parametrize("mode, expected", [(0o750, 0o640), (0o775, 0o664), (0o777, 0o664), (0o700, 0o600)])
def test_weight_files_follow_the_folder_and_are_never_world_writable(tmp_path, mode, expected):
    folder = tmp_path / "weights"
    folder.mkdir()
    folder.chmod(mode)
    FolderArtifactStore(folder).write("a", io.BytesIO(b"w"))
    assert (folder / "a").stat().st_mode & 0o777 == expected


@pytest.mark.slow
def test_a_folder_beside_sqlite_keeps_the_best_per_size_after_two_workers(tmp_path):
    spec = _keep_spec(tmp_path, "keepdir")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "store.db-artifacts").mkdir(mode=0o750)
    done = run_cli("run", str(spec), "--storage", url, "--workers", "2", "--threads", "1", env=ENV)
    assert done.returncode == 0, done.stderr
    kept = _kept_by_rank(url)
    files = list((tmp_path / "store.db-artifacts").iterdir())
    assert sorted(p.name for p in files) == sorted(set().union(*kept.values()))
    assert len(files) == KEEP * 2
    assert all(p.stat().st_mode & 0o777 == 0o640 for p in files)  # the group that reads the folder reads them
    _assert_best_models_load(spec, url)


@pytest.mark.slow
def test_a_postgres_store_keeps_the_best_rows_per_size_after_two_workers(postgres_url, tmp_path):
    spec = _keep_spec(tmp_path, "keeprows")
    done = run_cli("run", str(spec), "--storage", postgres_url, "--workers", "2", "--threads", "1", cwd=tmp_path, env=ENV)
    assert done.returncode == 0, done.stderr
    kept = _kept_by_rank(postgres_url)
    rows = DatabaseArtifactStore(postgres_url).artifact_ids()
    assert sorted(rows) == sorted(set().union(*kept.values())) and len(rows) == KEEP * 2
    _assert_best_models_load(spec, postgres_url)


@pytest.mark.slow
def test_an_s3_prefix_keeps_the_best_keys_per_size_after_two_workers(s3_server, tmp_path):
    import boto3

    boto3.client("s3").create_bucket(Bucket="kept")
    spec = _keep_spec(tmp_path, "keeps3")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    location = "s3://kept/exp"
    done = run_cli("run", str(spec), "--storage", url, "--workers", "2", "--threads", "1", "--artifacts", location, env={**ENV, **s3_server})
    assert done.returncode == 0, done.stderr
    kept = _kept_by_rank(url)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="kept").get("Contents", [])]
    assert sorted(keys) == sorted(f"exp/{a}" for a in set().union(*kept.values())) and len(keys) == KEEP * 2
    _assert_best_models_load(spec, url, artifacts=location)


@pytest.mark.slow
def test_grpc_workers_keep_the_best_files_per_size(tmp_path):
    from tests.test_proxy import _free_port
    from tests.test_proxy import _proxy
    from tests.test_proxy import _wait_listening

    spec = _keep_spec(tmp_path, "keepgrpc")
    port = _free_port()
    proxy, log = _proxy(tmp_path, "behind.db", port)
    try:
        _wait_listening(proxy, log)
        url = f"grpc://127.0.0.1:{port}"
        done = run_cli("run", str(spec), "--storage", url, "--workers", "2", "--threads", "1", cwd=tmp_path, env=ENV)
        assert done.returncode == 0, done.stderr
    finally:
        proxy.kill()
        proxy.wait()
    behind = f"sqlite:///{tmp_path / 'behind.db'}"
    kept = _kept_by_rank(behind)
    files = sorted(p.name for p in (tmp_path / "scaling-optuna-artifacts").iterdir())
    assert files == sorted(set().union(*kept.values())) and len(files) == KEEP * 2
    _assert_best_models_load(spec, behind, artifacts=str(tmp_path / "scaling-optuna-artifacts"))


@pytest.mark.slow
def test_the_next_worker_cleans_up_and_keep_models_0_keeps_none(tmp_path):
    """Weights left beyond the best (a worker died before pruning, or keep_models was lowered) go when a worker starts."""
    spec = _keep_spec(tmp_path, "cleanup", keep=5, trials=4, counts=(60,))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    done = run_cli("run", str(spec), "--storage", url, "--threads", "1", env=ENV)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "store.db-artifacts"
    assert len(list(folder.iterdir())) == 4  # keep 5 of 4: every one stays

    lowered = _keep_spec(tmp_path, "cleanup", keep=1, trials=4, counts=(60,))
    done = run_cli("worker", str(lowered), "--storage", url, env=ENV)
    assert done.returncode == 0 and "no trials left" in done.stdout, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(_kept_by_rank(url, keep=1)["cleanup-n0000060"])
    _assert_best_models_load(lowered, url)

    none = _keep_spec(tmp_path, "cleanup", keep=0, trials=4, counts=(60,))
    done = run_cli("worker", str(none), "--storage", url, env=ENV)
    assert done.returncode == 0, done.stderr
    assert list(folder.iterdir()) == []
