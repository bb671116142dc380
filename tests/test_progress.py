"""Progress of `run` and `status --watch`: counts, trials per minute, an ETA weighted by size."""

from __future__ import annotations

import pytest

from scaling_optuna.experiment import SizeStatus
from scaling_optuna.progress import Tally
from scaling_optuna.progress import clock
from scaling_optuna.progress import eta_seconds
from scaling_optuna.progress import next_command
from scaling_optuna.progress import progress_line
from scaling_optuna.progress import status_table
from scaling_optuna.progress import tally
from scaling_optuna.progress import trials_per_minute


def _row(size: int, budget: int, **counts) -> SizeStatus:
    return SizeStatus(size=size, study_name=f"x-n{size:07d}", budget=budget, **counts)


def test_tally_counts_a_size_over_its_budget_as_its_budget():
    # Two workers may both start a study's last trial: 5 finished of a budget of 4.
    now = tally([_row(100, 4, complete=4, pruned=1), _row(400, 4, complete=1, running=2, waiting=1, handed_back=1)])
    assert (now.finished, now.total, now.running, now.waiting, now.handed_back) == (5, 8, 2, 1, 1)
    assert now.work_done == 4 * 100 + 1 * 400
    assert now.work_left == 3 * 400
    assert not now.done


def test_no_rate_or_eta_before_a_trial_finishes_since_watching_began():
    start = tally([_row(100, 4, complete=2)])  # finished before: a resumed run says nothing about this run's pace
    assert trials_per_minute(start, start, 600) is None
    assert eta_seconds(start, start, 600) is None
    line = progress_line(start, start, 600)
    assert "ETA after the first trial" in line and "trials/min" not in line


def test_the_eta_weights_the_work_left_by_size():
    """Two trials of 1000 examples took 60 s: four of 1000 and four of 100 take 4·1000 + 4·100 examples' time."""
    start = tally([_row(100, 4), _row(1000, 6)])
    now = tally([_row(100, 4), _row(1000, 6, complete=2, running=1)])
    assert trials_per_minute(now, start, 60) == pytest.approx(2.0)
    assert eta_seconds(now, start, 60) == pytest.approx((4 * 1000 + 4 * 100) / (2 * 1000 / 60))


def test_the_eta_is_zero_once_nothing_is_left_and_the_line_then_drops_it():
    start = tally([_row(100, 2)])
    now = tally([_row(100, 2, complete=1, pruned=1)])
    assert eta_seconds(now, start, 30) == 0.0
    assert now.done
    line = progress_line(now, start, 30)
    assert line == "[0:00:30] 2/2 trials finished (1 complete, 1 pruned, 0 failed) · 0 running"


def test_a_running_last_trial_is_not_done():
    now = tally([_row(100, 2, complete=2, running=1)])  # a second worker's extra trial still runs
    assert not now.done


def test_starting_workers_are_named_until_a_trial_runs():
    start = tally([_row(100, 2)])
    assert "workers starting" in progress_line(start, start, 3, starting=True)
    running = tally([_row(100, 2, running=1)])
    assert "1 running" in progress_line(running, start, 8, starting=True)
    assert "0 running" in progress_line(start, start, 3)


def test_hand_backs_and_lost_trials_are_shown_apart_from_failures_only_when_there_are_any():
    start = tally([_row(100, 4)])
    quiet = progress_line(tally([_row(100, 4, complete=1)]), start, 60)
    assert "handed back" not in quiet and "lost" not in quiet
    busy = progress_line(tally([_row(100, 4, complete=1, failed=1, handed_back=2, lost=1)]), start, 60)
    assert "1 failed, 2 handed back, 1 lost" in busy


def test_status_table_has_a_column_per_ending():
    table = status_table([_row(60, 3, complete=1, failed=1, handed_back=2, lost=1, running=1, waiting=2)]).splitlines()
    assert table[0].split() == ["size", "study", "budget", "re-runs", "complete", "pruned", "failed", "handed", "back", "lost", "running", "waiting"]
    assert table[1].split() == ["60", "x-n0000060", "3", "0/0", "1", "0", "1", "2", "1", "1", "2"]


def test_re_runs_count_in_the_total_and_the_work_left():
    row = SizeStatus(100, "x-n0000100", budget=4, repeats=2, complete=5, repeats_finished=1)
    now = tally([row])
    assert (now.finished, now.total, now.work_left) == (5, 6, 100)
    assert status_table([row]).splitlines()[1].split()[3] == "1/2"


@pytest.mark.parametrize(
    "spec, storage, expected",
    [
        ("studies/digits.toml", None, "scaling-optuna report studies/digits.toml"),
        ("studies/digits.toml", "sqlite:///my.db", "scaling-optuna report studies/digits.toml --storage sqlite:///my.db"),
        ("my spec.toml", "postgresql://u:***@h/db", "scaling-optuna report 'my spec.toml' --storage 'postgresql://u:***@h/db'"),
    ],
)
def test_next_command_is_quoted_for_the_shell(spec, storage, expected):
    assert next_command("report", spec, storage) == expected


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (59.6, "0:01:00"), (3599, "0:59:59"), (90061, "25:01:01")])
def test_clock(seconds, text):
    assert clock(seconds) == text


def test_an_empty_experiment_is_done():
    assert Tally().done and progress_line(Tally(), Tally(), 0).startswith("[0:00:00] 0/0 trials finished")
