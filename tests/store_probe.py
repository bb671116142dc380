"""What the store says about an experiment's trials, read from one of the test's hosts.

Fault-injection tests need to hit a trial mid-way and then see when its work
goes on again (its own new epochs, or a retry of it running); at the end they
audit every study: finished against the budget, nothing left RUNNING or
WAITING, no trial counted twice. The probe reads Optuna's tables with psql
from a host of :mod:`tests.hosts`, so it answers in milliseconds while the
workers run, and returns ``None`` while the database is unreachable.

Example::

    probe = StoreProbe(pg, "experiment", via=ctl)
    victim = probe.wait_for_victim("w1:", timeout=120)
    ...  # inject a fault
    hosts.wait_for(lambda: probe.work_goes_on(victim), 120, "the work to go on")
    audits = audit(probe.trials(), budget=4)
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from collections import Counter

from tests import hosts

# A trial of one host's worker ("w1:"; "w" for any host named w…), RUNNING since after a moment,
# with at least one epoch reported and at most ``most``.
_MID_TRIAL = """
SELECT s.study_name, t.number FROM trials t
JOIN studies s ON s.study_id = t.study_id
JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'worker'
WHERE t.state = 'RUNNING' AND a.value_json LIKE '"{host}%' AND t.datetime_start > '{after}'
AND (SELECT count(*) FROM trial_intermediate_values v WHERE v.trial_id = t.trial_id) BETWEEN 1 AND {most}
ORDER BY t.trial_id LIMIT 1
"""

_EPOCHS_OF = """
SELECT (SELECT count(*) FROM trial_intermediate_values v WHERE v.trial_id = t.trial_id),
       coalesce((SELECT a.value_json FROM trial_system_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'failed_trial'), '')
FROM trials t JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = '{study}' AND t.number = {number}
"""

# The trial finished, or reported an epoch it had not, or a retry of its original runs or ran.
_WORK_GOES_ON = """
SELECT count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id
WHERE s.study_name = '{study}' AND (
  (t.number = {number} AND (t.state IN ('COMPLETE', 'PRUNED')
     OR (SELECT count(*) FROM trial_intermediate_values v WHERE v.trial_id = t.trial_id) > {epochs}))
  OR (t.number <> {number} AND t.state IN ('RUNNING', 'COMPLETE', 'PRUNED') AND EXISTS (
     SELECT 1 FROM trial_system_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'failed_trial'
     AND a.value_json = '{root}')))
"""

# Every trial of every study, through Optuna itself (run with python -c on a host).
_DUMP = """
import json, sys, optuna
storage = optuna.storages.RDBStorage(sys.argv[1])
out = {}
for s in optuna.get_all_study_summaries(storage):
    out[s.study_name] = [
        {"number": t.number, "state": t.state.name, "root": t.system_attrs.get("failed_trial", t.number),
         "worker": t.user_attrs.get("worker")}
        for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
    ]
storage.engine.dispose()
print(json.dumps(out))
"""


def now() -> str:
    """The workers' clock (this machine's), as Optuna stores ``datetime_start``."""
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclasses.dataclass(frozen=True)
class Victim:
    """A trial hit by a fault: its study, number, epochs reported so far and original (for retries)."""

    study: str
    number: int
    epochs: int
    root: int

    def __str__(self) -> str:
        return f"trial {self.number} of {self.study} at epoch {self.epochs}"


class StoreProbe:
    """Reads one experiment database of a private PostgreSQL from host ``via``."""

    def __init__(self, pg: hosts.Postgres, database: str, via: hosts.Host) -> None:
        self.pg, self.database, self.via = pg, database, via

    def sql(self, query: str) -> list[list[str]] | None:
        """Rows of ``query``, or ``None`` while the database is down or unreachable."""
        try:
            return self.pg.psql(query, database=self.database, via=self.via)
        except Exception:  # psql failed: the callers poll again
            return None

    def mid_trial(self, host: str, after: str = "1970-01-01", most: int = 10**9) -> Victim | None:
        rows = self.sql(_MID_TRIAL.format(host=host, after=after, most=most))
        return self.refresh(Victim(rows[0][0], int(rows[0][1]), 0, int(rows[0][1]))) if rows else None

    def wait_for_victim(self, host: str, timeout: float, after: str = "1970-01-01", most: int = 10**9) -> Victim:
        """A trial of ``host`` mid-way (started after ``after``); raises TimeoutError after ``timeout`` s."""
        return hosts.wait_for(lambda: self.mid_trial(host, after, most), timeout, f"a trial of {host!r} mid-way", every=0.25)

    def refresh(self, victim: Victim) -> Victim:
        """The victim with its epochs as of now: read it just before a fault, so that going on means new epochs."""
        rows = self.sql(_EPOCHS_OF.format(study=victim.study, number=victim.number))
        if not rows:
            return victim
        epochs, root = rows[0]
        return dataclasses.replace(victim, epochs=int(epochs), root=int(root) if root else victim.number)

    def work_goes_on(self, victim: Victim) -> bool:
        rows = self.sql(_WORK_GOES_ON.format(study=victim.study, number=victim.number, epochs=victim.epochs, root=victim.root))
        return bool(rows) and int(rows[0][0]) > 0

    def trials(self, url: str) -> dict[str, list[dict]]:
        """Every trial of every study at ``url``, as Optuna reads them (state, original, worker)."""
        done = self.via.run([sys.executable, "-c", _DUMP, url], timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"reading the trials failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout)


@dataclasses.dataclass(frozen=True)
class Audit:
    """One study against its budget."""

    study: str
    states: dict[str, int]
    finished: int
    budget: int
    left: list[int]  # RUNNING or WAITING trials
    twice: dict[int, int]  # original trial: how many finished trials stand for it

    @property
    def lost(self) -> int:
        return max(0, self.budget - self.finished)

    @property
    def over(self) -> int:
        return max(0, self.finished - self.budget)

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.twice.values())


def audit(trials: dict[str, list[dict]], budget: int) -> list[Audit]:
    """Each study's finished trials against ``budget``; retries and hand-backs count for their original."""
    audits = []
    for name, ts in sorted(trials.items()):
        finished = [t for t in ts if t["state"] in ("COMPLETE", "PRUNED")]
        twice = {root: n for root, n in Counter(t["root"] for t in finished).items() if n > 1}
        audits.append(
            Audit(
                study=name,
                states=dict(Counter(t["state"] for t in ts)),
                finished=len(finished),
                budget=budget,
                left=[t["number"] for t in ts if t["state"] in ("RUNNING", "WAITING")],
                twice=twice,
            )
        )
    return audits
