"""Worker logs a person and a log collector can follow: one line per trial, text or JSON lines."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import subprocess
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState

import scaling_optuna
from scaling_optuna.logs import configure_logging
from tests import forked_cli
from tests.conftest import TINY_DIGITS
from tests.conftest import run_cli
from tests.conftest import write_spec

TRIAL_FIELDS = {"study", "size", "trial", "state", "val_loss", "test_error", "epochs", "seconds", "worker"}



def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_hold_the_message_and_every_extra_field(restore_logging):
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = logging.getLogger("scaling_optuna.worker")
    log.info("size %d trial %d complete", 60, 3, extra={"size": 60, "trial": 3, "val_loss": float("nan"), "worker": "h:1"})
    log.debug("not shown at info")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it broke")
    first, second = _json_lines(out.getvalue())
    assert first["message"] == "size 60 trial 3 complete" and first["level"] == "info"
    assert first["logger"] == "scaling_optuna.worker" and first["time"].endswith("+00:00")
    assert (first["size"], first["trial"], first["worker"]) == (60, 3, "h:1")
    assert first["val_loss"] is None  # NaN is not JSON
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_optuna_and_python_warnings_come_out_as_json_too(restore_logging):
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    optuna.logging.get_logger("optuna.study.study").warning("an Optuna warning")
    warnings.warn("a Python warning", UserWarning)
    records = _json_lines(out.getvalue())
    assert [r["level"] for r in records] == ["warning", "warning"]
    assert "an Optuna warning" in records[0]["message"] and "a Python warning" in records[1]["message"]


def test_a_python_warning_is_one_line_without_its_source(restore_logging):
    out = io.StringIO()
    configure_logging("info", "text", stream=out)
    warnings.warn("Argument ``group`` is an experimental feature.\nThe interface can change.", optuna.exceptions.ExperimentalWarning)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        "WARNING py.warnings: ExperimentalWarning: Argument ``group`` is an experimental feature. The interface can change."
    ), lines


def test_configuring_again_replaces_its_own_handler_only(restore_logging):
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    configure_logging("warning", "text", stream=second)
    logging.getLogger("scaling_optuna").warning("once")
    logging.getLogger("scaling_optuna").info("below the level")
    assert first.getvalue() == ""
    assert second.getvalue().count("\n") == 1 and "WARNING scaling_optuna: once" in second.getvalue()
    assert other in logging.getLogger().handlers


@pytest.mark.parametrize("level, fmt", [("loud", "text"), ("info", "xml")])
def test_configure_logging_refuses_unknown_names(level, fmt):
    with pytest.raises(ValueError, match="is not one of"):
        configure_logging(level, fmt)


@pytest.mark.slow
def test_a_worker_logs_one_json_line_per_trial(tiny_digits, tmp_path):
    spec = tiny_digits(trials=3, counts=(60, 120), epochs=2)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert run_cli("create", str(spec), "--storage", url).returncode == 0
    # The shared flags after the command, where a compose file or a script puts them.
    done = run_cli("worker", str(spec), "--storage", url, "--trials", "2", "--log-format", "json", "--log-level", "info")
    assert done.returncode == 0, done.stderr
    records = _json_lines(done.stderr)  # every line parses: nothing of another shape
    trials = [r for r in records if r.get("event") == "trial_finished"]
    assert len(trials) == 4
    for r in trials:
        assert TRIAL_FIELDS <= set(r) and r["level"] == "info"
        assert r["state"] in ("complete", "pruned") and r["study"] == f"tiny-n{r['size']:07d}"
        assert r["epochs"] >= 1 and r["val_loss"] > 0
        assert r["message"].startswith(f"size {r['size']} trial {r['trial']} {r['state']}")
    complete = [r for r in trials if r["state"] == "complete"]
    assert complete and all(0 <= r["test_error"] <= 1 and r["seconds"] > 0 for r in complete)
    assert {r["event"] for r in records} >= {"worker_started", "worker_done"}
    # The worker's own summary stays on stdout, out of the collector's stream.
    assert done.stdout.startswith("worker done (no trials left)")
    # --trials set the budget in the store, for every worker and for `status`.
    assert [(r.budget, r.finished) for r in scaling_optuna.load_experiment(spec, storage=url).status()] == [(2, 2), (2, 2)]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_trial_handed_back_on_sigterm_gets_its_own_line_and_no_failure(fmt, tmp_path):
    # No early stop: the trial trains until the signal comes.
    spec = write_spec(tmp_path, TINY_DIGITS.format(name="tiny", trials=2, counts=[960], epochs=10_000).replace("patience = 2", "patience = 10000"))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert run_cli("create", str(spec), "--storage", url).returncode == 0
    worker = forked_cli.start(["worker", str(spec), "--storage", url, "--threads", "1", "--log-format", fmt])
    try:
        _wait_for_a_running_trial(url, "tiny-n0000960", worker)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert "Trial" not in err and "StopRequested" not in err  # no Optuna "Trial N failed" warning
    if fmt == "json":
        records = _json_lines(err)
        (handed,) = [r for r in records if r.get("event") == "trial_handed_back"]
        assert handed["state"] == "handed_back" and handed["level"] == "info" and handed["trial"] == 0
        assert [r["event"] for r in records if r["level"] != "info"] == ["stop_requested"]
        assert not any(r.get("event") == "trial_finished" for r in records)
    else:
        assert "received SIGTERM: stopping the running trial at its next training step and handing it back" in err
        assert re.search(r"INFO scaling_optuna.worker: size 960 trial 0 handed back in [\d.]+ s \(stop requested; queued to re-run", err), err
        assert " WARNING " not in err.replace("WARNING scaling_optuna.worker: received SIGTERM", "")
    assert "1 handed back" in out
    # `status` counts the hand-back apart from failures, and the trial waits to run again.
    status = run_cli("status", str(spec), "--storage", url)
    assert status.returncode == 0
    row = status.stdout.splitlines()[1].split()
    assert row[-7:] == ["0", "0", "0", "1", "0", "0", "2"]  # complete pruned failed handed-back lost running waiting
    (exp_row,) = scaling_optuna.load_experiment(spec, storage=url).status()
    assert (exp_row.failed, exp_row.handed_back, exp_row.waiting) == (0, 1, 2)


def _wait_for_a_running_trial(url: str, study_name: str, worker: subprocess.Popen) -> None:
    """Return once the worker trains a trial (a guard against a hang, not a time bound)."""
    storage = optuna.storages.RDBStorage(url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
        except KeyError:  # not there yet
            trials = []
        if any(t.state == TrialState.RUNNING and t.intermediate_values for t in trials):
            return
        time.sleep(0.2)
    raise AssertionError(f"no trial ran (worker exit code {worker.poll()})")
