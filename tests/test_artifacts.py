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
from scaling_optuna.storages.artifacts import ATTR_ARTIFACT
from scaling_optuna.storages.artifacts import DatabaseArtifactStore
from scaling_optuna.storages.artifacts import FolderArtifactStore
from scaling_optuna.storages.artifacts import PrefixedArtifactStore
from scaling_optuna.storages.artifacts import artifact_location
from scaling_optuna.storages.artifacts import open_artifact_store
from scaling_optuna.storages.artifacts import save_state_dict
from scaling_optuna.errors import StorageError
from tests.conftest import run_cli

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
