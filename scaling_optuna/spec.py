"""Experiment specs: one TOML file describes one scaling experiment.

A spec names the dataset, the ladder of training-set sizes, the model and its
search space, the trainer, the sampler and pruner, and the trials per size.
:func:`load_spec` validates all of it and names the offending key in its error.

Example::

    from scaling_optuna.spec import load_spec

    spec = load_spec("studies/digits.toml")
    print(spec.name, spec.trials_per_size, list(spec.search_space))
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import inspect
import json
import math
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from scaling_optuna.errors import SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


DATASETS = ("cifar10", "digits", "fashion-mnist", "imagefolder", "mnist1d", "npz")
MODELS = ("auto", "cnn", "mlp")
# The model and dataset names of a spec that brings its own: [model] builder, [data] loader.
BUILDER = "builder"
LOADER = "loader"
# "package.module:function", as [model] builder, [data] loader and [trainer] objective name a plug-in.
_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
NORMALIZATIONS = ("subset", "none")
DEFAULT_STORAGE = "sqlite:///scaling-optuna.db"
DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
TOP_LEVEL_KEYS = {
    "name",
    "seed",
    "trials_per_size",
    "storage",
    "data",
    "sizes",
    "model",
    "search_space",
    "default_params",
    "trainer",
    "sampler",
    "pruner",
    "artifacts",
    "keep_models",
    "python_path",
    "remeasure",
    "costs",
}

# The seed notebook's random search: lr 10^U(-6,-1), weight decay 10^U(-6,-3),
# momentum 10^U(-1,0), and the four layer widths.
SEED_SEARCH_SPACE: dict[str, BaseDistribution] = {
    "lr": FloatDistribution(1e-6, 1e-1, log=True),
    "weight_decay": FloatDistribution(1e-6, 1e-3, log=True),
    "momentum": FloatDistribution(0.1, 1.0, log=True),
    "conv1": IntDistribution(10, 100),
    "conv2": IntDistribution(10, 100),
    "fc1": IntDistribution(30, 200),
    "fc2": IntDistribution(30, 200),
}
# The PyTorch tutorial's network and optimiser, which the seed trained before tuning.
SEED_DEFAULT_PARAMS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 1e-6,
    "momentum": 0.9,
    "conv1": 6,
    "conv2": 16,
    "fc1": 120,
    "fc2": 84,
}
MODEL_PARAMS = {
    "cnn": ("conv1", "conv2", "fc1", "fc2"),
    "mlp": ("fc1", "fc2"),
}
OPTIMIZER_PARAMS = ("lr", "weight_decay", "momentum")
# The built-in trainer's own parameters; every other one goes to the model (a builder's keyword arguments).
TRAINER_PARAMS = (*OPTIMIZER_PARAMS, "batch_size")
# Documented maximums: a budget or a ladder beyond them queues trials for hours, which a
# typo (an extra zero) should not start. README.md, "The experiment spec".
MAX_TRIALS_PER_SIZE = 10_000
MAX_SIZES = 1_000
MAX_QUEUED_TRIALS = 100_000
# Optuna's study name column holds 512 characters (optuna.storages._rdb.models.MAX_INDEXED_STRING_LENGTH,
# checked by tests/test_spec_limits.py); a study is named <name>-n<size in 7 digits>.
MAX_NAME_LENGTH = 512 - len("-n0000000")
# Samplers seed numpy's RandomState, which takes 0..2**32-1: a worker's seed wraps around.
SEED_MODULUS = 2**32


@dataclasses.dataclass(frozen=True)
class ParamRange:
    """The values a hyperparameter may take, for its search range, choices and default.

    ``low_open`` excludes ``low`` itself. ``text`` completes "must be ...".
    """

    text: str
    low: float
    high: float = math.inf
    low_open: bool = False
    integer: bool = False

    def contains(self, value: Any) -> bool:
        if not _is_number(value) or not math.isfinite(value):
            return False
        if self.integer and not _is_int(value):
            return False
        above_low = value > self.low if self.low_open else value >= self.low
        return above_low and value <= self.high

    def check(self, value: Any, where: str) -> None:
        """Raise a SpecError naming ``where`` unless ``value`` lies in the range."""
        if not self.contains(value):
            raise SpecError(f"{where}: {value!r} must be {self.text}")


_WIDTH = ParamRange("a positive integer", 1, integer=True)
# What torch's SGD accepts (it refuses lr < 0, momentum < 0, weight_decay < 0), narrowed
# where a value cannot train: lr = 0 never moves, momentum above 1 makes every update grow.
PARAM_RANGES: dict[str, ParamRange] = {
    "lr": ParamRange("a learning rate > 0", 0.0, low_open=True),
    "weight_decay": ParamRange("a weight decay ≥ 0", 0.0),
    "momentum": ParamRange("a momentum between 0 and 1", 0.0, 1.0),
    "conv1": _WIDTH,
    "conv2": _WIDTH,
    "fc1": _WIDTH,
    "fc2": _WIDTH,
    "batch_size": _WIDTH,
}


def is_device_name(text: str) -> bool:
    """Whether ``text`` names a device a spec or ``--device`` may give: auto, cpu, cuda, cuda:N, mps."""
    return _DEVICE_PATTERN.fullmatch(text) is not None


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Where the examples come from and how the validation and test sets are carved."""

    dataset: str
    root: str = "data"
    path: str | None = None
    download: bool = True
    validation_size: int | None = None
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    num_samples: int = 25000
    # "subset": each size is standardised with its own training subset's statistics
    # (per channel or per feature), which the trained model carries; "none": raw inputs.
    normalize: str = "subset"
    # "package.module:function" returning (x_train, y_train, x_test, y_test); dataset is then LOADER.
    loader: str | None = None


@dataclasses.dataclass(frozen=True)
class SizesSpec:
    """A doubling ladder from ``start_fraction`` of the pool to all of it, or explicit counts."""

    start_fraction: float | None = None
    counts: tuple[int, ...] | None = None

    def resolve(self, pool_size: int) -> list[int]:
        """Training-set sizes in examples for a pool of ``pool_size`` examples."""
        if self.counts is not None:
            too_big = [c for c in self.counts if c > pool_size]
            if too_big:
                raise SpecError(
                    f"sizes.counts: {too_big[0]} is larger than the training pool of {pool_size} "
                    f"examples; use counts up to {pool_size}"
                )
            return list(self.counts)
        assert self.start_fraction is not None
        fractions = [self.start_fraction]
        while fractions[-1] * 2 < 1.0 - 1e-9:
            fractions.append(fractions[-1] * 2)
        fractions.append(1.0)
        sizes = sorted({max(1, int(round(f * pool_size))) for f in fractions})
        if sizes[0] < 2:
            raise SpecError(
                f"sizes.start_fraction: {self.start_fraction} of {pool_size} examples is "
                "fewer than 2 examples; raise start_fraction"
            )
        return sizes


@dataclasses.dataclass(frozen=True)
class TrainerSpec:
    """Epoch budget, early stopping and batch sizes."""

    max_epochs: int = 15
    patience: int = 3
    batch_size: int = 64
    # Small subsets would get one or two SGD steps per epoch at the full batch size;
    # the batch shrinks so that every epoch takes at least this many steps.
    min_steps_per_epoch: int = 16
    eval_batch_size: int = 2048
    device: str = "auto"
    # "package.module:function": the user's training loop instead of the built-in one.
    objective: str | None = None


@dataclasses.dataclass(frozen=True)
class RemeasureSpec:
    """After a size's search, its ``top`` configurations re-trained ``repeats`` times with fresh seeds.

    ``repeats = 0`` turns re-measuring off. Which configurations the re-runs
    go to is :mod:`scaling_optuna.remeasure`'s. A ``top`` above the search
    budget is clipped to it, not refused: ``--trials`` may lower the budget
    below a ``top`` the spec was right to ask for.
    """

    top: int = 2
    repeats: int = 2

    def trials(self, search_budget: int) -> int:
        """How many re-measure trials a study with ``search_budget`` search trials queues.

        Example::

            >>> RemeasureSpec(top=2, repeats=3).trials(12), RemeasureSpec(top=5, repeats=2).trials(3)
            (6, 6)
        """
        return min(self.top, search_budget) * self.repeats


@dataclasses.dataclass(frozen=True)
class CostsSpec:
    """What data and compute cost, for ``scaling-optuna compare``: per collected example and per device hour.

    ``None`` is not given. Neither decides what a trial computes, so neither is in the compatibility hash.
    """

    per_example: float | None = None
    per_gpu_hour: float | None = None


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """An Optuna sampler or pruner: its class name and keyword arguments."""

    name: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """A validated experiment spec. Build it with :func:`load_spec` or :func:`parse_spec`."""

    name: str
    seed: int
    trials_per_size: int
    storage: str
    data: DataSpec
    sizes: SizesSpec
    model: str
    search_space: Mapping[str, BaseDistribution]
    default_params: Mapping[str, Any]
    trainer: TrainerSpec
    sampler: ComponentSpec
    pruner: ComponentSpec
    artifacts: str | None = None
    keep_models: int = 3
    remeasure: RemeasureSpec = RemeasureSpec()
    costs: CostsSpec = CostsSpec()
    path: str | None = None
    # [model] builder = "package.module:function" (then ``model`` is BUILDER).
    builder: str | None = None
    # Folders put in front of sys.path to import the plug-ins, absolute (the spec gives them relative to itself).
    python_path: tuple[str, ...] = ()

    @property
    def plugin_paths(self) -> dict[str, str]:
        """The spec's plug-ins, import paths by spec key (``model.builder``, ``data.loader``, ``trainer.objective``)."""
        paths = {"model.builder": self.builder, "data.loader": self.data.loader, "trainer.objective": self.trainer.objective}
        return {key: path for key, path in paths.items() if path}

    def batch_size_for(self, size: int, params: Mapping[str, Any]) -> int:
        """The batch size a trial on ``size`` examples trains with."""
        batch = int(params.get("batch_size", self.trainer.batch_size))
        return max(1, min(batch, math.ceil(size / self.trainer.min_steps_per_epoch)))

    def with_trials(self, trials_per_size: int) -> "ExperimentSpec":
        """The same spec with another trial budget per size."""
        check_trials(trials_per_size, "trials")
        return dataclasses.replace(self, trials_per_size=trials_per_size)

    def compatibility_hash(self) -> str:
        """Hash of everything that decides what one trial computes.

        Trials per size, re-measuring, the size ladder, the sampler, the pruner and the storage
        may change between runs of one experiment; the data, model, search space
        and trainer may not, or trials of two different experiments would mix.
        """
        content = {
            "name": self.name,
            "seed": self.seed,
            "data": _hashed_fields(self.data, "download"),
            "model": self.builder or self.model,
            "search_space": {
                k: optuna.distributions.distribution_to_json(v)
                for k, v in sorted(self.search_space.items())
            },
            "trainer": _hashed_fields(self.trainer, "device"),
        }
        blob = json.dumps(content, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def create_sampler(self, worker_seed_offset: int = 0) -> optuna.samplers.BaseSampler:
        """The spec's sampler. Workers pass a distinct offset: equal seeds would make
        parallel workers propose the very same parameters.

        The seed wraps around at 2**32, so that any offset (negative ones
        included) gives a seed every sampler takes::

            >>> spec = parse_spec({"name": "d", "data": {"dataset": "digits"}, "sizes": {"counts": [10]},
            ...                    "sampler": {"name": "RandomSampler", "seed": 4294967295}})
            >>> spec.create_sampler(5) is not None and spec.create_sampler(-5) is not None
            True
        """
        component = self.sampler
        if worker_seed_offset and _is_int(component.options.get("seed")):
            seed = (component.options["seed"] + worker_seed_offset) % SEED_MODULUS
            options = {**component.options, "seed": seed}
            component = dataclasses.replace(component, options=options)
        return _instantiate(optuna.samplers, component, "sampler")

    def create_pruner(self) -> optuna.pruners.BasePruner:
        return _instantiate(optuna.pruners, self.pruner, "pruner")


def _hashed_fields(part: Any, ignored: str) -> dict[str, Any]:
    """A spec part's fields for the compatibility hash: without ``ignored``, and without an unset plug-in.

    Leaving out a plug-in key that is not set keeps the hash of every spec
    written before plug-ins existed, so their stores open as before.
    """
    return {k: v for k, v in dataclasses.asdict(part).items() if k != ignored and not (k in ("loader", "objective") and v is None)}


def suggest_params(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """Ask ``trial`` for every parameter of ``space`` (a spec's ``search_space``).

    Example::

        trial = optuna.create_study().ask()
        params = suggest_params(trial, spec.search_space)   # {"lr": 0.1, "momentum": 0.9, ...}
    """
    params: dict[str, Any] = {}
    with warnings.catch_warnings():
        # The untuned baseline's widths (the seed's 6, 16, 120, 84) lie outside the tuned range on purpose.
        warnings.filterwarnings("ignore", message="Fixed parameter")
        for name, dist in space.items():
            if isinstance(dist, FloatDistribution):
                params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, IntDistribution):
                params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, CategoricalDistribution):
                params[name] = trial.suggest_categorical(name, dist.choices)
    return params


def check_trials(trials: Any, where: str) -> int:
    """``trials`` as a trial budget per size (1 … :data:`MAX_TRIALS_PER_SIZE`); ``where`` names it in the error.

    Example::

        >>> check_trials(20, "--trials")
        20
    """
    if not _is_int(trials) or trials <= 0:
        raise SpecError(f"{where}: {trials!r} must be a positive integer")
    if trials > MAX_TRIALS_PER_SIZE:
        raise SpecError(f"{where}: {trials:,} trials per size is above the maximum of {MAX_TRIALS_PER_SIZE:,}; give a smaller budget")
    return trials


def check_queued_trials(sizes: int, trials: int, where: str = "trials_per_size") -> None:
    """Refuse ``sizes`` × ``trials`` queued trials beyond :data:`MAX_QUEUED_TRIALS` (the store holds each as a row)."""
    if sizes * trials > MAX_QUEUED_TRIALS:
        raise SpecError(
            f"{where}: {sizes:,} sizes × {trials:,} trials is {sizes * trials:,} trials to queue, above the maximum of "
            f"{MAX_QUEUED_TRIALS:,}; give fewer trials per size or fewer sizes"
        )


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment spec from a TOML file.

    Raises:
        SpecError: the file is missing, is not valid TOML, or holds a bad value;
            the message names the key and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {str(path)!r} does not exist; pass the path of a .toml spec")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a UTF-8 text file; pass a TOML spec") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: invalid TOML ({e}); fix the syntax at that line") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise SpecError(f"{path}: arrays or tables nested too deeply to read; a spec needs only a few levels") from None
    spec = parse_spec(raw, folder=path.parent)
    return dataclasses.replace(spec, path=str(path))


def parse_spec(raw: Mapping[str, Any], folder: str | Path | None = None) -> ExperimentSpec:
    """Validate a spec given as a mapping (the parsed TOML).

    ``folder`` is where the spec's relative ``python_path`` folders start
    (the spec file's folder; default: the current directory).

    Example::

        spec = parse_spec({"name": "d", "data": {"dataset": "digits"}, "sizes": {"start_fraction": 0.25}})
        assert spec.model == "cnn"
    """
    _check_keys(raw, "", TOP_LEVEL_KEYS, required={"name", "data", "sizes"})
    data = _parse_data(_get(raw, "data", dict))
    model, builder = _parse_model(_get(raw, "model", dict, default={}), data)
    trainer = _parse_trainer(_get(raw, "trainer", dict, default={}))
    search_space = _parse_search_space(_get(raw, "search_space", dict, default=None), model, trainer.objective is not None)
    spec = ExperimentSpec(
        name=_parse_name(raw),
        seed=_parse_seed(raw),
        trials_per_size=check_trials(_positive(raw, "trials_per_size", default=20), "trials_per_size"),
        storage=_get(raw, "storage", str, default=DEFAULT_STORAGE),
        data=data,
        sizes=_parse_sizes(_get(raw, "sizes", dict)),
        model=model,
        search_space=search_space,
        default_params=_parse_default_params(_get(raw, "default_params", dict, default=None), search_space),
        trainer=trainer,
        sampler=_parse_component(_get(raw, "sampler", dict, default={"name": "TPESampler"}), "sampler"),
        pruner=_parse_component(_get(raw, "pruner", dict, default={"name": "MedianPruner"}), "pruner"),
        artifacts=_get(raw, "artifacts", str, default=None),
        keep_models=_parse_keep_models(raw),
        builder=builder,
        python_path=_parse_python_path(raw, Path(folder) if folder is not None else Path.cwd()),
        remeasure=_parse_remeasure(_get(raw, "remeasure", dict, default={})),
        costs=_parse_costs(_get(raw, "costs", dict, default={})),
    )
    # Instantiating now turns a bad option into a SpecError before anything runs.
    spec.create_sampler()
    spec.create_pruner()
    return spec


def _parse_name(raw: Mapping[str, Any]) -> str:
    name = _get(raw, "name", str)
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise SpecError(f"name: {name!r} must be non-empty letters, digits, '-', '_' or '.'")
    if len(name) > MAX_NAME_LENGTH:
        raise SpecError(
            f"name: {len(name)} characters, more than the {MAX_NAME_LENGTH} that fit Optuna's study names "
            f"(<name>-n<size>, at most 512 characters); use a shorter name"
        )
    return name


def _parse_seed(raw: Mapping[str, Any]) -> int:
    seed = _get(raw, "seed", int, default=0)
    if not 0 <= seed < 2**32:
        raise SpecError(f"seed: {seed} must be an integer in 0..2**32-1")
    return seed


def _parse_keep_models(raw: Mapping[str, Any]) -> int:
    keep_models = _get(raw, "keep_models", int, default=3)
    if keep_models < 0:
        raise SpecError(f"keep_models: {keep_models} must be 0 (keep no weights) or more")
    return keep_models


def _parse_remeasure(table: Mapping[str, Any]) -> RemeasureSpec:
    _check_keys(table, "remeasure", {"top", "repeats"})
    default = RemeasureSpec()
    top = _get(table, "top", int, default=default.top, where="remeasure")
    if top < 1:
        raise SpecError(f"remeasure.top: {top} must be a positive integer (the best configurations to re-train); turn re-measuring off with repeats = 0")
    repeats = _get(table, "repeats", int, default=default.repeats, where="remeasure")
    if repeats < 0:
        raise SpecError(f"remeasure.repeats: {repeats} must be 0 (off) or a positive integer (fresh-seed re-runs of each configuration)")
    return RemeasureSpec(top=top, repeats=repeats)


def _parse_costs(table: Mapping[str, Any]) -> CostsSpec:
    """``[costs]``: ``per_example`` and ``per_gpu_hour``, each a finite number ≥ 0 in one currency."""
    _check_keys(table, "costs", {"per_example", "per_gpu_hour"})
    values = {}
    for key in ("per_example", "per_gpu_hour"):
        value = _get(table, key, float, default=None, where="costs")
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise SpecError(f"costs.{key}: {value!r} must be a finite number ≥ 0 (a price in one currency, e.g. 0.05)")
        values[key] = value
    return CostsSpec(**values)


def _parse_python_path(raw: Mapping[str, Any], folder: Path) -> tuple[str, ...]:
    value = raw.get("python_path", [])
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise SpecError('python_path: must be a folder or a list of folders, e.g. python_path = ["."]')
    resolved = []
    for entry in entries:
        found = (folder / entry).resolve()
        if not found.is_dir():
            raise SpecError(
                f"python_path: {entry!r} is not a folder (looked for {found}, relative to the spec file); "
                "give the folder that holds your package"
            )
        resolved.append(str(found))
    return tuple(resolved)


def _parse_import_path(table: Mapping[str, Any], key: str, where: str) -> str:
    value = _get(table, key, str, where=where)
    if not _IMPORT_PATH.fullmatch(value):
        raise SpecError(f'{where}.{key}: {value!r} is not an import path; write "package.module:function"')
    return value


def _parse_model(table: Mapping[str, Any], data: DataSpec) -> tuple[str, str | None]:
    """The model's kind and, for the user's own model, the builder's import path."""
    _check_keys(table, "model", {"kind", "builder"})
    if "builder" in table:
        if "kind" in table:
            raise SpecError("model: give kind (a built-in model) or builder (your own function), not both")
        return BUILDER, _parse_import_path(table, "builder", "model")
    model = _get(table, "kind", str, default="auto", where="model")
    if model not in MODELS:
        raise SpecError(f"model.kind: unknown model {model!r}{_suggest(model, MODELS)}; use one of {', '.join(MODELS)}")
    if model == "auto":
        # Images get the seed's CNN; vectors (and npz arrays of any shape) an MLP.
        model = "cnn" if data.dataset in ("cifar10", "digits", "fashion-mnist", "imagefolder") else "mlp"
    return model, None


def _parse_data(table: Mapping[str, Any]) -> DataSpec:
    fields = {f.name for f in dataclasses.fields(DataSpec)}
    _check_keys(table, "data", fields, required=set() if "loader" in table else {"dataset"})
    if "loader" in table:
        if "dataset" in table:
            raise SpecError("data: give dataset (a built-in one) or loader (your own function), not both")
        dataset = LOADER
    else:
        dataset = _get(table, "dataset", str, where="data")
    if "validation_size" in table and "validation_fraction" in table:
        raise SpecError("data: validation_size and validation_fraction both given; keep one (a count of examples, or a share of the pool)")
    if dataset == "imagefolder" and "root" not in table:
        raise SpecError(
            'data.root: dataset "imagefolder" needs root = "folder": one subfolder of images per class, '
            "or train/ and test/ subfolders laid out so"
        )
    if dataset not in (*DATASETS, LOADER):
        raise SpecError(
            f"data.dataset: unknown dataset {dataset!r}{_suggest(dataset, DATASETS)}; "
            f"use one of {', '.join(DATASETS)}"
        )
    spec = DataSpec(
        dataset=dataset,
        root=_get(table, "root", str, default="data", where="data"),
        path=_get(table, "path", str, default=None, where="data"),
        download=_get(table, "download", bool, default=True, where="data"),
        validation_size=_get(table, "validation_size", int, default=None, where="data"),
        validation_fraction=_get(table, "validation_fraction", float, default=0.2, where="data"),
        test_fraction=_get(table, "test_fraction", float, default=0.2, where="data"),
        num_samples=_get(table, "num_samples", int, default=25000, where="data"),
        normalize=_get(table, "normalize", str, default="subset", where="data"),
        loader=_parse_import_path(table, "loader", "data") if "loader" in table else None,
    )
    _check_data(spec)
    return spec


def _check_data(data: DataSpec) -> None:
    if data.dataset == "npz" and not data.path:
        raise SpecError("data.path: dataset 'npz' needs path = \"your.npz\" (arrays x_train, y_train, x_test, y_test)")
    if data.validation_size is not None and data.validation_size <= 0:
        raise SpecError(f"data.validation_size: {data.validation_size} must be a positive integer")
    for key in ("validation_fraction", "test_fraction"):
        if not 0.0 < getattr(data, key) < 1.0:
            raise SpecError(f"data.{key}: {getattr(data, key)} must lie strictly between 0 and 1")
    if data.num_samples < 100:
        raise SpecError(f"data.num_samples: {data.num_samples} must be at least 100")
    if data.normalize not in NORMALIZATIONS:
        raise SpecError(
            f"data.normalize: {data.normalize!r}{_suggest(data.normalize, NORMALIZATIONS)} must be "
            "'subset' (each size standardised with its own training subset's statistics) or 'none' (raw inputs)"
        )


def _parse_sizes(table: Mapping[str, Any]) -> SizesSpec:
    _check_keys(table, "sizes", {"start_fraction", "counts"})
    if ("start_fraction" in table) == ("counts" in table):
        raise SpecError(
            "sizes: give exactly one of start_fraction (a doubling ladder, e.g. 0.005) "
            "or counts (a list of example counts)"
        )
    if "start_fraction" in table:
        start = _get(table, "start_fraction", float, where="sizes")
        if not 0.0 < start <= 1.0:
            raise SpecError(f"sizes.start_fraction: {start} must lie in (0, 1]")
        return SizesSpec(start_fraction=start)
    counts = table["counts"]
    if not isinstance(counts, list) or not counts or not all(_is_int(c) for c in counts):
        raise SpecError("sizes.counts: must be a non-empty list of integers, e.g. [100, 200, 400]")
    if any(c <= 0 for c in counts):
        raise SpecError(f"sizes.counts: {min(counts)} is not a positive count; use counts ≥ 1")
    if len(counts) > MAX_SIZES:
        raise SpecError(f"sizes.counts: {len(counts)} sizes, more than the maximum of {MAX_SIZES:,}; list fewer sizes")
    if len(set(counts)) != len(counts):
        raise SpecError("sizes.counts: duplicated count; list each size once")
    if list(counts) != sorted(counts):
        raise SpecError("sizes.counts: counts must be in increasing order")
    return SizesSpec(counts=tuple(int(c) for c in counts))


def _parse_search_space(
    table: Mapping[str, Any] | None, model: str, objective: bool
) -> dict[str, BaseDistribution]:
    """The search space: what the model and trainer take, and nothing they would ignore.

    A built-in model with the built-in trainer takes exactly its widths and the
    trainer's parameters. A builder takes any name (``create`` checks them
    against its signature), and so does the user's own objective.
    """
    needed = _needed_params(model, objective)
    if table is None:
        return {k: v for k, v in SEED_SEARCH_SPACE.items() if k in needed}
    if not table:
        raise SpecError("search_space: is empty; remove the table to use the seed's space, or list parameters")
    for key in table:
        _check_param_name(key, model, objective)
    space = {key: _parse_distribution(value, key) for key, value in table.items()}
    missing = [k for k in needed if k not in space]
    if missing:
        who = f"the {model} model and the trainer" if model in MODEL_PARAMS else "the built-in trainer"
        raise SpecError(
            f"search_space: missing {', '.join(missing)} needed by {who}; "
            "add them (a fixed number or a {low, high} table)"
        )
    return space


def _check_param_name(key: str, model: str, objective: bool) -> None:
    """Refuse a parameter nothing would use: ``conv1`` for the MLP, a typo of a built-in name."""
    if model in MODEL_PARAMS and not objective:
        _check_keys({key: None}, "search_space", {*TRAINER_PARAMS, *MODEL_PARAMS[model]}, unknown=f"the {model} model and the trainer take no such parameter")
    elif not key.isidentifier():
        raise SpecError(f"search_space.{key!r}: not a Python name, so no function can take it; use letters, digits and _")


def _parse_distribution(value: Any, param: str) -> BaseDistribution:
    where = f"search_space.{param}"
    if param not in PARAM_RANGES and isinstance(value, (str, bool)):
        return CategoricalDistribution([value])  # a fixed setting of the user's own model or loop
    allowed = PARAM_RANGES.get(param) or _custom_range(value)
    if _is_number(value):
        allowed.check(value, where)
        if allowed.integer:
            return IntDistribution(int(value), int(value))
        return FloatDistribution(float(value), float(value))
    if not isinstance(value, dict):
        raise SpecError(f"{where}: must be a number or a table like {{ low = 1e-4, high = 1e-1, log = true }}")
    if "choices" in value:
        return _parse_choices(value, where, allowed)
    return _parse_range(value, where, allowed)


def _parse_choices(value: Mapping[str, Any], where: str, allowed: ParamRange) -> CategoricalDistribution:
    _check_keys(value, where, {"choices"})
    choices = value["choices"]
    if not isinstance(choices, list) or not choices:
        raise SpecError(f"{where}.choices: must be a non-empty list, e.g. [16, 32, 64]")
    for choice in choices:
        if allowed is _ANY_VALUE:
            _check_custom_value(choice, f"{where}.choices")
        else:
            allowed.check(choice, f"{where}.choices")
    return CategoricalDistribution(choices)


# A parameter of the user's own model or loop: any finite number, integers staying integers
# (a width of 8 to 32 is searched as an integer); choices and fixed values may also be text or true/false.
_ANY_NUMBER = ParamRange("a finite number", -math.inf)
_ANY_INTEGER = ParamRange("an integer", -math.inf, integer=True)
_ANY_VALUE = ParamRange("a number, a string or true/false", -math.inf)


def _custom_range(value: Any) -> ParamRange:
    if isinstance(value, dict) and "choices" in value:
        return _ANY_VALUE
    bounds = [value] if not isinstance(value, dict) else [value[k] for k in ("low", "high", "step") if k in value]
    return _ANY_INTEGER if bounds and all(_is_int(b) for b in bounds) else _ANY_NUMBER


def _check_custom_value(value: Any, where: str) -> None:
    if isinstance(value, (str, bool)):
        return
    _ANY_NUMBER.check(value, where)


def _parse_range(value: Mapping[str, Any], where: str, allowed: ParamRange) -> BaseDistribution:
    _check_keys(value, where, {"low", "high", "log", "step"}, required={"low", "high"})
    low, high = value["low"], value["high"]
    allowed.check(low, f"{where}.low")
    allowed.check(high, f"{where}.high")
    if low > high:
        raise SpecError(f"{where}: low {low} is above high {high}; swap them")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise SpecError(f"{where}.log: must be true or false")
    if log and low <= 0:
        raise SpecError(f"{where}: a log-scaled range needs low > 0, got {low}")
    step = value.get("step")
    if step is not None and not (_is_number(step) and math.isfinite(step) and step > 0):
        raise SpecError(f"{where}.step: must be a positive number")
    if log and step is not None:
        raise SpecError(f"{where}: log and step cannot be combined; drop one")
    return _stepped(allowed.integer, low, high, log, step, where)


def _stepped(integer: bool, low: Any, high: Any, log: bool, step: Any, where: str) -> BaseDistribution:
    """The distribution, refused where Optuna would quietly cut its range down to a multiple of ``step``."""
    if integer and step is not None and not _is_int(step):
        raise SpecError(f"{where}.step: {step!r} must be a positive integer")
    kind, number = (IntDistribution, int) if integer else (FloatDistribution, float)
    low, high = number(low), number(high)
    step = number(step) if step is not None else (1 if integer else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's "will be replaced with" warning: the error below says it in one line
        distribution = kind(low, high, log=log, step=step)
    if distribution.high == high:
        return distribution
    if distribution.high == low:
        raise SpecError(f"{where}.step: {step:g} is larger than the range {low:g}..{high:g}; use a step of at most {high - low:g}")
    raise SpecError(
        f"{where}.step: the range {low:g}..{high:g} is not a multiple of step {step:g} (Optuna would cut it to "
        f"{low:g}..{distribution.high:g}); use high = {distribution.high:g} or a step that divides {high - low:g}"
    )


def _parse_default_params(table: Mapping[str, Any] | None, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    if table is None:
        return {k: v for k, v in SEED_DEFAULT_PARAMS.items() if k in space}
    _check_keys(table, "default_params", set(space))
    params = {}
    for key, value in table.items():
        if key in PARAM_RANGES:
            PARAM_RANGES[key].check(value, f"default_params.{key}")
        else:
            _check_custom_value(value, f"default_params.{key}")
        _check_storable(value, space[key], key)
        params[key] = value
    missing = [k for k in space if k not in params]
    if params and missing:
        raise SpecError(
            f"default_params: missing {', '.join(missing)}; give every search-space parameter "
            "or leave the table empty to skip the untuned baseline"
        )
    return params


def _check_storable(value: Any, distribution: BaseDistribution, key: str) -> None:
    """Refuse a default the study cannot record as a value of the parameter's distribution.

    A default may lie outside the tuned range (the untuned baseline does on
    purpose), but Optuna stores it in the distribution's terms: a choice must
    be one of the choices, and a log-scaled parameter's value must be positive.
    """
    if isinstance(distribution, CategoricalDistribution):
        if value not in distribution.choices:
            raise SpecError(
                f"default_params.{key}: {value!r} is not one of search_space.{key}.choices {list(distribution.choices)}; "
                "pick one of them, or add it to the choices"
            )
    elif getattr(distribution, "log", False) and value <= 0:
        raise SpecError(
            f"default_params.{key}: {value!r} cannot be recorded on the log-scaled search_space.{key} (Optuna keeps "
            f"log-scaled values positive); give a tiny positive value such as 1e-8, or drop log = true from the range"
        )


def _parse_trainer(table: Mapping[str, Any]) -> TrainerSpec:
    fields = {f.name for f in dataclasses.fields(TrainerSpec)}
    _check_keys(table, "trainer", fields)
    kwargs: dict[str, Any] = {}
    if "objective" in table:
        kwargs["objective"] = _parse_import_path(table, "objective", "trainer")
    for key in ("max_epochs", "patience", "batch_size", "min_steps_per_epoch", "eval_batch_size"):
        if key in table:
            kwargs[key] = _positive(table, key, where="trainer")
    if "device" in table:
        device = _get(table, "device", str, where="trainer")
        if not is_device_name(device):
            raise SpecError(f"trainer.device: {device!r} must be {DEVICE_NAMES}")
        kwargs["device"] = device
    return TrainerSpec(**kwargs)


def _parse_component(table: Mapping[str, Any], kind: str) -> ComponentSpec:
    if not isinstance(table.get("name"), str):
        raise SpecError(f"{kind}.name: give the Optuna class name, e.g. name = \"{'TPESampler' if kind == 'sampler' else 'MedianPruner'}\"")
    options = {k: v for k, v in table.items() if k != "name"}
    return ComponentSpec(name=table["name"], options=options)


def _instantiate(module: Any, component: ComponentSpec, kind: str) -> Any:
    base = optuna.samplers.BaseSampler if kind == "sampler" else optuna.pruners.BasePruner
    names = [n for n in dir(module) if isinstance(getattr(module, n), type) and issubclass(getattr(module, n), base) and n != base.__name__]
    cls = getattr(module, component.name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise SpecError(
            f"{kind}.name: unknown Optuna {kind} {component.name!r}{_suggest(component.name, names)}"
        )
    _check_option_types(cls, component.options, kind)
    try:
        with warnings.catch_warnings(), _optuna_logs_off():
            # Optuna marks BruteForceSampler, QMCSampler, WilcoxonPruner, PatientPruner and some options
            # "experimental", with a warning at every construction (in a worker: every size). The spec
            # chose them on purpose; the warning's source lines would only bury the command's own output.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**component.options)
    except (TypeError, ValueError) as e:
        raise SpecError(f"{kind}: {component.name} rejects its options ({e}); fix the [{kind}] table") from None


@contextlib.contextmanager
def _optuna_logs_off() -> Iterator[None]:
    """No Optuna log lines while a sampler is built (QMCSampler logs one about its seed every time)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _check_option_types(cls: type, options: Mapping[str, Any], kind: str) -> None:
    """Match each option against the constructor's annotation.

    Optuna's constructors store most arguments unchecked, so ``n_startup_trials
    = "two"`` would only fail in a worker, at the first trial that compares it.
    """
    parameters = inspect.signature(cls.__init__).parameters
    for key, value in options.items():
        parameter = parameters.get(key)
        if parameter is None or parameter.annotation is inspect.Parameter.empty:
            continue  # an unknown name: the constructor itself says so
        annotation = parameter.annotation
        text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
        accepted = _toml_types(text)
        if accepted is None or _is_instance(value, accepted):
            continue
        if not set(accepted) - {type(None)}:
            raise SpecError(
                f"{kind}.{key}: {cls.__name__} takes a Python object here ({text}), which a TOML spec "
                f"cannot give; remove the key from the [{kind}] table"
            )
        wanted = " or ".join(dict.fromkeys(_TYPE_NAMES[t] for t in accepted if t is not type(None)))
        raise SpecError(f"{kind}.{key}: {value!r} must be {wanted} ({cls.__name__} takes {text}); fix the [{kind}] table")


# What each annotation name takes from TOML. Names not listed (Callable,
# BaseSampler, np.ndarray, ...) take Python objects a spec cannot hold.
_TOML_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "str": (str,),
    "None": (type(None),),
    "NoneType": (type(None),),
    "dict": (dict,),
    "Mapping": (dict,),
    "list": (list,),
    "Sequence": (list,),
    "tuple": (list,),
}
_UNCHECKED = {"Any", "Literal", "object"}
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a table", list: "a list"}


def _toml_types(annotation: str) -> tuple[type, ...] | None:
    """The TOML value types an annotation accepts; None when it cannot tell."""
    accepted: list[type] = []
    for part in _split_top_level(annotation, "|"):
        head, _, inner = part.partition("[")
        head = head.strip().rsplit(".", 1)[-1]
        if head in _UNCHECKED:
            return None
        if head in ("Optional", "Union"):
            inner_types = [_toml_types(p) for p in _split_top_level(inner.rstrip("]"), ",")]
            if any(t is None for t in inner_types):
                return None
            accepted += [t for types in inner_types for t in types]  # type: ignore[union-attr]
            accepted += [type(None)] if head == "Optional" else []
            continue
        accepted += _TOML_TYPES.get(head, ())
    return tuple(accepted)


def _split_top_level(text: str, separator: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in (*parts, current) if p.strip()]


def _is_instance(value: Any, types: tuple[type, ...]) -> bool:
    # TOML's true is a Python int too; only an annotation that names bool takes it.
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _needed_params(model: str, objective: bool) -> tuple[str, ...]:
    """What the search space must give: the built-in trainer's and a built-in model's parameters.

    The user's own objective takes what it takes (``create`` tries it once).
    """
    if objective:
        return ()
    return OPTIMIZER_PARAMS + MODEL_PARAMS.get(model, ())


def _check_keys(
    table: Mapping[str, Any], where: str, allowed: set[str], required: set[str] = frozenset(), unknown: str = "unknown key"
) -> None:
    prefix = f"{where}." if where else ""
    for key in table:
        if key not in allowed:
            # A quoted TOML key may hold anything, a line break included: the error stays one line.
            shown = key if key.isprintable() and key.strip() == key else repr(key)
            raise SpecError(
                f"{prefix}{shown}: {unknown}{_suggest(key, sorted(allowed))}; "
                f"allowed keys are {', '.join(sorted(allowed))}"
            )
    for key in sorted(required):
        if key not in table:
            raise SpecError(f"{prefix}{key}: missing required key")


def _positive(table: Mapping[str, Any], key: str, *, default: Any = ..., where: str = "") -> int:
    value = _get(table, key, int, default=default, where=where)
    if value <= 0:
        raise SpecError(f"{where + '.' if where else ''}{key}: {value} must be a positive integer")
    return value


def _get(
    table: Mapping[str, Any], key: str, kind: type, *, default: Any = ..., where: str = ""
) -> Any:
    name = f"{where}.{key}" if where else key
    if key not in table:
        if default is ...:
            raise SpecError(f"{name}: missing required key")
        return default
    value = table[key]
    if kind is float and _is_number(value):
        return float(value)
    if kind is int and _is_int(value):
        return int(value)
    if kind in (str, dict, bool) and isinstance(value, kind):
        return value
    type_name = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table"}[kind]
    raise SpecError(f"{name}: {value!r} must be {type_name}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _suggest(word: str, options: Any) -> str:
    match = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""
