"""The package's shape: imports flow one way (spec → data → model/train → experiment/workers → fit → report → cli).

docs/architecture.md describes each room; this test keeps the rule that no
import reaches back up the flow and that no module imports itself in a
circle, also through imports made inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import scaling_optuna

PACKAGE = Path(scaling_optuna.__file__).parent

# Each part of the package, and the layer it sits at: a part may import parts of lower layers
# (and its own modules). Every module must be listed, so a new one is placed on purpose.
LAYERS = {
    "errors": 0,
    "signals": 0,
    "_json": 0,
    "_optuna": 0,
    "_lazy": 0,  # names a package imports on first use
    "_checks": 0.5,  # checks of what users pass, shared by every room; imports errors only
    "spec": 1,
    "storages": 1,
    "fit": 1,
    "plugins": 1,
    "imagefolder": 1,
    "data": 2,
    "model": 2,
    "remeasure": 2,
    "train": 3,
    # The user's training loop: it reports to train's early stopping, and preflight tries it.
    "objective": 3.5,
    "identity": 3,
    "preflight": 4,
    "experiment": 5,
    "worker": 6,
    "report": 7,
    # more data or another model: experiments fitted as the report fits one, set against each other
    "compare": 7.5,
    "dashboard": 8,
    "logs": 8,
    "progress": 8,
    "launcher": 8,
    "cli": 9,
    "__main__": 10,
    "__init__": 10,
}


# Private modules every part may use: JSON-safe values, the checks of what users pass, and the one home of Optuna's private names.
SHARED_PRIVATE = {"_json", "_checks", "_optuna", "_lazy"}
# Private modules inside a part that the part declares for the others to share (no user API): the
# store's trial marks, recovery, retries and sweep. Only these, not the part's other private modules.
DECLARED_INTERNAL = {"storages._shared"}


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[name] = ast.parse(path.read_text())
    return found


def _part(module: str) -> str:
    return module.split(".")[0]


def _imports(tree: ast.Module) -> set[str]:
    """Package modules imported anywhere in ``tree`` (functions included), except under TYPE_CHECKING."""
    typing_only = {
        id(node)
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scaling_optuna."):
            out.add(node.module.removeprefix("scaling_optuna."))
        elif isinstance(node, ast.Import):
            out |= {a.name.removeprefix("scaling_optuna.") for a in node.names if a.name.startswith("scaling_optuna.")}
    return out


def test_every_module_has_a_place_in_the_flow():
    unplaced = sorted({_part(m) for m in _modules()} - set(LAYERS))
    assert unplaced == [], f"add {unplaced} to LAYERS (and to docs/architecture.md)"


def test_no_import_reaches_back_up_the_flow():
    upward = []
    for module, tree in _modules().items():
        if _part(module) == "__init__":
            continue  # the package's lazy table names every public symbol
        for imported in _imports(tree):
            own, theirs = _part(module), _part(imported)
            if own != theirs and LAYERS[theirs] >= LAYERS[own]:
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_no_import_cycle_between_modules():
    modules = _modules()
    graph = {m: {i for i in _imports(t) if i in modules and i != m} for m, t in modules.items() if m != "__init__"}

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m)] == []


def test_no_private_name_is_imported_across_parts():
    crossing = []
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scaling_optuna."):
                imported = node.module.removeprefix("scaling_optuna.")
                if _part(imported) != _part(module) and _part(imported) not in SHARED_PRIVATE and imported not in DECLARED_INTERNAL:
                    crossing += [f"{module}: {a.name} from {imported}" for a in node.names if a.name.startswith("_")]
                    crossing += [f"{module}: {imported}" for part in imported.split(".")[1:] if part.startswith("_")]
    assert crossing == []


def test_declared_internal_modules_say_so_and_exist():
    """A declared module is the one exception to the rule above, so it must exist and say it is no user API."""
    modules = _modules()
    for name in DECLARED_INTERNAL:
        assert name in modules, f"{name} is declared internal but is not a module of the package"
        assert "not a user API" in (ast.get_docstring(modules[name]) or ""), f"{name}'s docstring must say it is not a user API"


def test_storages_exports_only_what_a_user_calls():
    import scaling_optuna.storages

    assert sorted(scaling_optuna.storages.__all__) == ["RetryingStorage", "StorageError", "check_url", "mask_url", "open_storage"]
    assert all(hasattr(scaling_optuna.storages, name) for name in scaling_optuna.storages.__all__)
