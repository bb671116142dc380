"""Processes that open fresh stores at the same moment, as a fleet of workers starting against a new database.

Used by ``tests/test_first_open.py`` and ``benchmarks/reliability.py``: each of
``processes`` spawned processes imports everything first, then, for each URL
in turn, waits at a barrier with the others and opens the store with
``open_storage(url, create=True)`` at once.

Example::

    errors = open_together(["sqlite:///a.db", "sqlite:///b.db"], processes=2)
    assert errors == []
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

BARRIER_TIMEOUT_S = 120


def open_together(urls: list[str], processes: int = 2, timeout: float = 300) -> list[str]:
    """Open every URL of ``urls`` from ``processes`` processes at once; the errors, one line each."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results: Any = context.Queue()
    children = [context.Process(target=_opener, args=(urls, barrier, results)) for _ in range(processes)]
    for child in children:
        child.start()
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    for _ in range(processes):
        errors += results.get(timeout=max(1.0, deadline - time.monotonic()))
    for child in children:
        child.join(timeout=30)
    return errors


def _opener(urls: list[str], barrier: Any, results: Any) -> None:
    from scaling_optuna.storages import open_storage

    errors = []
    for url in urls:
        barrier.wait(BARRIER_TIMEOUT_S)
        try:
            storage = open_storage(url, create=True)
            storage.get_all_studies()
        except Exception as e:  # what a worker would have died of
            errors.append(f"{url}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    results.put(errors)
