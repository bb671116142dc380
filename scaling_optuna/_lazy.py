"""Names a package imports on first use (PEP 562).

``scaling-optuna best`` or ``status`` should not wait for SciPy (the fits),
plotly (the figures) or torch (the trainer) to load, so the packages that
offer those names resolve them the first time they are asked for.

Example::

    >>> namespace = {}
    >>> lookup, listing = lazy_names("scaling_optuna.report", {"band": "_format"}, namespace)
    >>> lookup("band").__module__, "band" in namespace, listing()
    ('scaling_optuna.report._format', True, ['band'])
"""

from __future__ import annotations

import importlib
from typing import Any
from typing import Callable
from typing import Mapping


def lazy_names(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose name ``n`` lives in its module ``where[n]``.

    A name once resolved is kept in ``namespace`` (the package's ``globals()``),
    so the next lookup does not come here.
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
