"""The package's functions stay small enough to read in one go: at most 60 lines and cyclomatic complexity 15.

A function that outgrows either is split into private helpers with one job
each. Lines run from the ``def`` to the function's last line (decorators left
out, docstring and nested functions counted); complexity is radon's, the
number ``radon cc`` prints, for every function, method and nested function.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Iterator

import scaling_optuna

PACKAGE = Path(scaling_optuna.__file__).parent
MAX_LINES = 60
MAX_COMPLEXITY = 15


def _sources() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield str(path.relative_to(PACKAGE.parent)), path.read_text()


def _radon_blocks(blocks: list[Any]) -> Iterator[Any]:
    """radon's functions among ``blocks``, with the methods of classes and the closures of functions, at any depth."""
    for block in blocks:
        if hasattr(block, "methods"):  # a class: its own number adds up its methods'
            yield from _radon_blocks(block.methods + block.inner_classes)
        else:
            yield block
            yield from _radon_blocks(block.closures)


def test_no_function_is_longer_than_60_lines():
    long = [
        f"{where}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for where, source in _sources()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert long == [], f"split these into private helpers (at most {MAX_LINES} lines each): {long}"


def test_no_function_is_more_complex_than_15():
    from radon.complexity import cc_visit  # a test dependency (pyproject.toml's [test] extra)

    complex_ = sorted(
        {
            f"{where}:{block.lineno} {block.fullname} (complexity {block.complexity})"
            for where, source in _sources()
            for block in _radon_blocks(cc_visit(source))
            if block.complexity > MAX_COMPLEXITY
        }
    )
    assert complex_ == [], f"split these into private helpers (complexity at most {MAX_COMPLEXITY}): {complex_}"


def test_the_complexity_check_reaches_methods_and_closures():
    from radon.complexity import cc_visit

    branches = "".join(f"        if x == {i}:\n            return {i}\n" for i in range(MAX_COMPLEXITY))
    method = f"class C:\n    def m(self, x):\n{branches}        return -1\n"
    closure = f"def outer():\n    def inner(x):\n{branches}        return -1\n    return inner\n"
    found = {block.fullname: block.complexity for block in _radon_blocks(cc_visit(method) + cc_visit(closure))}
    assert found["C.m"] == found["inner"] == MAX_COMPLEXITY + 1
