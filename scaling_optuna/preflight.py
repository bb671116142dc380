"""Pre-flight: everything a worker would trip on, checked before anything is written.

``create``, ``run`` and ``worker`` call :func:`check_runnable` once the spec
is parsed and the data loaded (both validate themselves), before the store is
opened: a spec that parses but cannot train, a sampler or pruner that fails
when first used, a model that does not fit the data, or a device this machine
does not have ends there with one line, instead of five failed trials in
every worker.

Example::

    from scaling_optuna.data import load_dataset
    from scaling_optuna.preflight import check_runnable
    from scaling_optuna.spec import load_spec

    spec = load_spec("studies/digits.toml")
    device = check_runnable(spec, load_dataset(spec), "auto")
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator

import optuna
import torch
from torch.nn import functional as F

from scaling_optuna.data import Dataset
from scaling_optuna.errors import DeviceError
from scaling_optuna.errors import SpecError
from scaling_optuna.model import build_model
from scaling_optuna.spec import DEVICE_NAMES
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.spec import is_device_name
from scaling_optuna.spec import suggest_params

# Trials the sampler proposes, and epochs the pruner judges, in the trial run.
_TRIAL_RUN_TRIALS = 4
_TRIAL_RUN_STEPS = 3


def check_runnable(spec: ExperimentSpec, data: Dataset, device: str | None = None) -> torch.device:
    """Check that workers can train ``spec`` on ``data``; return the resolved device.

    The model is built and run forwards and backwards on one example on the
    CPU: its shapes do not depend on the device, and ``run`` would otherwise
    hold a GPU context in the parent process for nothing.

    Args:
        device: the device this process will train on (``auto``, ``cpu``,
            ``cuda``, ``cuda:N``, ``mps``), or None where this process only
            creates the studies and trains nothing (``create``): then the
            device is not resolved here, since the workers may run elsewhere.

    Raises:
        SpecError: the sampler or pruner fails when used, or the model does not fit the data.
        DeviceError: ``device`` is not a device name, or this machine lacks it.
    """
    target = resolve_device(device) if device is not None else torch.device("cpu")
    _try_sampler_and_pruner(spec)
    _try_model(spec, data)
    return target


def resolve_device(name: str) -> torch.device:
    """The device ``name`` stands for on this machine: ``auto`` picks CUDA, then Apple's MPS, then the CPU.

    Raises:
        DeviceError: ``name`` is not a device name, or this machine lacks the device.
    """
    if not is_device_name(name):
        raise DeviceError(f"device {name!r} is not a device; use {DEVICE_NAMES}")
    if name == "auto":
        if _cuda_count():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = _cuda_count()
        if count == 0:
            built = "" if torch.version.cuda else " (this torch is built without CUDA)"
            raise DeviceError(f"device {name!r}: this machine has no CUDA GPU{built}; train on cpu or auto (--device, or trainer.device in the spec)")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {name!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}; pick one of those")
    if device.type == "mps" and not _mps_available():
        raise DeviceError(f"device {name!r}: Apple's MPS is not available here; train on cpu or auto (--device, or trainer.device in the spec)")
    return device


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def _try_sampler_and_pruner(spec: ExperimentSpec) -> None:
    """Run a few trials of the spec's search space through its sampler and pruner, in memory.

    The spec already checked the options' types; this catches what only shows
    in use, such as a GridSampler whose grid misses a parameter. Each trial
    goes through ``study.optimize(n_trials=1)``, as in a worker.
    """

    def objective(trial: optuna.Trial) -> float:
        suggest_params(trial, spec.search_space)
        for step in range(1, _TRIAL_RUN_STEPS + 1):
            trial.report(1.0 / (step + trial.number), step)
            if _used(spec.pruner, "pruner", trial.should_prune):
                raise optuna.TrialPruned()
        return 1.0 / (_TRIAL_RUN_STEPS + trial.number)

    with _quiet_optuna():
        study = optuna.create_study(direction="minimize", sampler=spec.create_sampler(), pruner=spec.create_pruner())
        for _ in range(_TRIAL_RUN_TRIALS):
            try:
                study.optimize(objective, n_trials=1)
            except SpecError:
                raise
            except Exception as e:  # whatever the sampler raises, a worker would raise in every trial
                raise SpecError(_failure(spec.sampler, "sampler", e)) from None


def _used(component: Any, kind: str, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except Exception as e:  # whatever the Optuna class raises, a worker would raise it in every trial
        raise SpecError(_failure(component, kind, e)) from None


def _failure(component: Any, kind: str, error: BaseException) -> str:
    return f"{kind}: {component.name} fails when used ({type(error).__name__}: {_first_line(error)}); fix the [{kind}] table"


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """No 'study created' or 'trial failed' lines and no warnings from the trial run."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _try_model(spec: ExperimentSpec, data: Dataset) -> None:
    """Build the model at the bottom of the search space and train it one step on one example."""
    params = {name: _lowest(dist) for name, dist in spec.search_space.items()}
    smallest = min(spec.sizes.resolve(data.pool_size))
    # Building draws initial weights: keep the caller's random stream as it was.
    with torch.random.fork_rng(devices=[]):
        try:
            model = build_model(spec.model, data.input_shape, data.num_classes, params, data.input_stats(smallest))
            x, y = data.train_subset(1)
            F.cross_entropy(model(x), y).backward()
        except (ValueError, RuntimeError) as e:
            raise SpecError(
                f"model.kind: the {spec.model} model cannot train on this data ({_first_line(e)}); "
                f"{_model_fix(spec.model, data.input_shape)}"
            ) from None


def _lowest(distribution: optuna.distributions.BaseDistribution) -> Any:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return min(distribution.choices)
    return distribution.low


def _model_fix(model: str, input_shape: tuple[int, ...]) -> str:
    if model == "cnn" and len(input_shape) != 3:
        return 'use kind = "mlp" for vectors, or give images as N×C×H×W arrays'
    if model == "cnn":
        return 'use kind = "mlp", or images of at least 4×4'
    return "check the data's shape"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
