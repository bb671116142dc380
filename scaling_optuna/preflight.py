"""Pre-flight: everything a worker would trip on, checked before anything is written.

``create``, ``run`` and ``worker`` call :func:`check_runnable` once the spec
is parsed and the data loaded (both validate themselves), before the store is
opened: a spec that parses but cannot train, a sampler or pruner that fails
when first used, a model that does not fit the data, or a device this machine
does not have ends there with one line, instead of five failed trials in
every worker. The user's plug-ins are imported and tried once: the builder's
signature against the search space, its model on one batch, and the
objective on a few hundred examples until it reports a finite loss.

Example::

    from scaling_optuna.data import load_dataset
    from scaling_optuna.preflight import check_runnable
    from scaling_optuna.spec import load_spec

    spec = load_spec("studies/digits.toml")
    device = check_runnable(spec, load_dataset(spec), "auto")
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import optuna
import torch
from torch.nn import functional as F

from scaling_optuna.data import Dataset
from scaling_optuna.errors import DeviceError
from scaling_optuna.errors import SpecError
from scaling_optuna.model import build_model
from scaling_optuna.objective import EpochReport
from scaling_optuna.objective import objective_arguments
from scaling_optuna.objective import run_objective
from scaling_optuna.plugins import Plugin
from scaling_optuna.plugins import PluginError
from scaling_optuna.plugins import check_keywords
from scaling_optuna.plugins import load_plugins
from scaling_optuna.plugins import required_keywords
from scaling_optuna.spec import DEVICE_NAMES
from scaling_optuna.spec import MODEL_PARAMS
from scaling_optuna.spec import OPTIMIZER_PARAMS
from scaling_optuna.spec import SEED_MODULUS
from scaling_optuna.spec import TRAINER_PARAMS
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.spec import is_device_name
from scaling_optuna.spec import suggest_params
from scaling_optuna.train import CPU_EVAL_BATCH
from scaling_optuna.train import DivergedError

# A model this small, on inputs this small, is measured on the CPU (a few MB for a batch of two).
_CPU_PROBE_PARAMS = 4_000_000
_CPU_PROBE_INPUT = 3 * 64 * 64
# Trials the sampler proposes, and epochs the pruner judges, in the trial run.
_TRIAL_RUN_TRIALS = 4
_TRIAL_RUN_STEPS = 3
# Examples of each set the objective's trial run gets: enough for a batch or two, and quick.
_OBJECTIVE_TRIAL_EXAMPLES = 256
# What every builder is called with besides the model's parameters.
_BUILDER_ARGUMENTS = ("input_shape", "n_classes")


def check_runnable(spec: ExperimentSpec, data: Dataset, device: str | None = None, *, workers: int = 1) -> torch.device:
    """Check that workers can train ``spec`` on ``data``; return the resolved device.

    The largest model of the search space, and the baseline, must fit the
    memory a worker has (:func:`training_memory`); the smallest model is then
    built and run forwards and backwards on one example on the CPU: its shapes
    do not depend on the device, and ``run`` would otherwise hold a GPU
    context in the parent process for nothing.

    Args:
        device: the device this process will train on (``auto``, ``cpu``,
            ``cuda``, ``cuda:N``, ``mps``), or None where this process only
            creates the studies and trains nothing (``create``): then the
            device is not resolved here, since the workers may run elsewhere,
            and the models must fit this machine's memory.
        workers: how many workers of this process share the device (``run --workers``).

    Raises:
        SpecError: the sampler or pruner fails when used, a model needs more
            memory than a worker has, or the model does not fit the data.
        DeviceError: ``device`` is not a device name, or this machine lacks it.
    """
    target = resolve_device(device) if device is not None else torch.device("cpu")
    _try_sampler_and_pruner(spec)
    plugins = load_plugins(spec.plugin_paths, spec.python_path)
    builder, objective = plugins.get("model.builder"), plugins.get("trainer.objective")
    # An objective that does not name `model` builds its own: the spec's model is never built then.
    builds_model = objective is None or "model" in objective_arguments(objective)
    if builds_model:
        if builder is not None:
            _check_builder_signature(spec, builder)
        else:
            # a built-in model's memory is estimated on the meta device; a user's network may not build there
            _check_memory(spec, data, target, workers)
        if objective is not None:
            _check_widths_for_objective(spec, objective)
        _try_model(spec, data, builder)
    if objective is not None:
        _try_objective(spec, data, objective, builder)
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
        _try_seeds(spec)
        study = optuna.create_study(direction="minimize", sampler=spec.create_sampler(), pruner=spec.create_pruner())
        for _ in range(_TRIAL_RUN_TRIALS):
            try:
                study.optimize(objective, n_trials=1)
            except SpecError:
                raise
            except Exception as e:  # whatever the sampler raises, a worker would raise in every trial
                raise SpecError(_failure(spec.sampler, "sampler", e)) from None


def _try_seeds(spec: ExperimentSpec) -> None:
    """Build the sampler with the lowest and highest seed a worker's offset can give it (they wrap at 2**32)."""
    seed = spec.sampler.options.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return
    for offset in (-seed, SEED_MODULUS - 1 - seed):
        if offset:
            _used(spec.sampler, "sampler", lambda: spec.create_sampler(offset))


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


def training_memory(spec: ExperimentSpec, data: Dataset, params: Mapping[str, Any], *, eval_on_cpu: bool = True) -> int:
    """Bytes a worker needs to train the model with ``params`` on the largest size: an estimate.

    The model is built on PyTorch's ``meta`` device, which allocates nothing,
    however wide its layers: the weights count 20 bytes per parameter (weight,
    gradient, momentum, the best epoch's copy, a spare), the activations what
    autograd saves for the backward pass of one training batch (or the
    evaluation batch, if larger), and the data twice (kept, and its
    standardised copy). Measured against the peak memory of real training on
    the CPU it was within 0.6-1.4×.

    Example::

        from scaling_optuna.data import load_dataset
        from scaling_optuna.spec import load_spec

        spec = load_spec("studies/digits.toml")
        print(training_memory(spec, load_dataset(spec), spec.default_params) / 2**20, "MiB")
    """
    size = max(spec.sizes.resolve(data.pool_size))
    batch = spec.batch_size_for(size, params)
    eval_batch = min(spec.trainer.eval_batch_size, CPU_EVAL_BATCH) if eval_on_cpu else spec.trainer.eval_batch_size
    model, device = _probe_model(spec, data, params)
    n_params = sum(p.numel() for p in model.parameters())
    saved_1, largest_1 = _saved_for_backward(model, data.input_shape, 1, device)
    saved_2, largest_2 = _saved_for_backward(model, data.input_shape, 2, device)
    # Per example: the difference of two batch sizes leaves out what does not grow with the batch.
    per_example, largest = saved_2 - saved_1, largest_2 - largest_1
    activations = max(per_example * batch + 2 * largest * batch, 2 * largest * eval_batch)
    inputs = sum(t.numel() * t.element_size() for t in (data.x_pool, data.x_val, data.x_test))
    return 20 * n_params + activations + 2 * inputs


def _probe_model(spec: ExperimentSpec, data: Dataset, params: Mapping[str, Any]) -> tuple[torch.nn.Module, str]:
    """The model with ``params``, and the device its memory is measured on.

    It is built on the meta device, which allocates nothing. A small one is
    built again on the CPU: the bytes saved for backward are the same there, and
    PyTorch's meta kernels import its compiler on first use, seconds of every ``create``.
    """
    with torch.device("meta"):
        model = build_model(spec.model, data.input_shape, data.num_classes, params)
    if sum(p.numel() for p in model.parameters()) <= _CPU_PROBE_PARAMS and math.prod(data.input_shape) <= _CPU_PROBE_INPUT:
        return build_model(spec.model, data.input_shape, data.num_classes, params), "cpu"
    return model, "meta"


def _saved_for_backward(model: torch.nn.Module, input_shape: tuple[int, ...], batch: int, device: str) -> tuple[int, int]:
    """(bytes saved for the backward pass, the largest saved tensor) of one ``batch`` through ``model`` on ``device``."""
    sizes: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        sizes[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    x = torch.zeros((batch, *input_shape), device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        F.cross_entropy(model(x), y)
    return sum(sizes.values()), max(sizes.values(), default=0)


def worker_memory(device: torch.device, workers: int = 1) -> int:
    """The memory one of ``workers`` workers training on ``device`` has: the GPU's, or this machine's RAM, shared."""
    if device.type == "cuda":
        gpus = _cuda_count()
        per_gpu = -(-workers // gpus) if device.index is None else workers
        return torch.cuda.get_device_properties(device.index or 0).total_memory // max(1, per_gpu)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        # A container's limit (cgroup v2), where there is one, is what the workers get.
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        total = min(total, int(limit)) if limit.isdigit() else total
    except OSError:
        pass
    return total // max(1, workers)


def _check_memory(spec: ExperimentSpec, data: Dataset, device: torch.device, workers: int) -> None:
    """Refuse a search space whose largest model, or a baseline, needs more memory than a worker has."""
    have = worker_memory(device, workers)
    on_cpu = device.type == "cpu"
    # Layer widths and the batch size decide the memory; lr, momentum and weight decay do not.
    widths = [name for name in spec.search_space if name not in OPTIMIZER_PARAMS]
    top = {name: _highest(dist) for name, dist in spec.search_space.items()}
    cases = [("search_space", top, "the largest model of the search space")]
    if spec.default_params:
        cases.append(("default_params", {**top, **spec.default_params}, "the untuned baseline"))
    for table, params, what in cases:
        try:
            need = training_memory(spec, data, params, eval_on_cpu=on_cpu)
        except (ValueError, RuntimeError):
            return  # a model that does not fit the data: _try_model says why
        if need <= have:
            continue
        lower = {name: {**params, name: _lowest(spec.search_space[name])} for name in widths}
        culprit = min(widths, key=lambda name: training_memory(spec, data, lower[name], eval_on_cpu=on_cpu), default=None)
        key = f"{table}.{culprit}" + (".high" if table == "search_space" and _is_range(spec.search_space[culprit]) else "")
        shown = ", ".join(f"{name} = {params[name]}" for name in widths)
        raise SpecError(
            f"{key if culprit else table}: {what} ({shown}) needs about {_gb(need)} to train, more than the "
            f"{_gb(have)} a worker has {_where(device, workers)}; lower {key if culprit else 'its widths'}"
        )


def _where(device: torch.device, workers: int) -> str:
    place = f"on {device}" if device.type == "cuda" else "in this machine's memory"
    return place + (f" shared by {workers} workers" if workers > 1 else "")


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB" if n_bytes >= 2**30 / 10 else f"{n_bytes / 2**20:,.0f} MiB"


def _highest(distribution: optuna.distributions.BaseDistribution) -> Any:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return max(distribution.choices)
    return distribution.high


def _is_range(distribution: optuna.distributions.BaseDistribution) -> bool:
    return not isinstance(distribution, optuna.distributions.CategoricalDistribution) and distribution.low != distribution.high


def _check_builder_signature(spec: ExperimentSpec, builder: Plugin) -> None:
    """The builder takes the data's shape and classes, and the search space's names are its own."""
    if not builder.takes_any_keyword():
        lacking = [name for name in _BUILDER_ARGUMENTS if name not in builder.parameters()]
        if lacking:
            raise SpecError(
                f"model.builder: {builder.path} takes no {' or '.join(lacking)}; every builder is called as "
                "builder(input_shape=..., n_classes=..., **model_params): add them to its signature"
            )
    for name in _BUILDER_ARGUMENTS:
        if name in spec.search_space:
            raise SpecError(f"search_space.{name}: a builder's {name} comes from the data; remove it from the search space")
    if spec.trainer.objective is None:
        # With the built-in trainer every other name goes to the builder: one it lacks would do nothing.
        check_keywords(builder, [k for k in spec.search_space if k not in TRAINER_PARAMS], "search_space")
    for name in required_keywords(builder):
        if name in _BUILDER_ARGUMENTS:
            continue
        if name in TRAINER_PARAMS:
            raise SpecError(f"model.builder: {builder.path} requires {name!r}, a parameter of the trainer that builders do not get; rename it")
        if name not in spec.search_space:
            raise SpecError(
                f"search_space: missing {name}, which model.builder {builder.path} requires; "
                "add it (a fixed value or a {low, high} table)"
            )


def _try_model(spec: ExperimentSpec, data: Dataset, builder: Plugin | None) -> None:
    """Build the model at the bottom of the search space and train it one step on two examples.

    Two, not one: a user's network with batch normalisation cannot train on a batch of one.
    """
    params = {name: _lowest(dist) for name, dist in spec.search_space.items()}
    smallest = min(spec.sizes.resolve(data.pool_size))
    x, y = data.train_subset(min(2, data.pool_size))
    # Building draws initial weights: keep the caller's random stream as it was.
    with torch.random.fork_rng(devices=[]):
        try:
            model = build_model(spec.model, data.input_shape, data.num_classes, params, data.input_stats(smallest), builder=builder)
            logits = model.train()(x)
            if builder is not None:
                _check_logits(builder, tuple(logits.shape), len(x), data.num_classes)
            F.cross_entropy(logits, y).backward()
        except SpecError:
            raise
        except PluginError as e:
            raise SpecError(f"{e}; fix the builder") from None
        except (ValueError, RuntimeError, TypeError) as e:
            if builder is not None:
                shape = "×".join(str(d) for d in (len(x), *data.input_shape))
                raise SpecError(
                    f"model.builder {builder.path}: its model fails on one batch of the data ({_first_line(e)}); "
                    f"it must take inputs of {shape} and return logits of {len(x)}×{data.num_classes}"
                ) from None
            if isinstance(e, TypeError):
                raise
            raise SpecError(
                f"model.kind: the {spec.model} model cannot train on this data ({_first_line(e)}); "
                f"{_model_fix(spec.model, data.input_shape)}"
            ) from None


def _check_logits(builder: Plugin, shape: tuple[int, ...], batch: int, num_classes: int) -> None:
    if shape != (batch, num_classes):
        raise SpecError(
            f"model.builder {builder.path}: its model returns shape {shape} for a batch of {batch}; "
            f"it must return ({batch}, {num_classes}): one logit per class (n_classes)"
        )


def _check_widths_for_objective(spec: ExperimentSpec, objective: Plugin) -> None:
    """A built-in model handed to the objective needs its widths, which the spec does not require then."""
    missing = [name for name in MODEL_PARAMS.get(spec.model, ()) if name not in spec.search_space]
    if missing:
        raise SpecError(
            f"search_space: missing {', '.join(missing)}, needed by the {spec.model} model that "
            f"trainer.objective {objective.path} takes; add them, or build the model in the objective"
        )


def _try_objective(spec: ExperimentSpec, data: Dataset, objective: Plugin, builder: Plugin | None) -> None:
    """Run the objective once on a few hundred examples, on the CPU, until it reports a finite loss."""
    takes = objective_arguments(objective)
    n = min(_OBJECTIVE_TRIAL_EXAMPLES, min(spec.sizes.resolve(data.pool_size)))
    report = EpochReport(max_epochs=spec.trainer.max_epochs, patience=spec.trainer.patience, trying=True)
    with _quiet_optuna(), torch.random.fork_rng(devices=[]):
        study = optuna.create_study(direction="minimize")
        if spec.default_params:
            study.enqueue_trial(dict(spec.default_params))
        trial = study.ask()
        params = suggest_params(trial, spec.search_space)
        model = build_model(spec.model, data.input_shape, data.num_classes, params, data.input_stats(n), builder=builder) if "model" in takes else None
        available = {
            "trial": trial, "params": params, "report": report, "model": model, "size": n, "device": torch.device("cpu"),
            "train": data.train_subset(n), "val": (data.x_val[:n], data.y_val[:n]), "test": (data.x_test[:n], data.y_test[:n]),
        }
        try:
            run_objective(objective, available, report)
        except PluginError as e:
            raise SpecError(f"{e}; fix the objective") from None
        except DivergedError as e:
            raise SpecError(f"trainer.objective {objective.path}: {e} in a trial run on {n} examples; check its loss and learning rate") from None
        except optuna.TrialPruned:
            return  # it stopped itself: nothing more to learn from this run
    if report.non_finite and report.best_epoch is None:
        raise SpecError(
            f"trainer.objective {objective.path} reported a non-finite validation loss ({report.non_finite[0]}) in every "
            f"one of {len(report.non_finite)} epoch(s) of a trial run on {n} examples; check its loss and learning rate"
        )


def _lowest(distribution: optuna.distributions.BaseDistribution) -> Any:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        numbers = [c for c in distribution.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        return min(numbers) if len(numbers) == len(distribution.choices) else distribution.choices[0]
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
