"""What ``run`` and ``status --watch`` print while trials run: counts, trials per minute, an ETA.

Pure functions of the store's per-size counts (:class:`~scaling_optuna.experiment.SizeStatus`
rows) and the seconds since watching began, so that each is tested without a clock.

The ETA comes from the trials finished since watching began, weighted by
their training-set size: workers take the largest sizes first, so a plain
trial count would promise too much at the start and too little at the end.

Example::

    >>> from scaling_optuna.experiment import SizeStatus
    >>> start = tally([SizeStatus(100, "x-n0000100", budget=4), SizeStatus(200, "x-n0000200", budget=4)])
    >>> now = tally([SizeStatus(100, "x-n0000100", budget=4, complete=2), SizeStatus(200, "x-n0000200", budget=4, complete=2, running=1)])
    >>> progress_line(now, start, elapsed_s=120)
    '[0:02:00] 4/8 trials finished (4 complete, 0 pruned, 0 failed) · 1 running · 2.0 trials/min · ETA 0:02:00'
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import TYPE_CHECKING, Iterable, Sequence

from scaling_optuna.experiment import TrialCounts

if TYPE_CHECKING:
    from scaling_optuna.experiment import SizeStatus


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tally(TrialCounts):
    """The trial counts of an experiment at one moment, summed over its sizes (:class:`TrialCounts`).

    ``finished`` and ``total`` are the finished trials and the budget (search
    and re-runs), a size finished beyond its budget counted as its budget;
    ``work_done`` and ``work_left`` count finished and missing trials, each
    weighted by its training-set size (in examples).
    """

    finished: int = 0
    total: int = 0
    work_done: int = 0
    work_left: int = 0

    @property
    def done(self) -> bool:
        """Every budget is finished and no trial runs."""
        return self.finished >= self.total and self.running == 0


def tally(rows: Iterable[SizeStatus]) -> Tally:
    """Sum ``rows`` (one per size); a size finished beyond its budget counts as its budget.

    A size's budget here is its search budget and its planned re-runs of the best configurations.
    """
    counts, finished, total, done, left = TrialCounts(), 0, 0, 0, 0
    for r in rows:
        within = min(r.finished, r.total)
        counts, finished, total = counts + r.counts(), finished + within, total + r.total
        done, left = done + within * r.size, left + r.remaining * r.size
    return Tally(**vars(counts), finished=finished, total=total, work_done=done, work_left=left)


def trials_per_minute(now: Tally, start: Tally, elapsed_s: float) -> float | None:
    """Trials finished per minute since ``start``; None until one has finished."""
    finished = now.finished - start.finished
    if finished <= 0 or elapsed_s <= 0:
        return None
    return finished / (elapsed_s / 60)


def eta_seconds(now: Tally, start: Tally, elapsed_s: float) -> float | None:
    """Seconds until every budget is finished, at the pace (in examples trained) since ``start``.

    None until a trial has finished since ``start``; 0 when nothing is left.

    Example::

        >>> eta_seconds(Tally(finished=1, total=2, work_done=100, work_left=100), Tally(total=2, work_left=200), 30)
        30.0
    """
    if now.work_left <= 0:
        return 0.0
    work = now.work_done - start.work_done
    if now.finished <= start.finished or work <= 0 or elapsed_s <= 0:
        return None
    return now.work_left / (work / elapsed_s)


def progress_line(now: Tally, start: Tally, elapsed_s: float, *, starting: bool = False) -> str:
    """One line: elapsed time, finished/total, how they ended, running, trials per minute and ETA.

    ``starting``: the workers were just launched and none has claimed a trial
    yet (they import torch and load the data first), said instead of "0 running".
    """
    ended = f"{now.complete} complete, {now.pruned} pruned, {now.failed} failed"
    if now.handed_back:
        ended += f", {now.handed_back} handed back"
    if now.lost:
        ended += f", {now.lost} lost"
    parts = [f"[{clock(elapsed_s)}] {now.finished}/{now.total} trials finished ({ended})"]
    if starting and now.running == 0 and now.finished == start.finished:
        parts.append("workers starting")
    else:
        parts.append(f"{now.running} running")
    if not now.done:
        rate = trials_per_minute(now, start, elapsed_s)
        eta = eta_seconds(now, start, elapsed_s)
        if rate is None:
            parts.append("ETA after the first trial")
        else:
            parts.append(f"{rate:.1f} trials/min")
            if eta is not None:
                parts.append(f"ETA {clock(eta)}")
    return " · ".join(parts)


def creation_line(done: int, total: int, queued: int, elapsed_s: float) -> str:
    """``create``'s progress: studies made whole, trials queued, and the time left at the pace so far.

    Example::

        >>> creation_line(62, 300, 1240, elapsed_s=31)
        '[0:00:31] 62/300 studies created · 1,240 trials queued · ETA 0:01:59'
    """
    line = f"[{clock(elapsed_s)}] {done}/{total} studies created · {queued:,} trial{'' if queued == 1 else 's'} queued"
    if 0 < done < total:
        line += f" · ETA {clock(elapsed_s / done * (total - done))}"
    return line


def status_table(rows: Sequence[SizeStatus]) -> str:
    """The ``status`` table: one line per size, handed-back and lost trials apart from failures.

    ``budget`` is the search's; ``re-runs`` the re-runs of the best
    configurations finished out of those planned (the other counts include them).
    """
    lines = [
        f"{'size':>8} {'study':<28} {'budget':>6} {'re-runs':>7} {'complete':>8} {'pruned':>6} {'failed':>6} "
        f"{'handed back':>11} {'lost':>5} {'running':>7} {'waiting':>7}"
    ]
    for r in rows:
        reruns = f"{r.repeats_finished}/{r.repeats}"
        lines.append(
            f"{r.size:>8} {r.study_name:<28} {r.budget:>6} {reruns:>7} {r.complete:>8} {r.pruned:>6} {r.failed:>6} "
            f"{r.handed_back:>11} {r.lost:>5} {r.running:>7} {r.waiting:>7}"
        )
    return "\n".join(lines)


def next_command(command: str, spec: str, storage: str | None = None) -> str:
    """The command line to type next, e.g. ``scaling-optuna report studies/digits.toml``.

    ``storage`` should already be masked: a password is never printed.

    Example::

        >>> next_command("report", "my spec.toml", "postgresql://me:***@db/exp")
        "scaling-optuna report 'my spec.toml' --storage 'postgresql://me:***@db/exp'"
    """
    words = ["scaling-optuna", command, shlex.quote(spec)]
    if storage:
        words += ["--storage", shlex.quote(storage)]
    return " ".join(words)


def clock(seconds: float) -> str:
    """``seconds`` as H:MM:SS.

    Example::

        >>> clock(3725.4)
        '1:02:05'
    """
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"
