"""A store of experiments on the same digits subsets whose trials follow known laws, for the comparison's tests.

The studies are real (``create_experiment``: fingerprints, attributes, the
queued baseline); their trials are written with Optuna directly, as a worker
would write them, so that every answer of a comparison can be checked
against the law behind it in seconds.  The chosen configuration of every
size has two re-runs, and every trial records training seconds that grow as
``m^SECONDS_EXPONENT``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

import scaling_optuna
from scaling_optuna.spec import suggest_params
from tests.conftest import TINY_DIGITS
from tests.conftest import write_spec

SIZES = (60, 120, 240, 480, 960)
SECONDS_EXPONENT = 0.8
# The best configuration's test error of each experiment: "half" needs half the data "ref" needs for any error
# (k = 2), "copy" is "ref" with other small noise, "flat" falls slower and crosses "ref" at (2 / 0.5)^4 = 256.
LAWS: dict[str, Callable[[float], float]] = {
    "ref": lambda m: 2.0 * m**-0.5,
    "half": lambda m: 2.0 * (2.0 * m) ** -0.5,
    "copy": lambda m: 2.0 * m**-0.5,
    "flat": lambda m: 0.5 * m**-0.25,
}
CROSSING = 256.0
# Small deterministic run-to-run noise: each size's three runs scatter by a few percent.
NOISE = {
    "ref": (1.0, 1.03, 0.97),
    "half": (1.0, 0.98, 1.02),
    "copy": (1.02, 0.99, 1.0),
    "flat": (1.0, 1.02, 0.98),
}


def make_store(folder: Path, names=tuple(LAWS)) -> str:
    """Create each experiment of ``names`` in one SQLite store in ``folder`` and write its trials; returns the URL."""
    url = f"sqlite:///{folder / 'store.db'}"
    for name in names:
        path = spec_path(folder, name)
        exp = scaling_optuna.create_experiment(scaling_optuna.load_spec(path), url)
        for size in SIZES:
            _write_size(exp.studies[size], exp.spec, size, LAWS[name], NOISE[name])
    return url


def spec_path(folder: Path, name: str, *, seed: int = 0, counts=SIZES) -> Path:
    text = TINY_DIGITS.format(name=name, trials=4, counts=list(counts), epochs=2).replace("seed = 0\n", f"seed = {seed}\n", 1)
    return write_spec(folder, text, f"{name}.toml")


def _write_size(study: optuna.Study, spec, size: int, law: Callable[[float], float], noise: tuple[float, ...]) -> None:
    error = law(size)
    seconds = 0.02 * size**SECONDS_EXPONENT
    # The queued untuned baseline, trained as a worker would (ask pops it): worse than the tuned model.
    trial = study.ask()
    suggest_params(trial, spec.search_space)
    for key, value in _attrs(error * 1.3, seconds).items():
        trial.set_user_attr(key, value)
    study.tell(trial, 3.0 * error * 1.3)
    best = _complete(study, spec, 3.0 * error, _attrs(error * noise[0], seconds), params=0.5)
    for repeat, factor in enumerate(noise[1:]):
        slot = {"remeasure": {"rank": 0, "repeat": repeat}, "remeasure_of": best}
        _complete(study, spec, 3.0 * error * factor, {**_attrs(error * factor, seconds), **slot}, params=0.5)
    _complete(study, spec, 3.0 * error * 1.1, _attrs(error * 1.04, seconds), params=0.7)  # the runner-up
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={"wall_time_s": seconds / 3}))


def _attrs(error: float, seconds: float) -> dict:
    return {"test_error": error, "test_loss": 3.0 * error, "val_error": error, "n_params": 1000, "wall_time_s": seconds}


def _complete(study: optuna.Study, spec, value: float, attrs: dict, *, params: float) -> int:
    """A complete trial at the search space's point ``params`` of the way from each low to high; its number."""
    space = dict(spec.search_space)
    chosen = {k: d.low + params * (d.high - d.low) if isinstance(d, optuna.distributions.FloatDistribution) else int(d.low + params * (d.high - d.low)) for k, d in space.items()}
    study.add_trial(optuna.trial.create_trial(params=chosen, distributions=space, value=value, user_attrs=attrs, state=TrialState.COMPLETE))
    return study.get_trials(deepcopy=False)[-1].number
