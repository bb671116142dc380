"""The store's overhead per trial, beside the time of a typical digits trial.

Each worker process runs trials of a trivial objective through the same path
as a real worker (``study.optimize(n_trials=1)`` with heartbeats on, plus the
worker's read of the study's trials to pick a size): ask, seven parameters,
four user attributes, fifteen reports each followed by a pruning decision
(a median pruner, which reads the study's finished trials), three more
attributes and the tell. The pruning decision is taken both ways, side by
side: Optuna's ``trial.should_prune()``, which re-reads the study from the
store every time, and the worker's ``PruneCheck``, which asks the same pruner
against an in-memory copy refreshed once per trial. It runs against SQLite,
PostgreSQL, and PostgreSQL behind the gRPC proxy, with 1, 4 and 8 concurrent
processes, and prints the median and 95th percentile time per trial as a
share of a real digits trial measured in the same run.

Usage::

    python benchmarks/store_overhead.py                    # PostgreSQL at 127.0.0.1:5432 as user postgres
    python benchmarks/store_overhead.py --trials 20 --workers 1,4
    python benchmarks/store_overhead.py --postgres postgresql://me:pw@db:5432/postgres

A scratch database ``so_bench_*`` is created on that server and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = 15
CHECKS = ("should_prune", "PruneCheck")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30, help="trials per worker process (default 30)")
    parser.add_argument("--workers", default="1,4,8", help="concurrent worker processes to try (default 1,4,8)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres", help="a PostgreSQL URL whose user may create databases")
    parser.add_argument("--child", nargs=4, metavar=("URL", "STUDY", "START", "CHECK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(*args.child, trials=args.trials)

    from scaling_optuna.storages import mask_url

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    counts = [int(n) for n in args.workers.split(",")]
    load_before = os.getloadavg()[0]
    typical = _typical_trial_s()
    stores: list[tuple[str, str]] = [("sqlite", f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}")]
    pg_db, pg_version = _create_database(args.postgres)
    proxy = None
    try:
        if pg_db:
            stores.append(("postgresql", pg_db))
            proxy, grpc_url = _start_proxy(pg_db)
            stores.append(("postgresql via gRPC", grpc_url))
        rows = []
        for label, url in stores:
            _create_store(url)
            for n in counts:
                for check in CHECKS:
                    rows.append((label, n, check, *_measure(url, n, args.trials, check)))
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait()
        if pg_db:
            _drop_database(args.postgres, pg_db)

    import grpc
    import sqlalchemy

    print(
        f"store overhead per trial: ask + 7 params + 4 attrs + {REPORTS} × (report + pruning decision) + 3 attrs + tell, "
        f"heartbeat on; {args.trials} trials per worker process"
    )
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}; Python {platform.python_version()}, optuna {optuna.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}, SQLite {_sqlite_version()}, PostgreSQL {pg_version or 'unreachable'}, grpcio {grpc.__version__}"
    )
    print(f"load average (1 min) before and after: {load_before:.1f}, {os.getloadavg()[0]:.1f}")
    print(f"typical digits trial (median over the ladder's sizes, untuned model, 1 thread): {typical:.2f} s")
    print()
    print(f"{'store':<22} {'workers':>7} {'pruning decision':<17} {'median ms':>10} {'p95 ms':>8} {'trials/s':>9} {'median share':>13}")
    for label, n, check, median, p95, rate in rows:
        print(f"{label:<22} {n:>7} {check:<17} {median * 1000:>10.1f} {p95 * 1000:>8.1f} {rate:>9.1f} {median / typical:>12.1%}")
    print()
    by_key = {(label, n, check): (median, rate) for label, n, check, median, _, rate in rows}
    for label, n, check, median, _, rate in rows:
        if check == CHECKS[1]:
            base_median, base_rate = by_key[(label, n, CHECKS[0])]
            print(f"{label:<22} {n:>2} worker(s): {CHECKS[1]} takes ×{median / base_median:.2f} the time per trial "
                  f"of {CHECKS[0]}, ×{rate / base_rate:.2f} the trials/s")
    if not pg_db:
        print(f"\nPostgreSQL at {mask_url(args.postgres)} was unreachable: its rows are missing")
    return 0


def _typical_trial_s() -> float:
    """Time one real digits trial per size of studies/digits.toml, with the untuned default model."""
    import torch

    from scaling_optuna.data import load_dataset
    from scaling_optuna.model import build_model
    from scaling_optuna.spec import load_spec
    from scaling_optuna.train import configure_process
    from scaling_optuna.train import train_model

    torch.set_num_threads(1)
    configure_process(torch.device("cpu"))  # as a worker does at start-up
    spec = load_spec(ROOT / "studies" / "digits.toml")
    data = load_dataset(spec)
    params = dict(spec.default_params)
    times = []
    for size in spec.sizes.resolve(data.pool_size):
        model = build_model(spec.model, data.input_shape, data.num_classes, params, data.input_stats(size))
        start = time.perf_counter()
        train_model(
            model,
            (data.x_pool[:size], data.y_pool[:size]),
            (data.x_val, data.y_val),
            (data.x_test, data.y_test),
            lr=float(params["lr"]),
            momentum=float(params["momentum"]),
            weight_decay=float(params["weight_decay"]),
            batch_size=spec.batch_size_for(size, params),
            max_epochs=spec.trainer.max_epochs,
            patience=spec.trainer.patience,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure(url: str, workers: int, trials: int, check: str) -> tuple[float, float, float]:
    import optuna

    from scaling_optuna.storages import open_storage

    name = f"bench-{workers}-{uuid.uuid4().hex[:6]}"
    store = open_storage(url, create=True)
    optuna.create_study(study_name=name, storage=store, direction="minimize")
    start_at = time.time() + 3 + 0.5 * workers  # every process imported and connected before the clock starts
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--trials", str(trials), "--child", url, name, str(start_at), check],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    results = [json.loads(p.communicate()[0]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a benchmark worker failed on {url}")
    latencies = sorted(t for r in results for t in r["latencies"])
    wall = max(r["end"] for r in results) - start_at
    return statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))], len(latencies) / wall


def _child(url: str, study_name: str, start_at: str, check: str, *, trials: int) -> int:
    import optuna

    from scaling_optuna.worker.pruning import PruneCheck
    from scaling_optuna.storages import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_storage(url)
    study = optuna.load_study(
        study_name=study_name,
        storage=store,
        sampler=optuna.samplers.RandomSampler(),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    )
    study.get_trials(deepcopy=False)  # warm the connection
    prune_check = PruneCheck(study)
    time.sleep(max(0.0, float(start_at) - time.time()))

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True)
        trial.suggest_float("momentum", 0.1, 1.0, log=True)
        for name in ("conv1", "conv2"):
            trial.suggest_int(name, 4, 32)
        for name in ("fc1", "fc2"):
            trial.suggest_int(name, 16, 128)
        for key, value in (("n_params", 19754), ("batch_size_used", 32), ("worker", socket.gethostname()), ("size", 288)):
            trial.set_user_attr(key, value)
        loss = random.uniform(0.5, 2.5)
        if check == CHECKS[1]:
            prune_check.start()
        for epoch in range(1, REPORTS + 1):
            loss *= random.uniform(0.85, 1.0)
            # Asked, as a real worker does, but never acted on: every trial reports 15 times.
            if check == CHECKS[1]:
                prune_check.report(trial, loss, epoch)
                prune_check.should_prune(trial)
            else:
                trial.report(loss, epoch)
                trial.should_prune()
        for key, value in (("val_error", 0.1), ("test_error", 0.1), ("stopped_reason", "max_epochs")):
            trial.set_user_attr(key, value)
        return loss

    latencies = []
    for _ in range(trials):
        start = time.perf_counter()
        study.get_trials(deepcopy=False)  # the worker's pick of the next size
        study.optimize(objective, n_trials=1)
        latencies.append(time.perf_counter() - start)
    print(json.dumps({"latencies": latencies, "end": time.time()}))
    return 0


def _create_store(url: str) -> None:
    from scaling_optuna.storages import open_storage

    open_storage(url, create=True)


def _create_database(admin_url: str) -> tuple[str | None, str | None]:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        name = f"so_bench_{uuid.uuid4().hex[:10]}"
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
    except Exception:
        return None, None
    return admin_url.rsplit("/", 1)[0] + "/" + name, str(version).split()[0]


def _drop_database(admin_url: str, url: str) -> None:
    import sqlalchemy

    name = url.rsplit("/", 1)[1]
    engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    engine.dispose()


def _start_proxy(url: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy = subprocess.Popen(
        [sys.executable, "-m", "scaling_optuna", "--log-level", "warning", "proxy", "--port", str(port), "--threads", "16"],
        env={**os.environ, "SCALING_OPTUNA_STORAGE": url},
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proxy.stdout.readline() if proxy.stdout else ""
    if "listening" not in line:
        raise SystemExit(f"the gRPC proxy did not start: {line}")
    return proxy, f"grpc://127.0.0.1:{port}"


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


if __name__ == "__main__":
    sys.exit(main())
