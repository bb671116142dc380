"""Creation faults for ``reliability.py``: ``create`` interrupted at random points, and two ``create`` at once.

These run on this machine's stores (a SQLite file, and PostgreSQL at
``--postgres``), without the hosts of the other faults:

- ``interrupted-create``: each try copies a store that holds a finished
  experiment (three sizes, one trained trial each), starts ``create`` of
  either an extension of it (40 more sizes, and a budget of 2 for all) or a
  new 40-size experiment, and sends SIGTERM or SIGKILL (the four variants in
  turn) at a random point: once a randomly drawn one of the new studies is
  begun, and up to 0.3 s (about one study's writes) later. Then it reads the finished experiment (status, best
  trials, a report), checks the best trials are unchanged, runs ``create``
  again and audits the studies: all whole, one baseline each, exactly the
  budget queued. For SIGTERM it times the signal to the ``stopped by`` line
  and to the end of the process.
- ``concurrent-create``: two ``create`` of the same new 40-size experiment
  started together on a store whose tables exist; both must succeed (or one
  fail with one line), leaving one baseline per study and exactly its budget.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

CLI = (sys.executable, "-m", "scaling_optuna")
CREATION_FAULTS = ("interrupted-create", "concurrent-create")
BUDGET = 2
FINISHED_SIZES = [60, 120, 240]
NEW_SIZES = list(range(300, 700, 10))


@dataclasses.dataclass
class CreationRow:
    fault: str
    store: str
    tries: int = 0
    usable: int = 0
    unchanged: int = 0
    completed: int = 0
    exact: int = 0
    to_line: list[float] = dataclasses.field(default_factory=list)
    to_exit: list[float] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def cells(self) -> list[str]:
        def seconds(values: list[float]) -> str:
            return f"{statistics.median(values):.2f} (max {max(values):.2f})" if values else "-"

        counts = [f"{n}/{self.tries}" for n in (self.usable, self.unchanged, self.completed, self.exact)]
        return [self.fault, self.store, str(self.tries), *counts, seconds(self.to_line), seconds(self.to_exit), "; ".join(self.notes)]


HEADER = (
    "| fault | store | tries | store usable (status, best, report) | finished results unchanged | next create completes "
    "| one baseline per study, exact budget | SIGTERM to its last line (s) | signal to exit (s) | notes |"
)


def run_creation_faults(faults: list[str], tries: int, postgres: str, spec: str, seed: int = 0) -> list[CreationRow]:
    """Run ``faults`` (of :data:`CREATION_FAULTS`) ``tries`` times on SQLite and PostgreSQL; one row per fault and store.

    ``spec`` is ``reliability.py``'s spec, with ``{name}``, ``{budget}``, ``{sizes}`` and ``{epochs}`` to fill.
    """
    import optuna

    # The checks read the stores in this process: their log lines and warnings would bury the table.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    rng = random.Random(seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="creation-faults-") as folder:
        lab = _Lab(Path(folder), postgres, spec)
        try:
            for fault in faults:
                for store in ("sqlite", "postgresql"):
                    began = time.monotonic()
                    row = _interrupted(lab, store, tries, rng) if fault == "interrupted-create" else _concurrent(lab, store, tries)
                    rows.append(row)
                    print(f"{fault} on {store}: done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        finally:
            lab.close()
    return rows


def print_creation_table(rows: list[CreationRow], tries: int) -> None:
    print(f"\ncreation faults: {tries} tries per store; finished experiment of {len(FINISHED_SIZES)} sizes, "
          f"{len(NEW_SIZES)} sizes created (budget {BUDGET}) per try\n")
    print(HEADER)
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")


class _Lab:
    """Stores to copy: a finished experiment in a SQLite file and in a PostgreSQL template database."""

    def __init__(self, folder: Path, postgres: str, spec: str) -> None:
        self.folder, self.admin, self.spec = folder, postgres, spec
        self.databases: list[str] = []
        self.specs = {
            "finished": self._spec("dg", FINISHED_SIZES, 1),
            "extension": self._spec("dg", FINISHED_SIZES + NEW_SIZES, BUDGET),
            "new": self._spec("fresh", NEW_SIZES, BUDGET),
        }
        self.template_file = folder / "finished.db"
        self._run(["run", str(self.specs["finished"]), "--storage", f"sqlite:///{self.template_file}"])
        self.template_db = self._database()
        self._run(["run", str(self.specs["finished"]), "--storage", self.url(self.template_db)])
        self.best = _best(self.specs["finished"], f"sqlite:///{self.template_file}")

    def _spec(self, name: str, sizes: list[int], budget: int) -> Path:
        path = self.folder / f"{name}-{len(sizes)}.toml"
        path.write_text(self.spec.format(name=name, budget=budget, sizes=sizes, epochs=1))
        return path

    def _run(self, args: list[str]) -> None:
        done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr}")

    def url(self, database: str) -> str:
        return self.admin.rsplit("/", 1)[0] + "/" + database

    def _database(self, template: str | None = None) -> str:
        import sqlalchemy

        name = f"so_bench_{uuid.uuid4().hex[:10]}"
        engine = sqlalchemy.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        engine.dispose()
        self.databases.append(name)
        return name

    def copy(self, store: str) -> str:
        """A fresh copy of the finished store."""
        if store == "sqlite":
            path = self.folder / f"try-{uuid.uuid4().hex[:8]}.db"
            shutil.copy(self.template_file, path)
            return f"sqlite:///{path}"
        return self.url(self._database(template=self.template_db))

    def close(self) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self.databases:
                conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        engine.dispose()


def _best(spec: Path, url: str) -> list[tuple]:
    from scaling_optuna.experiment import load_experiment

    return [(b.size, b.trial_number, b.val_loss, b.test_error) for b in load_experiment(spec, url).best_trials()]


def _studies_begun(spec: Path, url: str) -> int:
    """Studies of ``spec``'s experiment in the store, whole or begun."""
    from scaling_optuna.identity import survey
    from scaling_optuna.spec import load_spec
    from scaling_optuna.storages import open_storage

    try:
        found = survey(load_spec(spec), open_storage(url))
    except Exception:  # the store is still being opened by create  # noqa: BLE001
        return 0
    return len(found.ready) + len(found.interrupted)


class _Create:
    """A ``create`` process whose stderr lines are read as they come, with the time each arrived."""

    def __init__(self, spec: Path, url: str) -> None:
        self.proc = subprocess.Popen([*CLI, "create", str(spec), "--storage", url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip()))

    def finish(self, timeout: float = 600) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(10)
        return code


def _interrupted(lab: _Lab, store: str, tries: int, rng: random.Random) -> CreationRow:
    row = CreationRow("interrupted-create", store)
    for i in range(tries):
        target = lab.specs["extension" if i % 4 < 2 else "new"]
        sig = signal.SIGTERM if i % 2 == 0 else signal.SIGKILL
        url = lab.copy(store)
        # Once the k-th new study is begun (k drawn from all of them), and a random part of one study later.
        begun = _studies_begun(target, url) + 1 + rng.randrange(len(NEW_SIZES))
        create = _Create(target, url)
        _wait(lambda: _studies_begun(target, url) >= begun or create.proc.poll() is not None, 300)
        time.sleep(rng.uniform(0, 0.3))
        if create.proc.poll() is not None:
            row.notes.append(f"try {i + 1}: create ended before the signal")
        sent = time.monotonic()
        create.proc.send_signal(sig)
        code = create.finish()
        row.tries += 1
        if sig == signal.SIGTERM and code == 128 + signal.SIGTERM:
            row.to_exit.append(time.monotonic() - sent)
            row.to_line += [t - sent for t, line in create.lines if line.startswith("stopped by SIGTERM")]
        elif sig == signal.SIGKILL:
            row.to_exit.append(time.monotonic() - sent)
        _audit_try(lab, row, target, url, i)
    return row


def _audit_try(lab: _Lab, row: CreationRow, target: Path, url: str, i: int) -> None:
    from scaling_optuna.errors import StorageError
    from scaling_optuna.experiment import create_experiment
    from scaling_optuna.experiment import load_experiment
    from scaling_optuna.report import build_report

    try:
        exp = load_experiment(lab.specs["finished"], url)
        exp.status()
        build_report(exp, bootstrap="points")
        row.usable += 1
        row.unchanged += _best(lab.specs["finished"], url)[: len(lab.best)] == lab.best
    except Exception as e:  # noqa: BLE001 - counted, and named in the notes
        row.notes.append(f"try {i + 1}: reading the finished experiment failed: {e}")
    try:
        load_experiment(target, url)
    except StorageError:
        pass  # a new experiment cut off before its first whole study: a clear error, nothing broken
    try:
        create_experiment(target, url)
        row.completed += 1
    except Exception as e:  # noqa: BLE001
        row.notes.append(f"try {i + 1}: the next create failed: {e}")
        return
    row.exact += _exact(target, url)


def _exact(spec: Path, url: str) -> bool:
    """Every study of ``spec``'s experiment whole, with one baseline and exactly its budget held."""
    from scaling_optuna.experiment import BUDGET_STATES
    from scaling_optuna.identity import survey
    from scaling_optuna.spec import load_spec
    from scaling_optuna.storages import open_storage

    loaded = load_spec(spec)
    storage = open_storage(url)
    found = survey(loaded, storage)
    if found.interrupted or len(found.ready) != len(loaded.sizes.counts or ()):
        return False
    for name in found.ready:
        trials = storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False)
        held = [t for t in trials if t.state in BUDGET_STATES]
        if len(held) != loaded.trials_per_size or sum(bool(t.user_attrs.get("baseline")) for t in held) != 1:
            return False
    return True


def _concurrent(lab: _Lab, store: str, tries: int) -> CreationRow:
    row = CreationRow("concurrent-create", store)
    target = lab.specs["new"]
    for i in range(tries):
        url = lab.copy(store)  # its tables exist: the first open of a fresh store is another fault
        creates = [_Create(target, url) for _ in range(2)]
        codes = [c.finish() for c in creates]
        row.tries += 1
        failed = [c.lines[-1][1] if c.lines else "" for c, code in zip(creates, codes) if code != 0]
        if any(code not in (0, 2) for code in codes) or len(failed) > 1:
            row.notes.append(f"try {i + 1}: exit codes {codes}: {failed}")
        else:
            row.usable += 1
            row.completed += 1
            row.unchanged += _best(lab.specs["finished"], url)[: len(lab.best)] == lab.best
        row.exact += _exact(target, url)
    return row


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing happened within {timeout} s")
        time.sleep(0.05)
