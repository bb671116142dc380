"""Plug-ins: the user's own model builder, data loader and training loop, named by import path.

A spec names a plug-in as ``"package.module:function"`` (``[model] builder``,
``[data] loader``, ``[trainer] objective``). Every process that needs it
imports it the same way: from ``PYTHONPATH``, an installed package, or the
spec's ``python_path`` folders (put in front of ``sys.path``). What cannot be
imported, and a plug-in that raises, is reported in one line that names the
spec key, the import path and the fix. The module's package version travels
with the experiment, so that a worker holding another version refuses to run.

Example::

    from scaling_optuna.plugins import load_plugin

    plugin = load_plugin("optuna.samplers:RandomSampler", key="model.builder")
    print(plugin.fingerprint())        # {'module': 'optuna.samplers', 'version': 'optuna 5.1.0'}
    plugin.call(seed=0)                # an error inside it names model.builder and the import path
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from scaling_optuna.errors import SpecError


class PluginError(RuntimeError):
    """A plug-in raised, or returned what it must not, while it ran.

    Inside a trial this fails the trial (its message is the trial's ``error``),
    never the worker; in a pre-flight check it becomes a one-line ``SpecError``
    or ``DataError``.
    """


@dataclasses.dataclass(frozen=True)
class Plugin:
    """An imported plug-in: the spec key naming it, its import path, the function and its version."""

    key: str
    path: str
    function: Callable[..., Any] = dataclasses.field(repr=False, compare=False)
    module: str
    version: str | None

    def fingerprint(self) -> dict[str, str | None]:
        """What must be the same on every machine: the module's name and its package version."""
        return {"module": self.module, "version": self.version}

    def call(self, *args: Any, passthrough: tuple[type[BaseException], ...] = (), **kwargs: Any) -> Any:
        """Call the plug-in; what it raises comes back as a :class:`PluginError` naming it.

        Exceptions of the ``passthrough`` types (the trial's own control flow:
        pruning, a stop request) are raised as they are. ``SystemExit`` from the
        user's code is caught too: a plug-in must not end the worker.
        """
        try:
            return self.function(*args, **kwargs)
        except passthrough:
            raise
        except (Exception, SystemExit) as e:
            raise PluginError(f"{self.key} {self.path} raised {_one_line(e)}{_where(e, self.module)}") from e

    def parameters(self) -> Mapping[str, inspect.Parameter]:
        """The function's parameters by name (empty where Python cannot tell them)."""
        try:
            return inspect.signature(self.function).parameters
        except (TypeError, ValueError):
            return {}

    def takes_any_keyword(self) -> bool:
        """Whether the function takes ``**kwargs`` (or its signature cannot be read)."""
        parameters = self.parameters()
        return not parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def load_plugin(path: str, *, key: str, search_path: Iterable[str | Path] = ()) -> Plugin:
    """Import ``path`` (``"package.module:function"``) for the spec key ``key``.

    ``search_path`` folders are put in front of ``sys.path`` first (the
    spec's ``python_path``, already resolved against the spec's folder).

    Raises:
        SpecError: the path is malformed, the module cannot be imported or
            raises on import, or it has no such callable; the message names
            ``key``, ``path`` and the fix.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise SpecError(f'{key}: {path!r} is not an import path; write "package.module:function"')
    _extend_sys_path(search_path)
    module = _import(module_name, key, path)
    function: Any = module
    for part in attribute.split("."):
        if not hasattr(function, part):
            names = [n for n in dir(function) if not n.startswith("_")]
            raise SpecError(
                f"{key}: {module_name} has no {part!r}{_suggest(part, names)}; name a function defined in {module_name}"
            )
        function = getattr(function, part)
    if not callable(function):
        raise SpecError(f"{key}: {path} is a {type(function).__name__}, not a function; name the function to call")
    return Plugin(key=key, path=path, function=function, module=module_name, version=package_version(module_name))


def load_plugins(paths: Mapping[str, str], search_path: Iterable[str | Path] = ()) -> dict[str, Plugin]:
    """Every plug-in of a spec (``ExperimentSpec.plugin_paths``), by spec key."""
    folders = list(search_path)
    return {key: load_plugin(path, key=key, search_path=folders) for key, path in paths.items()}


def package_version(module_name: str) -> str | None:
    """The version of the package that holds ``module_name``, as ``"package version"``, or None.

    The imported package's ``__version__`` where it has one (what this
    process runs), else the version of the installed distribution that
    provides it.

    Example::

        package_version("optuna.samplers")   # 'optuna 5.1.0'
    """
    top = module_name.split(".")[0]
    version = getattr(sys.modules.get(top), "__version__", None)
    if isinstance(version, str):
        return f"{top} {version}"
    for name in (top, *_distributions().get(top, ())):
        try:
            return f"{top} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@functools.lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    # Reads every installed distribution's file list (most of a second): once per process.
    return importlib.metadata.packages_distributions()


def check_keywords(plugin: Plugin, names: Iterable[str], where: str) -> None:
    """Refuse names that ``plugin`` does not take as keyword arguments, with a did-you-mean.

    ``where`` names the spec table the names come from (``search_space``).
    A plug-in taking ``**kwargs`` accepts every name.
    """
    if plugin.takes_any_keyword():
        return
    accepted = [
        n for n, p in plugin.parameters().items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    for name in names:
        if name not in accepted:
            raise SpecError(
                f"{where}.{name}: {plugin.key} {plugin.path} takes no parameter {name!r}{_suggest(name, accepted)}; "
                f"rename it to one of {', '.join(accepted) or '(none)'} or remove it"
            )


def required_keywords(plugin: Plugin) -> list[str]:
    """Parameters of ``plugin`` without a default (which every call must give)."""
    return [
        n for n, p in plugin.parameters().items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]


def _extend_sys_path(folders: Iterable[str | Path]) -> None:
    added = False
    for folder in reversed([str(f) for f in folders]):
        if folder not in sys.path:
            sys.path.insert(0, folder)
            added = True
    if added:
        importlib.invalidate_caches()


def _import(module_name: str, key: str, path: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise SpecError(
                f"{key}: cannot import {module_name!r} for {path} (no module named {e.name!r}); install its package, "
                "put its folder on PYTHONPATH, or list the folder in python_path (relative to the spec file)"
            ) from None
        raise SpecError(f"{key}: importing {module_name} failed ({_one_line(e)}); install what it needs") from None
    except SyntaxError as e:
        raise SpecError(f"{key}: {module_name} has a syntax error ({e.msg}, {e.filename} line {e.lineno}); fix the module") from None
    except (Exception, SystemExit) as e:
        raise SpecError(f"{key}: importing {module_name} raised {_one_line(e)}{_where(e, module_name)}; fix the module") from None


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _where(error: BaseException, module_name: str) -> str:
    """`` (file.py line N)``: the innermost frame of the user's package, where it raised."""
    top = module_name.split(".")[0]
    frames = [f for f in traceback.extract_tb(error.__traceback__) if _in_package(f.filename, top)]
    if not frames:
        return ""
    frame = frames[-1]
    return f" ({Path(frame.filename).name} line {frame.lineno})"


def _in_package(filename: str, top: str) -> bool:
    parts = Path(filename).parts
    return top in parts or Path(filename).stem == top


def _suggest(word: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""
