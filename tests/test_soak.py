"""Soak: 150 trials while a harness keeps killing and restarting workers.

Workers are real processes on a real SQLite store. Every few seconds the harness
sends SIGKILL or SIGTERM to a random worker and starts a replacement. At the end
every study must hold its full budget, no trial may be stuck, every finished
trial must carry its values and attributes, and the report must run.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest
from optuna.trial import TrialState

import scaling_optuna
from tests import forked_cli
from tests.conftest import digits_spec_text
from tests.conftest import run_cli
from tests.conftest import write_spec

SIZES = (40, 80, 160)
TRIALS = 50
WORKERS = 3
KILLS = 8
DEADLINE_S = 360

SOAK_SPEC = digits_spec_text("soak", TRIALS, SIZES, 3)


def _start_worker(spec, url):
    return forked_cli.start(
        ["--log-level", "warning", "worker", str(spec), "--storage", url, "--threads", "1", "--heartbeat", "1", "--grace", "3"],
        stdout=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_soak_with_random_kills(tmp_path):
    spec = write_spec(tmp_path, SOAK_SPEC, "soak.toml")
    url = f"sqlite:///{tmp_path / 'soak.db'}"
    assert run_cli("create", str(spec), "--storage", url).returncode == 0

    rng = random.Random(0)
    workers = [_start_worker(spec, url) for _ in range(WORKERS)]
    born = {w.pid: time.monotonic() for w in workers}
    kills = {"SIGKILL": 0, "SIGTERM": 0}
    sigterm_exits: list[int] = []
    started = time.monotonic()
    errors: list[str] = []
    try:
        while sum(kills.values()) < KILLS and time.monotonic() - started < DEADLINE_S / 2:
            time.sleep(rng.uniform(1.0, 2.0))
            alive = [w for w in workers if w.poll() is None]
            if not alive:
                break
            victim = min(alive, key=lambda w: born[w.pid])  # the oldest: past its start-up
            # SIGTERM goes to workers past their start-up (as a scheduler's would); a
            # process still importing Python modules has no handler yet. SIGKILL hits anyone.
            settled = time.monotonic() - born[victim.pid] > 3
            sig = rng.choice([signal.SIGKILL, signal.SIGTERM]) if settled else signal.SIGKILL
            victim.send_signal(sig)
            kills[sig.name] += 1
            if sig == signal.SIGTERM:
                try:
                    sigterm_exits.append(victim.wait(timeout=30))
                except subprocess.TimeoutExpired:
                    sigterm_exits.append(-1)
            else:
                victim.wait()
            workers.append(_start_worker(spec, url))
            born[workers[-1].pid] = time.monotonic()
        for w in workers:
            remaining = DEADLINE_S - (time.monotonic() - started)
            try:
                w.wait(timeout=max(1.0, remaining))
            except subprocess.TimeoutExpired:
                rows = scaling_optuna.load_experiment(spec, storage=url).status()
                pytest.fail(f"workers still running after {DEADLINE_S} s; status: {rows}")
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
            err = w.stderr.read() if w.stderr else ""
            if "Traceback" in err or "database is locked" in err:
                errors.append(err)
    elapsed = time.monotonic() - started

    exp = scaling_optuna.load_experiment(spec, storage=url)
    retried = failed = 0
    for size in exp.sizes:
        trials = exp.trials(size, states=tuple(TrialState))
        states = [t.state for t in trials]
        assert TrialState.RUNNING not in states and TrialState.WAITING not in states, f"size {size}: {states}"
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) >= TRIALS, f"size {size}: only {len(finished)} of {TRIALS} finished"
        for t in trials:
            if t.state == TrialState.COMPLETE:
                assert t.value is not None
                assert {"test_loss", "test_error", "n_params", "epochs_run", "val_error"} <= set(t.user_attrs)
        failed += states.count(TrialState.FAIL)
        retried += sum(1 for t in trials if "failed_trial" in getattr(t, "system_attrs", {}))
    assert all(code == 0 for code in sigterm_exits), sigterm_exits
    assert not errors, errors[0][-2000:]
    for size in exp.sizes:
        assert exp.best_model(size) is not None  # the best weights survived the kills
    report = run_cli("report", str(spec), "--storage", url, "--out", str(tmp_path / "report"), "--no-publish")
    assert report.returncode == 0, report.stderr
    total = sum(len(exp.trials(s, states=(TrialState.COMPLETE, TrialState.PRUNED))) for s in exp.sizes)
    print(
        f"\nsoak: {kills['SIGKILL']} SIGKILL + {kills['SIGTERM']} SIGTERM, {len(workers)} worker processes, "
        f"{failed} failed trials, {retried} retried, {total} finished trials of {len(SIZES) * TRIALS} budgeted, "
        f"{elapsed:.0f} s"
    )
    assert sum(kills.values()) >= 6
