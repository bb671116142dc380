"""Every ``Example::`` block in the package's docstrings runs, and every module's doctests pass.

A block written as a doctest (``>>>`` lines) runs as a doctest in its
module's namespace. A block of plain code runs with ``exec`` in its module's
namespace plus the objects it names from :data:`PROVIDED` (``exp``, ``study``,
``storage``, ``report``, ``comparison``, ...), taken from a real tiny
experiment that has finished: ``studies/digits.toml`` and
``studies/digits-mlp.toml`` (2 trials of 2 epochs at 3 sizes) in the default
store ``sqlite:///scaling-optuna.db``. Each block runs in a copy of that
folder as its working directory, so the paths the examples name are there and
what a block writes touches no other block.

A block that cannot run here is listed in :data:`NOT_RUN` with its reason.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import importlib
import re
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

import scaling_optuna
from tests.conftest import TINY_DIGITS

PACKAGE = Path(scaling_optuna.__file__).parent

# Blocks that are not run, by id, with the reason.
NOT_RUN = {
    "scaling_optuna.cli:<module>": "shell commands; tests/test_cli.py runs each command",
    "scaling_optuna.storages.proxy:<module>": "serve() blocks until Ctrl-C; the start() example beside it runs a proxy",
    "scaling_optuna.dashboard:<module>": "serve() blocks until Ctrl-C; publish_report's example beside it runs",
}


@pytest.fixture(autouse=True)
def _restore_logging(restore_logging):
    """The logs module's example configures logging process-wide (conftest's ``restore_logging`` puts it back)."""


@dataclasses.dataclass(frozen=True)
class Block:
    """One ``Example::`` block: the module and docstring owner it belongs to, and its code, dedented."""

    module: str
    owner: str
    line: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.module}:{self.owner}"

    @property
    def is_doctest(self) -> bool:
        return self.code.lstrip().startswith(">>>")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _documented(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """The module and every class and function in it, by qualified name."""
    found: list[tuple[str, ast.AST]] = [("<module>", tree)]

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return found


def _blocks() -> list[Block]:
    blocks = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for owner, node in _documented(ast.parse(path.read_text())):
            docstring = ast.get_docstring(node, clean=True)
            if not docstring:
                continue
            first = node.body[0].lineno if node.body else 1
            for match in re.finditer(r"Example::\n\n((?:[ \t]+\S.*\n|\n)+)", docstring + "\n"):
                line = first + docstring[: match.start(1)].count("\n")
                code = textwrap.dedent(match.group(1)).strip("\n") + "\n"
                blocks.append(Block(_module_name(path), owner, line, code))
    return blocks


BLOCKS = _blocks()
# Two blocks of one owner (a module with two examples) get the line of the second in their id.
_IDS = [b.id if [c.id for c in BLOCKS].count(b.id) == 1 else f"{b.id}@{b.line}" for b in BLOCKS]


def test_every_example_block_is_found():
    assert len(BLOCKS) >= 120  # the regular expression above still matches how the docstrings write them
    assert set(NOT_RUN) <= set(_IDS), "a block NOT_RUN names is gone: remove it from NOT_RUN"


# --- the finished experiment the plain blocks run against ------------------------------------


@pytest.fixture(scope="session")
def finished(tmp_path_factory) -> Path:
    """A folder with the examples' specs and a store where both experiments have finished."""
    from scaling_optuna.worker import run_worker

    folder = tmp_path_factory.mktemp("examples")
    (folder / "studies").mkdir()
    for name, model in (("digits", "cnn"), ("digits-mlp", "mlp")):
        text = TINY_DIGITS.format(name=name, trials=2, counts=[60, 120, 240], epochs=2)
        text = text.replace("[search_space]", f'[model]\nkind = "{model}"\n\n[search_space]', 1)
        if model == "mlp":  # its layers are fc1 and fc2 only
            text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(("conv1", "conv2")))
        spec = folder / "studies" / f"{name}.toml"
        spec.write_text(text)
        url = f"sqlite:///{folder / 'scaling-optuna.db'}"
        scaling_optuna.create_experiment(spec, url)
        run_worker(spec, url, threads=1)
    shutil.copy(folder / "studies" / "digits.toml", folder / "spec.toml")
    _image_folder(folder / "fashion-images" / "train")
    return folder


def _image_folder(root: Path) -> None:
    from PIL import Image

    for label in ("Ankle boot", "Bag", "Coat"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (28, 28), color=40 * i).save(root / label / f"{i}.png")


class Provided:
    """The objects the plain blocks use without defining them, built on demand in the block's folder."""

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self.cache:
            self.cache[name] = PROVIDED[name](self)
        return self.cache[name]


def _tensors(p: Provided) -> Any:
    from scaling_optuna.worker._objective import DeviceData

    import torch

    return DeviceData.on(p.get("data"), torch.device("cpu"))


def _fit(p: Provided) -> Any:
    from scaling_optuna.fit import fit_scaling_law

    return fit_scaling_law([100, 200, 400, 800, 1600, 3200], [0.52, 0.38, 0.30, 0.245, 0.21, 0.19])


PROVIDED: dict[str, Callable[[Provided], Any]] = {
    "url": lambda p: "sqlite:///scaling-optuna.db",
    "exp": lambda p: scaling_optuna.load_experiment("studies/digits.toml"),
    "exp_cnn": lambda p: p.get("exp"),
    "exp_mlp": lambda p: scaling_optuna.load_experiment("studies/digits-mlp.toml"),
    "spec": lambda p: p.get("exp").spec,
    "storage": lambda p: p.get("exp").storage,
    "study": lambda p: p.get("exp").studies[p.get("exp").sizes[-1]],
    "study_id": lambda p: p.get("storage").get_study_id_from_name(p.get("study").study_name),
    "trials": lambda p: p.get("study").get_trials(deepcopy=False),
    "running_trials": lambda p: [t for t in p.get("trials") if t.state.name == "RUNNING"],
    "trial": lambda p: p.get("study").ask(),
    "trial_number": lambda p: p.get("trial").number,
    "model": lambda p: p.get("exp").best_model(p.get("exp").sizes[-1]),
    "net": lambda p: p.get("exp").best_model(p.get("exp").sizes[0]),
    "report": lambda p: scaling_optuna.build_report(p.get("exp")),
    "comparison": lambda p: scaling_optuna.compare_experiments([p.get("exp"), p.get("exp_mlp")]),
    "member": lambda p: p.get("comparison").members[0],
    "reference_member": lambda p: p.get("comparison").members[0],
    "other_member": lambda p: p.get("comparison").members[1],
    "data": lambda p: __import__("scaling_optuna.data", fromlist=["load_dataset"]).load_dataset(p.get("spec")),
    "tensors": _tensors,
    "stop": lambda p: __import__("threading").Event(),
    "env": lambda p: dict(__import__("os").environ),
    "fit": _fit,
    # the sizes and test errors of the fit's examples
    "m": lambda p: __import__("numpy").array([100.0, 200, 400, 800, 1600, 3200]),
    "y": lambda p: __import__("numpy").array([0.52, 0.38, 0.30, 0.245, 0.21, 0.19]),
}
# Modules the blocks use as their own modules import them.
MODULES = ("io", "itertools", "json", "logging", "os", "signal", "sys", "threading", "time", "numpy:np", "optuna", "torch")


def _names(code: str) -> set[str]:
    """Every name the block reads, in nested functions and comprehensions too."""
    return {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def _assigned(code: str) -> set[str]:
    tree = ast.parse(code)
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    return names


def _namespace(block: Block) -> dict[str, Any]:
    module = importlib.import_module(block.module)
    namespace = dict(vars(module))
    for entry in MODULES:
        name, _, alias = entry.partition(":")
        namespace.setdefault(alias or name, importlib.import_module(name))
    namespace["scaling_optuna"] = scaling_optuna
    provided = Provided()
    free = _names(block.code) - _assigned(block.code)
    # A name the module defines is the module's, unless it is a submodule (``report`` in scaling_optuna.report).
    for name in sorted(free & set(PROVIDED)):
        if name not in namespace or type(namespace[name]) is type(sys):
            namespace[name] = provided.get(name)
    return namespace


@pytest.fixture
def in_copy(finished, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "here"
    shutil.copytree(finished, folder)
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.parametrize("block", BLOCKS, ids=_IDS)
def test_example_block_runs(block, request):
    if block.id in NOT_RUN:
        pytest.skip(NOT_RUN[block.id])
    if block.is_doctest:
        _run_doctest(block)
        return
    request.getfixturevalue("in_copy")
    exec(compile(block.code, f"{block.module.replace('.', '/')}.py:{block.line} ({block.owner})", "exec"), _namespace(block))


def _run_doctest(block: Block) -> None:
    module = importlib.import_module(block.module)
    test = doctest.DocTestParser().get_doctest(block.code, dict(vars(module)), block.id, module.__file__, block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


# --- every module's doctests, as --doctest-modules would run them -----------------------------------

MODULE_NAMES = sorted({_module_name(p) for p in PACKAGE.rglob("*.py")} - {"scaling_optuna.__main__"})


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_module_doctests_pass(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
