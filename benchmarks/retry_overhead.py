"""What the store wrapper's retry loop costs a call that succeeds at once, against the same loop written with tenacity.

Nearly every store call succeeds at its first try, so the loop's own cost is
paid on every one. Both variants wrap the same in-memory storage (no I/O, so
the figures are the loops' own) and are timed side by side, alternating, the
median of ``--rounds`` rounds of ``--calls`` calls each. Needs ``tenacity``
(``pip install tenacity``), which the project itself does not use.

Usage::

    python benchmarks/retry_overhead.py --calls 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402

from scaling_optuna.storages._errors import is_transient  # noqa: E402
from scaling_optuna.storages._retry import RETRY_DEADLINE_S  # noqa: E402
from scaling_optuna.storages._retry import backoff  # noqa: E402
from scaling_optuna.storages._retry import call_with_retries  # noqa: E402


def with_tenacity(fn: Callable[[], object]) -> object:
    """``call_with_retries`` as tenacity writes it (the variant tried and not kept)."""
    import tenacity

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=lambda state: backoff(state.attempt_number),
        stop=tenacity.stop_before_delay(RETRY_DEADLINE_S),
        reraise=True,
    )(fn)


def per_call_us(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    try:
        import tenacity  # noqa: F401
    except ImportError:
        sys.exit("needs tenacity: pip install tenacity")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    read = lambda: storage.get_study_id_from_name("s")  # noqa: E731
    variants = {
        "no loop (the storage alone)": read,
        "call_with_retries (shipped)": lambda: call_with_retries(read, what="bench"),
        "tenacity.Retrying": lambda: with_tenacity(read),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, call in variants.items():
            times[name].append(per_call_us(call, args.calls))
    base = statistics.median(times["call_with_retries (shipped)"])
    print(f"retry loop overhead: median of {args.rounds} rounds of {args.calls} calls, an in-memory read each")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:32s} {median:8.1f} µs per call   ×{median / base:.2f} the shipped loop")


if __name__ == "__main__":
    main()
