"""A finished experiment is re-opened and extended without redoing work."""

from __future__ import annotations

import optuna
import pytest

import scaling_optuna
from tests.conftest import run_cli


def _finished(url: str, name: str) -> dict[int, tuple]:
    study = optuna.load_study(study_name=name, storage=url)
    return {
        t.number: (t.state, t.value, t.params, t.datetime_complete)
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished()
    }


@pytest.mark.slow
def test_more_trials_and_a_larger_size_reuse_finished_work(tiny_digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    small = tiny_digits(name="grow", trials=2, counts=(60, 240), epochs=3)
    assert run_cli("run", str(small), "--storage", url).returncode == 0
    before = {name: _finished(url, name) for name in ("grow-n0000060", "grow-n0000240")}

    # The same experiment with one more, larger size and a bigger budget.
    larger = tiny_digits(name="grow", trials=3, counts=(60, 240, 480), epochs=3)
    result = run_cli("run", str(larger), "--storage", url)
    assert result.returncode == 0, result.stderr

    exp = scaling_optuna.load_experiment(larger, storage=url)
    assert exp.sizes == [60, 240, 480]
    for name, trials in before.items():
        after = _finished(url, name)
        assert all(after[number] == record for number, record in trials.items())  # nothing redone
        assert len(after) == 3  # one new trial reaches the new budget
    assert len(_finished(url, "grow-n0000480")) == 3
    assert [b.size for b in exp.best_trials()] == [60, 240, 480]
