"""Reliability across real hosts: each fault injected N times, and what it cost.

Builds the hosts of ``tests/hosts.py`` (network namespaces on a private
bridge, a private PostgreSQL on host ``db``), then, for each fault, runs a
fresh experiment in a database of its own (two sizes, 120 and 240 digits, a
budget of 2 × ``--count`` + 2 trials each (enough that the last injection
still finds a trial of ``w1`` mid-way), no pruning, trials of ``--epochs``
epochs) with two workers on hosts ``w1`` and ``w2``, injects the fault
``--count`` times, each while a trial of ``w1`` (or of any worker) is mid-way
and after the previous one resolved, lets the workers finish, and audits
the store:

- **lost**: trials short of the budget when the workers ended (or were
  stopped ``--finish-s`` seconds after the last fault);
- **duplicated**: finished trials that stand for an original another
  finished trial already stands for (a retry or hand-back counted twice);
- **over budget**: finished trials beyond the budget;
- **stuck**: trials left RUNNING or WAITING;
- **time to recover**: seconds from the fault's end (the link plugged back,
  the database up, the signal sent) until the interrupted trial's work goes
  on (new epochs, or its retry running), the median and the worst over the
  injections; 0 when a retry started elsewhere while the fault lasted, ``>N``
  when the work did not go on within ``--recover-s``.

Faults:

- ``link-cut``: w1's cable pulled for ``--cut-s`` seconds (packets dropped);
- ``db-restart``: ``pg_ctl stop -m fast``, ``--outage-s`` seconds, start;
- ``sigkill``: w1's worker SIGKILLed, a replacement started on w1;
- ``sigterm``: w1's worker SIGTERMed (it hands its trial back), a replacement started;
- ``sigterm-run``: w1 runs ``scaling-optuna run --workers 2``; it gets SIGTERM, and
  a new ``run`` starts on w1 once the old one has exited; worker processes the old
  ``run`` left behind are counted (orphans);
- ``sigkill-grpc``: as ``sigkill``, with the workers behind ``scaling-optuna proxy`` on host db;
- ``race``: 6 workers on 3 hosts start together on ``--count`` studies of budget 2 (the queued
  baseline and one more trial, which they all race to create);
- ``disk-full-sqlite``, ``disk-full-journal``, ``disk-full-postgresql``, ``disk-full-grpc``: the
  store's disk (a tmpfs: the file's, or a second PostgreSQL server's data folder, the proxy's
  database for grpc) filled ``--count`` times for ``--full-s`` seconds while two workers run,
  then freed; workers that stopped are started again;
- ``sigterm-full-disk``: ``run --workers 2`` on a journal store gets SIGTERM right after its
  disk filled; the row notes whether what it said about handing trials back was true, and a
  new ``run`` finishes the budget;
- ``first-open-sqlite``, ``first-open-postgresql``: two processes open 10 fresh stores at the
  same moment each (a fleet starting against a new database); the notes count failed opens;
- ``interrupted-create``, ``concurrent-create``: ``create`` cut off by SIGTERM or SIGKILL at a random
  moment, and two ``create`` at once, ``--tries`` times on a SQLite file and on PostgreSQL at
  ``--postgres``; these need no hosts (see ``_creation_faults.py``).

A new fault is a function ``(lab) -> Row`` in :data:`RUNNERS`.

**Time to a clear error**: seconds from the fault (the disk filled, the signal sent) until a
worker (or ``run``) printed its one-line error or message; ``>N`` when none came within
``--full-s``; ``-`` for faults that should end in no error at all.

Needs root and iproute2, like the multi-host test. Usage::

    python benchmarks/reliability.py --count 1                  # every fault once, ~15 min on 2 cores
    python benchmarks/reliability.py --count 3 --faults sigkill,link-cut
    python benchmarks/reliability.py --faults interrupted-create,concurrent-create --tries 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _creation_faults import CREATION_FAULTS  # noqa: E402
from _creation_faults import print_creation_table  # noqa: E402
from _creation_faults import run_creation_faults  # noqa: E402
from tests import hosts  # noqa: E402
from tests.store_probe import StoreProbe  # noqa: E402
from tests.store_probe import Victim  # noqa: E402
from tests.store_probe import audit  # noqa: E402
from tests.store_probe import now  # noqa: E402

CLI = (sys.executable, "-m", "scaling_optuna")
HEARTBEAT = ("--heartbeat", "2", "--grace", "6")
PROXY_PORT = 13000
VICTIM_WAIT_S = 120
INJECTED = ("link-cut", "db-restart", "sigkill", "sigterm", "sigterm-run", "sigkill-grpc")
DISK_KINDS = ("sqlite", "journal", "postgresql", "grpc")
# A SQLite or journal store's disk; a PostgreSQL server's (initdb alone takes some 40 MB).
SMALL_DISK, PG_DISK = "32m", "160m"
FULL_PG_PORT = 15433
# Lines a worker (or run) prints when a fault stops it: its one-line error, or run's message on a signal.
CLEAR = ("error: ", "stopped by SIG")

SPEC = """
name = "{name}"
seed = 0
trials_per_size = {budget}
[data]
dataset = "digits"
[sizes]
counts = {sizes}
[search_space]
lr = {{ low = 0.05, high = 0.3, log = true }}
weight_decay = {{ low = 1e-6, high = 1e-4, log = true }}
momentum = {{ low = 0.8, high = 0.95 }}
conv1 = {{ low = 4, high = 12 }}
conv2 = {{ low = 4, high = 12 }}
fc1 = {{ low = 16, high = 48 }}
fc2 = {{ low = 16, high = 48 }}
[trainer]
max_epochs = {epochs}
patience = {epochs}
batch_size = 16
[sampler]
name = "RandomSampler"
seed = 1
[pruner]
name = "NopPruner"
"""


# Every trial of every study, through scaling-optuna's own store (run with python -c on a host).
_DUMP = """
import json, sys, optuna
from scaling_optuna.storages import open_storage
storage = open_storage(sys.argv[1], read_only=True)
out = {}
for s in storage.get_all_studies():
    out[s.study_name] = [
        {"number": t.number, "state": t.state.name, "root": t.system_attrs.get("failed_trial", t.number),
         "worker": t.user_attrs.get("worker")}
        for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
    ]
print(json.dumps(out))
"""

# Two processes opening each of the URLs at once (tests/first_open.py); prints the failures.
_OPEN_TOGETHER = """
import json, sys
from tests.first_open import open_together
if __name__ == "__main__":
    print(json.dumps(open_together(sys.argv[1:])))
"""


@dataclasses.dataclass
class Row:
    fault: str
    injected: int = 0
    lost: int = 0
    duplicated: int = 0
    over: int = 0
    stuck: int = 0
    recoveries: list[float | None] = dataclasses.field(default_factory=list)
    errors: list[float | None] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def error(self, limit: float) -> str:
        return _median_and_worst(self.errors, limit)

    def recovery(self, limit: float) -> str:
        return _median_and_worst(self.recoveries, limit)


def _median_and_worst(seconds: list[float | None], limit: float) -> str:
    if not seconds:
        return "-"
    if any(r is None for r in seconds):
        return f">{limit:.0f}"
    done = [r for r in seconds if r is not None]
    return f"{statistics.median(done):.1f} (max {max(done):.1f})"


class Lab:
    """The hosts, the database server, and one experiment per fault."""

    def __init__(self, net: hosts.Network, args: argparse.Namespace) -> None:
        self.net, self.args = net, args
        self.db, self.ctl, self.w1, self.w2, self.w3 = (net.add_host(n) for n in ("db", "ctl", "w1", "w2", "w3"))
        self.pg = net.start_postgres(self.db)
        self._full_pg: hosts.Postgres | None = None

    def spec(self, fault: str, budget: int, sizes: list[int], epochs: int) -> None:
        """The experiment of ``fault`` as ``<fault>.toml`` in every host's home."""
        text = SPEC.format(name=fault, budget=budget, sizes=sizes, epochs=epochs)
        for host in (self.ctl, self.w1, self.w2, self.w3):
            (host.home / f"{fault}.toml").write_text(text)

    def experiment(self, fault: str, budget: int, sizes: list[int], epochs: int) -> tuple[str, StoreProbe]:
        """A database and an experiment of their own for ``fault``; returns the store URL and a probe."""
        database = "f_" + fault.replace("-", "_")
        url = self.pg.create_database(database)
        self.spec(fault, budget, sizes, epochs)
        return url, StoreProbe(self.pg, database, via=self.ctl)

    def full_pg(self) -> hosts.Postgres:
        """A second PostgreSQL server on host db whose data lie on a small tmpfs (started on first use)."""
        if self._full_pg is None:
            self._full_pg = self.net.start_postgres(self.db, port=FULL_PG_PORT, disk=PG_DISK)
        return self._full_pg

    def trials(self, url: str) -> dict[str, list[dict]]:
        """Every trial of every study at ``url`` (any kind of store), read from host ctl."""
        done = self.ctl.run([sys.executable, "-c", _DUMP, url], timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"reading the trials failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout)

    def create(self, fault: str, url: str) -> None:
        done = self.ctl.run([*CLI, "create", f"{fault}.toml", "--storage", url], timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"create failed: {done.stderr}")

    def worker(self, host: hosts.Host, fault: str, url: str, label: str) -> hosts.Process:
        return host.start([*CLI, "worker", f"{fault}.toml", "--storage", url, "--threads", "1", *HEARTBEAT], label)

    def finish(self, row: Row, url: str, budget: int, workers: tuple[hosts.Host, ...]) -> Row:
        """Let the workers end (at most ``--finish-s``), stop what is left, audit the store."""
        try:
            hosts.wait_for(lambda: not any(h.pids() for h in workers), self.args.finish_s, "the workers to end", every=1)
        except TimeoutError:
            left = sum(len(h.pids()) for h in workers)
            row.notes.append(f"{left} process(es) still running {self.args.finish_s:.0f} s after the last fault, stopped")
        for host in workers:
            host.stop_all()
        for server in (self.pg, self._full_pg):
            if server is not None and not server.running():
                server.start()
        for study in audit(self.trials(url), budget):
            row.lost += study.lost
            row.over += study.over
            row.duplicated += study.duplicated
            row.stuck += len(study.left)
        return row

def inject_repeatedly(
    lab: Lab, fault: str, victim_host: str, inject: Callable[[], float], probe: StoreProbe, *, victim_dies: bool
) -> Row:
    """``--count`` times: find a trial mid-way, ``inject`` (returns the moment the fault ended), time the recovery.

    A fault that ends the victim's process (``victim_dies``) is watched from its end, with the victim's
    last epochs read after it, so that only a retry counts as its work going on. A partition or an
    outage is watched from its start (no epoch of the victim can land meanwhile): a retry that starts
    elsewhere during the fault counts as a recovery of 0 s.
    """
    row = Row(fault)
    after = "1970-01-01"
    for _ in range(lab.args.count):
        try:
            victim = probe.refresh(probe.wait_for_victim(victim_host, VICTIM_WAIT_S, after=after, most=lab.args.epochs // 2))
        except TimeoutError:
            row.notes.append(f"no trial of {victim_host!r} mid-way within {VICTIM_WAIT_S} s: injected {row.injected} of {lab.args.count}")
            break
        recovered_at: list[float] = []

        def watch(victim: Victim = victim) -> None:
            try:
                hosts.wait_for(lambda: probe.work_goes_on(victim), lab.args.recover_s + (0 if victim_dies else lab.args.cut_s), "recovery", every=0.25)
                recovered_at.append(time.monotonic())
            except TimeoutError:
                pass

        watcher = threading.Thread(target=watch, daemon=True)
        if not victim_dies:
            watcher.start()
        ended = inject()
        row.injected += 1
        if victim_dies:
            victim = probe.refresh(victim)
            watcher = threading.Thread(target=watch, args=(victim,), daemon=True)
            watcher.start()
        watcher.join(lab.args.recover_s + lab.args.cut_s + 5)
        row.recoveries.append(max(0.0, recovered_at[0] - ended) if recovered_at and recovered_at[0] - ended <= lab.args.recover_s else None)
        after = now()
    return row


def run_injected(lab: Lab, fault: str) -> Row:
    args = lab.args
    # Two sizes: a stale-trial check that looks at one study at a time must still find the other's.
    budget = 2 * args.count + 2
    url, probe = lab.experiment(fault, budget, [120, 240], args.epochs)
    store = url
    if fault == "sigkill-grpc":
        proxy = lab.db.start([*CLI, "proxy", "--storage", url, "--host", lab.db.address, "--port", str(PROXY_PORT), "--grpc-threads", "4", *HEARTBEAT], "proxy")
        hosts.wait_for(lambda: "listening" in proxy.output() or not proxy.alive(), 60, "the proxy")
        store = f"grpc://{lab.db.address}:{PROXY_PORT}"
    lab.create(fault, store)
    current: dict[str, hosts.Process] = {}
    if fault == "sigterm-run":
        current["w1"] = lab.w1.start([*CLI, "run", f"{fault}.toml", "--storage", store, "--workers", "2", "--threads", "1", *HEARTBEAT], "run")
    else:
        current["w1"] = lab.worker(lab.w1, fault, store, f"{fault}-worker")
    current["w2"] = lab.worker(lab.w2, fault, store, f"{fault}-worker")
    orphans: list[int] = []
    checks: list[threading.Timer] = []

    def link_cut() -> float:
        lab.net.cut(lab.w1)
        time.sleep(args.cut_s)
        lab.net.heal(lab.w1)
        return time.monotonic()

    def db_restart() -> float:
        lab.pg.stop()
        time.sleep(args.outage_s)
        lab.pg.start()
        return time.monotonic()

    def kill() -> float:
        current["w1"].kill()
        ended = time.monotonic()
        current["w1"] = lab.worker(lab.w1, fault, store, f"{fault}-worker")
        return ended

    def term() -> float:
        current["w1"].terminate()
        ended = time.monotonic()
        current["w1"].wait(30)
        current["w1"] = lab.worker(lab.w1, fault, store, f"{fault}-worker")
        return ended

    def term_run() -> float:
        old = current["w1"]
        its_workers = children_of(old.pid)
        old.terminate()
        ended = time.monotonic()
        old.wait(30)
        # Ten seconds are enough for its workers to hand their trials back and stop; those still alive are orphans.
        checker = threading.Timer(10, lambda: orphans.extend(p for p in its_workers if Path(f"/proc/{p}").exists()))
        checker.start()
        checks.append(checker)
        current["w1"] = lab.w1.start([*CLI, "run", f"{fault}.toml", "--storage", store, "--workers", "2", "--threads", "1", *HEARTBEAT], "run")
        return ended

    inject, victim_host = {
        "link-cut": (link_cut, "w1:"),
        "db-restart": (db_restart, "w"),
        "sigkill": (kill, "w1:"),
        "sigterm": (term, "w1:"),
        "sigterm-run": (term_run, "w1:"),
        "sigkill-grpc": (kill, "w1:"),
    }[fault]
    row = inject_repeatedly(lab, fault, victim_host, inject, probe, victim_dies=fault not in ("link-cut", "db-restart"))
    for checker in checks:
        checker.join()
    if orphans:
        row.notes.append(f"{len(orphans)} worker process(es) of a SIGTERMed run still running 10 s after it exited (orphans)")
    lab.finish(row, url, budget, (lab.w1, lab.w2))
    if fault == "sigkill-grpc":
        proxy.kill()
    return row


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def run_race(lab: Lab) -> Row:
    """6 workers on 3 hosts start at once on ``--count`` studies of budget 2: the queued baseline and one
    more trial, which all six race to create."""
    sizes = [60 + 10 * i for i in range(lab.args.count)]
    url, _ = lab.experiment("race", 2, sizes, 5)
    lab.create("race", url)
    row = Row("race", injected=lab.args.count)
    for host in (lab.w1, lab.w2, lab.w3):
        for i in range(2):
            lab.worker(host, "race", url, f"race-worker{i}")
    return lab.finish(row, url, 2, (lab.w1, lab.w2, lab.w3))


# --- a full disk ---------------------------------------------------------------------------------


def small_store(lab: Lab, fault: str, kind: str) -> tuple[str, str, Path, hosts.Process | None]:
    """A store of ``kind`` on a small disk: the URL workers use, the URL to audit, the disk, the proxy if any."""
    if kind in ("sqlite", "journal"):
        disk = lab.net.mount_tmpfs(lab.net.folder / f"{fault}-disk", SMALL_DISK)
        url = f"sqlite:///{disk / 'store.db'}" if kind == "sqlite" else f"journal:///{disk / 'store.log'}"
        return url, url, disk, None
    pg = lab.full_pg()
    url = pg.create_database("f_" + fault.replace("-", "_"))
    if kind == "postgresql":
        return url, url, pg.folder, None
    port = PROXY_PORT + 1
    proxy = lab.db.start([*CLI, "proxy", "--storage", url, "--host", lab.db.address, "--port", str(port), "--grpc-threads", "4", *HEARTBEAT], f"{fault}-proxy")
    hosts.wait_for(lambda: "listening" in proxy.output() or not proxy.alive(), 60, "the proxy")
    return f"grpc://{lab.db.address}:{port}", url, pg.folder, proxy


def fill(disk: Path) -> None:
    """Write zeros into ``disk`` until it is full."""
    subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'fill'}", "bs=64k"], capture_output=True)


def free(disk: Path) -> None:
    (disk / "fill").unlink(missing_ok=True)


def first_clear_line(processes: list[hosts.Process], since: dict[int, int], limit_s: float, started: float) -> tuple[float | None, str]:
    """Seconds from ``started`` until one of ``processes`` printed a clear error (past ``since``, its log's size), and the line."""
    found: list[str] = []

    def seen() -> bool:
        for process in processes:
            text = process.log.read_text(errors="replace")[since.get(id(process), 0):]
            found.extend(line for line in text.splitlines() if line.startswith(CLEAR))
        return bool(found)

    try:
        hosts.wait_for(seen, max(0.0, limit_s - (time.monotonic() - started)), "a clear error", every=0.25)
    except TimeoutError:
        return None, ""
    return time.monotonic() - started, found[0]


def run_disk_full(lab: Lab, kind: str) -> Row:
    """Two workers; ``--count`` times: the store's disk filled for ``--full-s``, then freed; stopped workers restarted."""
    args, fault = lab.args, f"disk-full-{kind}"
    budget = 2 * args.count + 2
    lab.spec(fault, budget, [120, 240], args.epochs)
    store, url, disk, proxy = small_store(lab, fault, kind)
    lab.create(fault, store)
    workers = {h.name: lab.worker(h, fault, store, f"{fault}-worker") for h in (lab.w1, lab.w2)}
    row = Row(fault)
    for _ in range(args.count):
        time.sleep(args.settle_s)  # trials under way
        since = {id(w): w.log.stat().st_size for w in workers.values()}
        started = time.monotonic()
        fill(disk)
        row.injected += 1
        seconds, line = first_clear_line(list(workers.values()), since, args.full_s, started)
        row.errors.append(seconds)
        if line and line not in row.notes:
            row.notes.append(line[:160])
        time.sleep(max(0.0, args.full_s - (time.monotonic() - started)))
        free(disk)
        for server in (lab.pg, lab._full_pg):
            if server is not None and not server.running():
                row.notes.append("the database server stopped on the full disk and was started again")
                server.start()
        for host in (lab.w1, lab.w2):
            if not workers[host.name].alive():
                workers[host.name] = lab.worker(host, fault, store, f"{fault}-worker")
    lab.finish(row, url, budget, (lab.w1, lab.w2))
    if proxy is not None:
        proxy.kill()
    return row


def run_sigterm_full_disk(lab: Lab) -> Row:
    """``run --workers 2`` on a journal store: its disk fills, SIGTERM at once; was what it said true?"""
    args, fault = lab.args, "sigterm-full-disk"
    budget = 2 * args.count + 2
    lab.spec(fault, budget, [120, 240], args.epochs)
    store, url, disk, _ = small_store(lab, fault, "journal")
    lab.create(fault, store)
    command = [*CLI, "run", f"{fault}.toml", "--storage", store, "--workers", "2", "--threads", "1", *HEARTBEAT]
    row = Row(fault)
    for i in range(args.count):
        run = lab.w1.start(command, f"{fault}-run{i}")
        try:
            hosts.wait_for(lambda: "· 2 running" in run.output() or not run.alive(), VICTIM_WAIT_S, "two running trials", every=0.25)
        except TimeoutError:
            row.notes.append(f"run {i}: never two trials running")
        fill(disk)
        run.terminate()
        started = time.monotonic()
        row.injected += 1
        run.wait(120)
        said = run.output(1000).strip().splitlines()[-1] if run.output(1000).strip() else ""
        row.errors.append(time.monotonic() - started if said.startswith("stopped by SIG") else None)
        running = sum(t["state"] == "RUNNING" for ts in lab.trials(url).values() for t in ts)
        claimed_all = "were handed back" in said
        if claimed_all != (running == 0) or (running and f"{running} running trial(s)" not in said):
            row.notes.append(f"UNTRUE: run {i} said {said!r} with {running} trial(s) RUNNING")
        elif said[:60] not in " ".join(row.notes):
            row.notes.append(f"{said[:160]} ({running} RUNNING in the store)")
        free(disk)
    lab.w1.start(command, f"{fault}-final")
    return lab.finish(row, url, budget, (lab.w1,))


# --- a fleet opening a fresh store --------------------------------------------------------------


def run_first_open(lab: Lab, kind: str) -> Row:
    """Two processes on host ctl open 10 fresh stores, each at the same moment."""
    fault, tries = f"first-open-{kind}", 10
    if kind == "sqlite":
        folder = lab.ctl.home / fault
        folder.mkdir()
        urls = [f"sqlite:///{folder / f'fresh{i}.db'}" for i in range(tries)]
    else:
        urls = [lab.pg.create_database(f"first_open_{i}") for i in range(tries)]
    done = lab.ctl.run([sys.executable, "-c", _OPEN_TOGETHER, *urls], timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"opening failed: {done.stderr[-2000:]}")
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    row = Row(fault, injected=tries)
    row.notes.append(f"{len(failed)} of {2 * tries} opens failed" + (f": {failed[0]}" if failed else ""))
    return row


RUNNERS: dict[str, Callable[[Lab], Row]] = {
    **{fault: (lambda lab, fault=fault: run_injected(lab, fault)) for fault in INJECTED},
    "race": run_race,
    **{f"disk-full-{kind}": (lambda lab, kind=kind: run_disk_full(lab, kind)) for kind in DISK_KINDS},
    "sigterm-full-disk": run_sigterm_full_disk,
    **{f"first-open-{kind}": (lambda lab, kind=kind: run_first_open(lab, kind)) for kind in ("sqlite", "postgresql")},
}
FAULTS = tuple(RUNNERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3, help="injections of each fault (default 3)")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS + CREATION_FAULTS)} (default: every fault but the creation faults)")
    parser.add_argument("--epochs", type=int, default=150, help="epochs of every trial (default 150: ~15 s on one core)")
    parser.add_argument("--cut-s", type=float, default=30, help="how long a link stays cut (default 30)")
    parser.add_argument("--outage-s", type=float, default=20, help="how long the database stays down (default 20)")
    parser.add_argument("--full-s", type=float, default=30, help="how long a disk stays full (default 30)")
    parser.add_argument("--settle-s", type=float, default=15, help="how long workers run before a disk fills (default 15)")
    parser.add_argument("--recover-s", type=float, default=120, help="give up timing a recovery after this (default 120)")
    parser.add_argument("--finish-s", type=float, default=180, help="how long the workers may take after the last fault (default 180)")
    parser.add_argument("--tries", type=int, default=10, help="tries of each creation fault on each store (default 10)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres", help="creation faults: a PostgreSQL URL whose user may create databases")
    args = parser.parse_args()
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(faults) - set(FAULTS) - set(CREATION_FAULTS))
    if unknown:
        parser.error(f"unknown fault(s) {unknown}; pick from {', '.join(FAULTS + CREATION_FAULTS)}")
    creation = [f for f in faults if f in CREATION_FAULTS]
    faults = [f for f in faults if f in FAULTS]
    if creation:
        print_creation_table(run_creation_faults(creation, args.tries, args.postgres, SPEC), args.tries)
    if not faults:
        return
    reason = hosts.unavailable_reason()
    if reason:
        sys.exit(f"cannot build hosts here: {reason}")

    rows = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reliability-") as folder, hosts.Network(Path(folder)) as net:
        lab = Lab(net, args)
        for fault in faults:
            began = time.monotonic()
            row = RUNNERS[fault](lab)
            rows.append(row)
            print(f"{fault}: done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    print(f"reliability: {args.count} injection(s) per fault, heartbeat 2 s, grace 6 s, link cut {args.cut_s:.0f} s, "
          f"database down {args.outage_s:.0f} s, disk full {args.full_s:.0f} s, {args.epochs}-epoch trials; "
          f"{time.monotonic() - started:.0f} s in all")
    print()
    print("| fault | injected | trials lost | duplicated | over budget | left RUNNING/WAITING | time to recover (s) "
          "| time to a clear error (s) | notes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for row in rows:
        print(f"| {row.fault} | {row.injected} | {row.lost} | {row.duplicated} | {row.over} | {row.stuck} | "
              f"{row.recovery(args.recover_s)} | {row.error(args.full_s)} | {'; '.join(row.notes)} |")


if __name__ == "__main__":
    main()
