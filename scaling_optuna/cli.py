"""The ``scaling-optuna`` command line.

Every bad input ends with one line on stderr that names the problem and the
fix, and exit status 2.

Example::

    scaling-optuna run studies/digits.toml --workers 2
    scaling-optuna status studies/digits.toml
    scaling-optuna best studies/digits.toml
    scaling-optuna report studies/digits.toml --target 0.02
    scaling-optuna dashboard --storage sqlite:///scaling-optuna.db
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from typing import Sequence

from scaling_optuna.errors import UserError
from scaling_optuna.errors import WorkerError
from scaling_optuna.storages import check_url
from scaling_optuna.storages import mask_url

EXIT_USAGE = 2
STORAGE_ENV = "SCALING_OPTUNA_STORAGE"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {mask_url(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerError as e:
        print(f"error: {mask_url(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}; see '{self.prog} --help'", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scaling-optuna",
        description="Measure how test error scales with training-set size, one Optuna study per size.",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("spec", metavar="SPEC", help="experiment spec (.toml)")
        p.add_argument(
            "--storage",
            metavar="URL",
            default=os.environ.get(STORAGE_ENV) or None,
            help=f"store URL (default: ${STORAGE_ENV}, else the spec's, sqlite:///scaling-optuna.db)",
        )
        p.set_defaults(func=func)
        return p

    run = command("run", _cmd_run, "create the studies, run local workers with progress, print the best trial per size")
    _worker_options(run)
    run.add_argument("--workers", type=_positive_int, default=1, metavar="N", help="local worker processes (default 1)")
    command("create", _cmd_create, "create the experiment's studies (idempotent)")
    worker = command("worker", _cmd_worker, "pull and train trials until every study has its budget")
    _worker_options(worker)
    worker.add_argument("--workers", type=_positive_int, default=1, metavar="N", help="how many workers share this machine's cores (sets threads)")
    worker.add_argument("--seed-offset", type=int, metavar="N", help="added to a seeded sampler's seed, so that workers do not propose the same parameters (default: from this host's name and process id)")
    command("status", _cmd_status, "trials complete/pruned/failed/running per size")
    command("best", _cmd_best, "the best trial of every size")
    proxy = sub.add_parser("proxy", help="serve the store through Optuna's gRPC storage proxy (workers use grpc://HOST:PORT)", description="serve the store through Optuna's gRPC storage proxy, so that hundreds of workers share its few database connections")
    proxy.add_argument("--storage", metavar="URL", default=os.environ.get(STORAGE_ENV) or None, help=f"the database behind the proxy (default: ${STORAGE_ENV})")
    proxy.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)")
    proxy.add_argument("--port", type=_port, default=13000, help="port (default 13000)")
    proxy.add_argument("--threads", type=_positive_int, default=16, metavar="N", help="request threads, one database connection each (default 16)")
    _heartbeat_options(proxy)
    proxy.set_defaults(func=_cmd_proxy)
    report = command("report", _cmd_report, "fit the scaling law to the best trial per size; write report.json and report.html")
    report.add_argument("--out", metavar="DIR", help="folder for report.json and report.html (default: report-<experiment>)")
    report.add_argument("--target", type=_target, metavar="VALUE", help="a test error, e.g. 0.02: how much data reaches it")
    report.add_argument("--bootstrap", choices=["points", "trials"], default="points", help="what the intervals resample: the fitted points (default) or the near-best trials of each size")
    report.add_argument("--no-publish", action="store_true", help="do not publish the plots to optuna-dashboard")
    dashboard = sub.add_parser("dashboard", help="run optuna-dashboard on the store", description="run optuna-dashboard on the store")
    dashboard.add_argument("--storage", metavar="URL", default=os.environ.get(STORAGE_ENV) or "sqlite:///scaling-optuna.db", help=f"store URL (default: ${STORAGE_ENV}, else sqlite:///scaling-optuna.db)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    dashboard.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0 picks a free one)")
    dashboard.set_defaults(func=_cmd_dashboard)
    fit = sub.add_parser("fit", help="fit a scaling law to a learning curve given as numbers", description="fit a scaling law to a learning curve given as numbers")
    fit.add_argument("--sizes", required=True, metavar="N,N,...", help="training-set sizes, e.g. 100,200,400,800")
    fit.add_argument("--values", required=True, metavar="V,V,...", help="the metric at each size, e.g. 0.5,0.37,0.28,0.21")
    fit.add_argument("--target", metavar="VALUE", help="a value to reach: how much data it needs")
    fit.add_argument("--plateau", metavar="VALUE", help="the best-guess error (small-data plateau), e.g. 0.9")
    fit.add_argument("--form", choices=["auto", "saturating", "power"], default="auto")
    fit.set_defaults(func=_cmd_fit)
    return parser


def _worker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=_positive_int, metavar="N", help="trials per size (overrides the spec)")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="torch threads per worker (default: cores / workers)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: the spec's)")
    p.add_argument("--artifacts", metavar="PATH", help="where trained weights go: a folder shared by all workers, or s3://bucket (default: the spec's artifacts, else $SCALING_OPTUNA_ARTIFACTS, else beside a SQLite store)")
    _heartbeat_options(p)


def _heartbeat_options(p: argparse.ArgumentParser) -> None:
    from scaling_optuna.storages import HEARTBEAT_INTERVAL_S

    p.add_argument("--heartbeat", type=_positive_int, default=HEARTBEAT_INTERVAL_S, metavar="SECONDS", help=f"heartbeat interval of running trials (default {HEARTBEAT_INTERVAL_S})")
    p.add_argument("--grace", type=_positive_int, metavar="SECONDS", help="a trial without heartbeat this long is failed and retried (default 3 × --heartbeat)")


def _process_seed_offset() -> int:
    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_003


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer")
    return value


def _target(text: str) -> float:
    from scaling_optuna.report import validate_target

    try:
        return validate_target(float(text))  # type: ignore[return-value]
    except ValueError as e:  # a non-number, or UserError's range message
        raise argparse.ArgumentTypeError(str(e) if isinstance(e, UserError) else f"{text!r} is not a number; pass a test error such as 0.05") from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return value


def _spec(args: argparse.Namespace):
    from scaling_optuna.spec import load_spec

    spec = load_spec(args.spec)
    if getattr(args, "trials", None):
        spec = spec.with_trials(args.trials)
    return spec


def _cmd_create(args: argparse.Namespace) -> int:
    from scaling_optuna.experiment import create_experiment

    spec = _spec(args)
    exp = create_experiment(spec, args.storage)
    print(f"experiment {spec.name!r}: {len(exp.sizes)} studies in {mask_url(exp.storage_url)}")
    for size in exp.sizes:
        print(f"  {exp.studies[size].study_name}  ({size} training examples)")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    # Spec and URL first: a mistake in either is reported before the seconds that importing torch takes.
    spec = _spec(args)
    check_url(args.storage or spec.storage)
    from scaling_optuna.worker import default_threads
    from scaling_optuna.worker import install_signal_handlers
    from scaling_optuna.worker import run_worker

    stop = threading.Event()
    restore = install_signal_handlers(stop)
    try:
        summary = run_worker(
            spec,
            args.storage,
            threads=args.threads or default_threads(args.workers),
            device=args.device,
            stop=stop,
            heartbeat_interval=args.heartbeat,
            grace_period=args.grace,
            artifacts=args.artifacts,
            seed_offset=args.seed_offset if args.seed_offset is not None else _process_seed_offset(),
        )
    finally:
        restore()
    how = "stopped by signal, trial handed back" if summary.stopped_by_signal else "no trials left"
    print(f"worker done ({how}): {summary.complete} complete, {summary.pruned} pruned, {summary.failed} failed")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    spec = _spec(args)
    check_url(args.storage or spec.storage)
    from scaling_optuna.experiment import create_experiment
    from scaling_optuna.launcher import WorkerGroup
    from scaling_optuna.worker import default_threads

    exp = create_experiment(spec, args.storage, device=args.device or spec.trainer.device)
    threads = args.threads or default_threads(args.workers)
    print(
        f"experiment {spec.name!r}: {len(exp.sizes)} sizes {exp.sizes[0]}..{exp.sizes[-1]}, "
        f"{spec.trials_per_size} trials each, {args.workers} worker(s) × {threads} thread(s), "
        f"store {mask_url(exp.storage_url)}",
        flush=True,
    )
    # The URL goes through the environment: a password on a command line shows in `ps`.
    command = [sys.executable, "-m", "scaling_optuna", "--log-level", "warning", "worker", args.spec, "--threads", str(threads), "--heartbeat", str(args.heartbeat)]
    if args.grace:
        command += ["--grace", str(args.grace)]
    if args.trials:
        command += ["--trials", str(args.trials)]
    if args.artifacts:
        command += ["--artifacts", args.artifacts]
    env = {**os.environ, STORAGE_ENV: exp.storage_url}
    devices = worker_devices(args.device or spec.trainer.device, args.workers, _cuda_device_count())
    # Offsets 0…N-1: a seeded spec run with the same number of workers proposes the same parameters again.
    commands = [[*command, "--device", device, "--seed-offset", str(i)] for i, device in enumerate(devices)]
    with WorkerGroup(commands, env) as group:
        _watch(exp, group.processes)
    if group.stop_signal is not None:
        name = signal.Signals(group.stop_signal).name
        print(f"\nstopped by {name}: running trials were handed back; run the same command to continue", file=sys.stderr)
        return 128 + group.stop_signal
    codes = group.returncodes()
    _print_best(exp)
    from scaling_optuna.report.budget import budget_warnings

    for line in budget_warnings(exp):
        print(f"warning: {line}", flush=True)
    if any(codes):
        print(f"error: {sum(1 for c in codes if c)} worker(s) failed (exit codes {codes}); see their messages above", file=sys.stderr)
        return 1
    return 0


def worker_devices(device: str, workers: int, cuda_devices: int) -> list[str]:
    """The ``--device`` of each of ``run``'s workers: on several GPUs they take turns.

    One small CNN leaves a GPU mostly idle, so several workers share each
    device; ``cuda`` or ``auto`` on a machine with ``cuda_devices`` GPUs puts
    worker i on ``cuda:{i % cuda_devices}``. Any other device is used as given.

    Example::

        >>> worker_devices("auto", 4, 2)
        ['cuda:0', 'cuda:1', 'cuda:0', 'cuda:1']
    """
    if device in ("auto", "cuda") and cuda_devices > 1:
        return [f"cuda:{i % cuda_devices}" for i in range(workers)]
    return [device] * workers


def _cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _watch(exp, workers: list[subprocess.Popen]) -> None:
    start = time.monotonic()
    tty = sys.stdout.isatty()
    last_line, last_counts, last_print = "", "", 0.0
    while True:
        alive = any(w.poll() is None for w in workers)
        rows = exp.status()
        total = sum(r.budget for r in rows)
        done = sum(min(r.finished, r.budget) for r in rows)
        elapsed = time.monotonic() - start
        counts = (
            f"{done}/{total} trials finished · "
            f"{sum(r.complete for r in rows)} complete, {sum(r.pruned for r in rows)} pruned, "
            f"{sum(r.failed for r in rows)} failed, {sum(r.running for r in rows)} running"
        )
        line = f"[{_clock(elapsed)}] {counts}"
        if tty:
            print("\r" + line.ljust(len(last_line)), end="", flush=True)
        elif counts != last_counts and (time.monotonic() - last_print > 10 or not alive):
            print(line, flush=True)
            last_print, last_counts = time.monotonic(), counts
        last_line = line
        if not alive:
            break
        time.sleep(1.0)
    if tty:
        print()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _cmd_proxy(args: argparse.Namespace) -> int:
    from scaling_optuna.storages.proxy import serve

    serve(args.storage, host=args.host, port=args.port, threads=args.threads, heartbeat_interval=args.heartbeat, grace_period=args.grace)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from scaling_optuna.experiment import load_experiment

    exp = load_experiment(_spec(args), args.storage)
    header = (
        f"{'size':>8} {'study':<28} {'budget':>6} {'complete':>8} {'pruned':>6} {'failed':>6} "
        f"{'handed back':>11} {'lost':>5} {'running':>7} {'waiting':>7}"
    )
    print(header)
    for r in exp.status():
        print(
            f"{r.size:>8} {r.study_name:<28} {r.budget:>6} {r.complete:>8} {r.pruned:>6} {r.failed:>6} "
            f"{r.handed_back:>11} {r.lost:>5} {r.running:>7} {r.waiting:>7}"
        )
    return 0


def _cmd_best(args: argparse.Namespace) -> int:
    from scaling_optuna.experiment import load_experiment

    _print_best(load_experiment(_spec(args), args.storage))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from scaling_optuna.dashboard import publish_report
    from scaling_optuna.experiment import load_experiment
    from scaling_optuna.report import build_report
    from scaling_optuna.report import check_output_dir
    from scaling_optuna.report import write_report

    exp = load_experiment(_spec(args), args.storage)
    # A folder that cannot be written must fail the command before the store is written to.
    out = check_output_dir(args.out or f"report-{exp.spec.name}")
    report = build_report(exp, target=args.target, bootstrap=args.bootstrap)
    if not args.no_publish:
        report.dashboard = publish_report(exp, report)
    json_path, html_path = write_report(report, out)
    print(report.to_text())
    print(f"\nwrote {json_path} and {html_path}")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from scaling_optuna.dashboard import serve

    serve(args.storage, host=args.host, port=args.port)
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from scaling_optuna.report import curve_summary

    print(
        curve_summary(
            _parse_numbers(args.sizes, "--sizes"),
            _parse_numbers(args.values, "--values"),
            target=_parse_number(args.target, "--target"),
            plateau=_parse_number(args.plateau, "--plateau"),
            form=args.form,
        )
    )
    return 0


def _parse_numbers(text: str, name: str) -> list[float]:
    """Comma-separated numbers, e.g. ``"100,200,400"``."""
    out = []
    for item in str(text).replace(" ", "").split(","):
        try:
            out.append(float(item))
        except ValueError:
            raise UserError(f"{name}: {item!r} is not a number; pass comma-separated numbers such as 100,200,400") from None
    return out


def _parse_number(text: str | None, name: str) -> float | None:
    """One number, or ``None`` when the option was not given."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{name}: {text!r} is not a number; pass e.g. 0.05") from None


def _print_best(exp) -> None:
    from scaling_optuna.report.rows import size_rows
    from scaling_optuna.report.text import best_table

    rows = size_rows(exp)
    if all(row.best is None for row in rows):
        print("no finished trial yet")
        return
    print(best_table(rows, hyperparameters=True))


if __name__ == "__main__":
    sys.exit(main())
