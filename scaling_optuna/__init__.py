"""scaling-optuna: how does test error fall as the training set grows?

One Optuna study per training-set size, workers that train and prune trials
on any number of machines, and a fitted learning curve ε(m) ≈ α·m^β + γ.

Example::

    import scaling_optuna

    exp = scaling_optuna.load_experiment("studies/digits.toml")
    print(exp.best_trials())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaling_optuna._lazy import lazy_names

from scaling_optuna.errors import DataError
from scaling_optuna.errors import DeviceError
from scaling_optuna.errors import ExperimentMismatchError
from scaling_optuna.errors import SpecError
from scaling_optuna.errors import StorageError
from scaling_optuna.errors import UnknownSizeError
from scaling_optuna.errors import UserError
from scaling_optuna.errors import WorkerError

if TYPE_CHECKING:
    from scaling_optuna.experiment import Configuration
    from scaling_optuna.experiment import Experiment
    from scaling_optuna.experiment import SizeStatus
    from scaling_optuna.experiment import TrialRecord
    from scaling_optuna.experiment import create_experiment
    from scaling_optuna.experiment import load_experiment
    from scaling_optuna.compare import Comparison
    from scaling_optuna.compare import compare_experiments
    from scaling_optuna.compare import write_comparison
    from scaling_optuna.report import Report
    from scaling_optuna.report import build_report
    from scaling_optuna.report import write_report
    from scaling_optuna.fit import DataNeeded
    from scaling_optuna.fit import Prediction
    from scaling_optuna.fit import ScalingLawFit
    from scaling_optuna.fit import fit_least_squares
    from scaling_optuna.fit import fit_log_log_line
    from scaling_optuna.fit import fit_scaling_law
    from scaling_optuna.spec import ExperimentSpec
    from scaling_optuna.spec import RemeasureSpec
    from scaling_optuna.spec import load_spec
    from scaling_optuna.spec import parse_spec
    from scaling_optuna.worker import WorkerSummary
    from scaling_optuna.worker import run_worker

# Imported on first use: the report pulls in SciPy and the worker torch, which every
# command would otherwise load at start.
_LAZY = {
    "Configuration": "experiment",
    "Experiment": "experiment",
    "SizeStatus": "experiment",
    "TrialRecord": "experiment",
    "create_experiment": "experiment",
    "load_experiment": "experiment",
    "Comparison": "compare",
    "compare_experiments": "compare",
    "write_comparison": "compare",
    "Report": "report",
    "build_report": "report",
    "write_report": "report",
    "DataNeeded": "fit",
    "Prediction": "fit",
    "ScalingLawFit": "fit",
    "fit_least_squares": "fit",
    "fit_log_log_line": "fit",
    "fit_scaling_law": "fit",
    "ExperimentSpec": "spec",
    "RemeasureSpec": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "WorkerSummary": "worker",
    "run_worker": "worker",
}


__getattr__, __dir__ = lazy_names("scaling_optuna", _LAZY, globals())


__all__ = sorted(
    [
        "DataError",
        "DeviceError",
        "ExperimentMismatchError",
        "SpecError",
        "StorageError",
        "UnknownSizeError",
        "UserError",
        "WorkerError",
        *_LAZY,
    ]
)
