"""The ``scaling-optuna`` command line.

Every bad input ends with one line on stderr that names the problem and the
fix, and exit status 2.

Example::

    scaling-optuna run studies/digits.toml --workers 2
    scaling-optuna status studies/digits.toml --watch
    scaling-optuna worker studies/digits.toml --storage postgresql://db/exp --log-format json
    scaling-optuna best studies/digits.toml
    scaling-optuna report studies/digits.toml --target 0.02
    scaling-optuna compare studies/digits.toml studies/digits-mlp.toml --target 0.02
    scaling-optuna dashboard --storage sqlite:///scaling-optuna.db
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from typing import Callable, Sequence

from scaling_optuna.errors import UserError
from scaling_optuna.errors import WorkerError
from scaling_optuna.storages import check_url
from scaling_optuna.storages import mask_url

EXIT_USAGE = 2
STORAGE_ENV = "SCALING_OPTUNA_STORAGE"
DEFAULT_STORAGE = "sqlite:///scaling-optuna.db"
# How often `status --watch` and `run` look at the store; a watch reads every study each time,
# so it is not allowed to read more often than once a second.
WATCH_INTERVAL_S = 5.0
MIN_WATCH_INTERVAL_S = 1.0
RUN_POLL_S = 1.0
# How often `create` says how far it got (a creation quicker than this says nothing).
CREATE_PROGRESS_S = 2.0
# How long a stopped worker waits for a training step before it hands the trial back and exits.
STOP_DEADLINE_S = 5.0
# The factory _parser hands each `_add_<command>_parser`: a sub-command's parser with SPEC and --storage added.
_Command = Callable[..., argparse.ArgumentParser]


# Commands whose process ends without Python's teardown (``__main__`` reads this once ``main`` returns).
# A worker's trials are settled by then, but it holds torch and daemon threads (heartbeat, stale sweep,
# stop deadline) that may still be in a call as the interpreter finalizes: in two runs of the test
# suite, one worker exit each (of hundreds) ended in std::terminate ("terminate called without an
# active exception", exit status -6) after its work was saved.
ENDS_WITHOUT_TEARDOWN = frozenset({"worker"})
ran_command: str | None = None


def main(argv: Sequence[str] | None = None) -> int:
    global ran_command
    parser = _parser()
    args = parser.parse_args(argv)
    ran_command = args.func.__name__.removeprefix("_cmd_")
    from scaling_optuna.logs import configure_logging

    configure_logging(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {mask_url(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerError as e:
        print(f"error: {mask_url(str(e))}", file=sys.stderr)
        return 1
    except _Stopped as e:
        print(str(e), file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class _Stopped(Exception):
    """A command stopped by SIGTERM or Ctrl-C: its one line, and the exit status 128 + the signal's number."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.code = 128 + int(signal.Signals[signal_name])


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}; see '{self.prog} --help'", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _shared_options(*, top: bool) -> argparse.ArgumentParser:
    """``--log-level`` and ``--log-format``, accepted before the command and after it.

    Only the top-level parser has defaults: a subcommand's default would
    overwrite a value given before the command.
    """
    from scaling_optuna.logs import FORMATS
    from scaling_optuna.logs import LEVELS

    def default(value: str) -> str:
        return value if top else argparse.SUPPRESS

    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--log-level", default=default("info"), choices=LEVELS, help="least severe log lines shown (default info)")
    p.add_argument(
        "--log-format", default=default("text"), choices=FORMATS,
        help="text for people, json for log collectors: one object per line with level, time, message and fields such as size, trial, state, val_loss (default text)",
    )
    return p


def _storage_option(p: argparse.ArgumentParser, help: str, *, top: bool = False) -> None:
    p.add_argument("--storage", metavar="URL", default=(os.environ.get(STORAGE_ENV) or None) if top else argparse.SUPPRESS, help=help)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scaling-optuna",
        description="Measure how test error scales with training-set size, one Optuna study per size.",
        parents=[_shared_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"scaling-optuna {_version()}")
    _storage_option(parser, f"store URL, also accepted after the command (default: ${STORAGE_ENV})", top=True)
    shared = _shared_options(top=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, func, help: str, *, spec: bool = True, storage: str | None = None, **kwargs) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[shared], **kwargs)
        if spec:
            p.add_argument("spec", metavar="SPEC", help="experiment spec (.toml)")
        if storage is not False:
            _storage_option(p, storage or f"store URL (default: ${STORAGE_ENV}, else the spec's, else sqlite:///scaling-optuna.db)")
        p.set_defaults(func=func)
        return p

    # In the order `--help` lists them.
    _add_run_parser(command)
    _add_create_parser(command)
    _add_worker_parser(command)
    _add_status_parser(command)
    command("best", _cmd_best, "the best trial of every size")
    _add_proxy_parser(command)
    _add_report_parser(command)
    _add_compare_parser(command)
    _add_dashboard_parser(command)
    _add_fit_parser(command)
    return parser


def _add_run_parser(command: _Command) -> None:
    run = command("run", _cmd_run, "create the studies, run local workers with progress, print the best trial per size")
    run.add_argument("--workers", type=_positive_int, default=1, metavar="N", help="local worker processes (default 1)")
    _worker_options(run, threads="torch threads per worker (default: this machine's cores / --workers)")


def _add_create_parser(command: _Command) -> None:
    create = command("create", _cmd_create, "create the experiment's studies (idempotent; run it again to finish one that was cut off)")
    create.add_argument("--trials", type=_trials, metavar="N", help="trials per size (overrides the spec; sets the stored budget; at most 10,000)")
    _lower_budget_option(create)


def _add_worker_parser(command: _Command) -> None:
    worker = command(
        "worker", _cmd_worker, "pull and train trials until every study has its budget",
        epilog="Start one worker per core (each with the default --threads 1), or fewer with more threads each; "
        "on small models one thread per worker trains the most trials per hour.",
    )
    _worker_options(worker, threads="torch threads of this worker (default 1, so that several workers on one machine do not oversubscribe its cores)")
    # Before --threads existed, --workers N set the threads to cores / N; still accepted, not shown.
    worker.add_argument("--workers", type=_positive_int, help=argparse.SUPPRESS)
    worker.add_argument("--seed-offset", type=int, metavar="N", help="added to a seeded sampler's seed, so that workers do not propose the same parameters (default: from this host's name and process id)")


def _add_status_parser(command: _Command) -> None:
    status = command("status", _cmd_status, "trials complete/pruned/failed/handed back/lost/running per size")
    status.add_argument(
        "--watch", nargs="?", const=WATCH_INTERVAL_S, type=_watch_seconds, metavar="SECONDS",
        help=f"refresh every SECONDS (default {WATCH_INTERVAL_S:g}, at least {MIN_WATCH_INTERVAL_S:g}) until every budget is finished; Ctrl-C stops watching",
    )


def _add_proxy_parser(command: _Command) -> None:
    proxy = command(
        "proxy", _cmd_proxy, "serve the store through Optuna's gRPC storage proxy (workers use grpc://HOST:PORT)", spec=False,
        storage=f"the database behind the proxy (default: ${STORAGE_ENV})",
    )
    proxy.description = "serve the store through Optuna's gRPC storage proxy, so that hundreds of workers share its few database connections"
    proxy.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)")
    proxy.add_argument("--port", type=_port, default=13000, help="port (default 13000)")
    proxy.add_argument("--grpc-threads", type=_positive_int, default=16, metavar="N", help="gRPC request threads, one database connection each (default 16)")
    # The flag's first name, which read like torch's --threads of run and worker; still accepted, not shown.
    proxy.add_argument("--threads", type=_positive_int, dest="grpc_threads", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    _heartbeat_options(proxy)


def _add_report_parser(command: _Command) -> None:
    report = command("report", _cmd_report, "fit the scaling law to the best trial per size; write report.json and report.html")
    report.add_argument("--out", metavar="DIR", help="folder for report.json and report.html (default: report-<experiment>)")
    report.add_argument("--target", type=_target, metavar="VALUE", help="a test error, e.g. 0.02: how much data reaches it")
    report.add_argument("--bootstrap", choices=["points", "trials"], default="points", help="what the intervals resample: the fitted points (default) or the near-best trials of each size")
    report.add_argument("--no-publish", action="store_true", help="do not publish the plots to optuna-dashboard")


def _add_dashboard_parser(command: _Command) -> None:
    dashboard = command(
        "dashboard", _cmd_dashboard, "run optuna-dashboard on the store", spec=False,
        storage=f"store URL (default: ${STORAGE_ENV}, else {DEFAULT_STORAGE})",
    )
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    dashboard.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0 picks a free one)")


def _add_fit_parser(command: _Command) -> None:
    fit = command("fit", _cmd_fit, "fit a scaling law to a learning curve given as numbers", spec=False, storage=False)
    fit.add_argument("--sizes", required=True, metavar="N,N,...", help="training-set sizes, e.g. 100,200,400,800")
    fit.add_argument("--values", required=True, metavar="V,V,...", help="the metric at each size, e.g. 0.5,0.37,0.28,0.21")
    fit.add_argument("--target", metavar="VALUE", help="a value to reach: how much data it needs (a test error strictly between 0 and 1 when every value is one)")
    fit.add_argument("--plateau", metavar="VALUE", help="the best-guess error (small-data plateau), e.g. 0.9")
    fit.add_argument(
        "--form", choices=["auto", "saturating", "power"], default="auto",
        help="the law's form: saturating, a·n^b + c, levels off at c; power, a·n^b, has no floor; auto (default) predicts from a calibrated ensemble of curve families",
    )


def _add_compare_parser(command: _Command) -> None:
    compare = command(
        "compare", _cmd_compare,
        "set experiments on the same data against the first: paired differences, data-equivalent factor, crossing, "
        "what a target costs; write compare.json and compare.html",
        spec=False,
    )
    compare.add_argument("specs", nargs="+", metavar="SPEC", help="experiment specs (.toml) with the same data and seed; the first is the reference")
    compare.add_argument("--target", type=_target, metavar="VALUE", help="a test error, e.g. 0.02: the examples each needs, the cheapest way there, the next round to collect")
    compare.add_argument("--cost-per-example", type=_price, metavar="PRICE", help="what one more training example costs (default: the specs' [costs] per_example)")
    compare.add_argument("--cost-per-gpu-hour", type=_price, metavar="PRICE", help="what one hour of the workers' device costs (default: the specs' [costs] per_gpu_hour)")
    compare.add_argument("--out", metavar="DIR", help="folder for compare.json and compare.html (default: compare-<A>-vs-<B>)")
    compare.add_argument("--seed", type=_non_negative_int, default=0, metavar="N", help="seed of the draws behind the intervals (default 0)")
    compare.add_argument("--no-publish", action="store_true", help="do not publish the figure and note to optuna-dashboard")


def _lower_budget_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-lower-budget", action="store_true",
        help="set a budget (--trials, trials_per_size) below the trials a size has already finished; they stay, and nothing more runs there (refused otherwise)",
    )


def _worker_options(p: argparse.ArgumentParser, *, threads: str) -> None:
    p.add_argument("--trials", type=_trials, metavar="N", help="trials per size (overrides the spec; at most 10,000)")
    _lower_budget_option(p)
    p.add_argument("--threads", type=_positive_int, metavar="N", help=threads)
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: the spec's)")
    p.add_argument("--artifacts", metavar="PATH", help="where trained weights go: a folder shared by all workers, or s3://bucket (default: the spec's artifacts, else $SCALING_OPTUNA_ARTIFACTS, else beside a SQLite store)")
    _heartbeat_options(p)


def _heartbeat_options(p: argparse.ArgumentParser) -> None:
    from scaling_optuna.storages._shared import HEARTBEAT_INTERVAL_S

    p.add_argument("--heartbeat", type=_positive_int, default=HEARTBEAT_INTERVAL_S, metavar="SECONDS", help=f"heartbeat interval of running trials (default {HEARTBEAT_INTERVAL_S})")
    p.add_argument("--grace", type=_positive_int, metavar="SECONDS", help="a trial without heartbeat this long is failed and retried (default 3 × --heartbeat)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        return version("scaling-optuna")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


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


def _trials(text: str) -> int:
    from scaling_optuna.spec import check_trials

    try:
        return check_trials(_positive_int(text), "--trials")
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--trials: ")) from None


def _target(text: str) -> float:
    from scaling_optuna.report import validate_target

    try:
        return validate_target(float(text))  # type: ignore[return-value]
    except ValueError as e:  # a non-number, or UserError's range message
        raise argparse.ArgumentTypeError(str(e) if isinstance(e, UserError) else f"{text!r} is not a number; pass a test error such as 0.05") from None


def _price(text: str) -> float:
    from scaling_optuna.compare.costs import check_rate

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; pass a price such as 0.05") from None
    try:
        return check_rate(value, "the price")  # type: ignore[return-value]
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or a positive integer")
    return value


def _watch_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds; pass e.g. --watch 5 (and SPEC before --watch)"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds; pass e.g. --watch 5")
    if value < MIN_WATCH_INTERVAL_S:
        raise argparse.ArgumentTypeError(
            f"{text} s is too often: a watch reads every study each time; pass at least --watch {MIN_WATCH_INTERVAL_S:g}"
        )
    return value


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
    spec = _spec(args)
    exp = _create(spec, args, allow_lower_budget=args.allow_lower_budget)
    print(f"experiment {spec.name!r}: {len(exp.sizes)} studies in {mask_url(exp.storage_url)}")
    for size in exp.sizes:
        print(f"  {exp.studies[size].study_name}  ({size} training examples)")
    return 0


def _create(spec, args: argparse.Namespace, **kwargs):
    """``create_experiment`` with its progress in the log, stopped between two steps by SIGTERM or Ctrl-C."""
    from scaling_optuna.experiment import CreationStopped
    from scaling_optuna.experiment import create_experiment
    from scaling_optuna.progress import creation_line
    from scaling_optuna.signals import StopOnSignals

    log = logging.getLogger("scaling_optuna.create")
    clock: list[float] = []  # when the first study was begun, and when progress was last said

    def progress(done: int, total: int, queued: int) -> None:
        now = time.monotonic()
        clock[:] = clock or [now, now]
        if now - clock[1] >= CREATE_PROGRESS_S:
            clock[1] = now
            fields = {"event": "create_progress", "studies_done": done, "studies": total, "trials_queued": queued}
            log.info("%s", creation_line(done, total, queued, now - clock[0]), extra=fields)

    stop = threading.Event()
    with StopOnSignals(stop) as signals:
        try:
            return create_experiment(spec, args.storage, stop=stop, progress=progress, **kwargs)
        except CreationStopped as e:
            raise _Stopped(
                f"stopped by {signals.received} after {e.done} of {e.total} studies; the studies created so far are "
                f"usable, and the same command finishes the rest", signals.received or "SIGTERM",
            ) from None


def _cmd_worker(args: argparse.Namespace) -> int:
    # Spec and URL first: a mistake in either is reported before the seconds that importing torch takes.
    spec = _spec(args)
    check_url(args.storage or spec.storage)
    from scaling_optuna.worker import install_signal_handlers
    from scaling_optuna.worker import run_worker

    stop = threading.Event()
    restore = install_signal_handlers(stop)
    try:
        summary = run_worker(
            spec,
            args.storage,
            threads=_worker_threads(args),
            device=args.device,
            # The store holds the budget: --trials changes it for every worker, and `status` shows it.
            trials=args.trials,
            stop=stop,
            heartbeat_interval=args.heartbeat,
            grace_period=args.grace,
            artifacts=args.artifacts,
            seed_offset=args.seed_offset if args.seed_offset is not None else _process_seed_offset(),
            allow_lower_budget=args.allow_lower_budget,
            stop_deadline_s=STOP_DEADLINE_S,
        )
    finally:
        restore()
    how = "stopped by signal, trial handed back" if summary.stopped_by_signal else "no trials left"
    taken = f", {summary.taken_over} taken over" if summary.taken_over else ""
    print(
        f"worker done ({how}): {summary.complete} complete, {summary.pruned} pruned, {summary.failed} failed, "
        f"{summary.handed_back} handed back{taken}"
    )
    return 0


def _worker_threads(args: argparse.Namespace) -> int:
    """``worker``'s torch threads: ``--threads``, else cores / ``--workers`` (its old spelling), else 1."""
    if args.threads:
        return args.threads
    if args.workers:
        from scaling_optuna.worker import default_threads

        threads = default_threads(args.workers)
        # Logged, not printed: a JSON log must hold JSON lines only.
        logging.getLogger("scaling_optuna.cli").warning(
            "worker --workers is deprecated; this worker uses %d torch thread(s): pass --threads %d", threads, threads,
            extra={"event": "deprecated_flag"},
        )
        return threads
    return 1


def _cmd_run(args: argparse.Namespace) -> int:
    spec = _spec(args)
    check_url(args.storage or spec.storage)
    from scaling_optuna.launcher import WorkerGroup
    from scaling_optuna.worker import check_threads
    from scaling_optuna.worker import default_threads

    threads = args.threads or default_threads(args.workers)
    check_threads(threads)
    exp = _create(
        spec, args, device=args.device or spec.trainer.device, workers=args.workers, artifacts=args.artifacts,
        allow_lower_budget=args.allow_lower_budget,
    )
    print(
        f"experiment {spec.name!r}: {len(exp.sizes)} sizes {exp.sizes[0]}..{exp.sizes[-1]}, "
        f"{_trials_each(spec)}, {args.workers} worker(s) × {threads} thread(s), "
        f"store {mask_url(exp.storage_url)}",
        flush=True,
    )
    # The URL goes through the environment: a password on a command line shows in `ps`.
    # Workers log warnings only: their trial lines would break the progress line.
    command = [
        sys.executable, "-m", "scaling_optuna", "--log-level", "warning", "--log-format", args.log_format,
        "worker", args.spec, "--threads", str(threads), "--heartbeat", str(args.heartbeat),
    ]
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
        print(f"\n{_stopped(exp, group, args)}", file=sys.stderr)
        return 128 + group.stop_signal
    codes = group.returncodes()
    print()
    _print_best(exp)
    from scaling_optuna.report.budget import budget_warnings

    for line in budget_warnings(exp):
        print(f"warning: {line}", flush=True)
    if any(codes):
        print(f"error: {sum(1 for c in codes if c)} worker(s) failed (exit codes {codes}); see their messages above", file=sys.stderr)
        return 1
    print(f"\nnext: {_next_command('report', args)}")
    return 0


def _trials_each(spec) -> str:
    """``12 trials each``, or with re-measuring ``12 trials + 4 re-run(s) each``."""
    reruns = spec.remeasure.trials(spec.trials_per_size)
    return f"{spec.trials_per_size} trials + {reruns} re-run(s) each" if reruns else f"{spec.trials_per_size} trials each"


def _stopped(exp, group, args: argparse.Namespace) -> str:
    """What ``run`` says when a signal stopped it: whether its workers' trials really went back to the queue.

    A worker that cannot write (a full disk, a lost store) leaves its trial
    RUNNING; its heartbeat then stops, and the next run re-runs it after the
    grace period. The store is asked, not the workers' intentions.
    """
    from optuna.trial import TrialState

    from scaling_optuna.storages._shared import HEARTBEAT_ATTR
    from scaling_optuna.storages._shared import checked_grace_period
    from scaling_optuna.storages._shared import describe_error

    def owner(trial) -> str | None:
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
        return beat[2] if isinstance(beat, list) and len(beat) > 2 else None

    name = signal.Signals(group.stop_signal).name
    ours = {f"{socket.gethostname()}:{p.pid}" for p in group.processes}
    grace = checked_grace_period(args.heartbeat, args.grace)
    later = f"the next run re-runs them once their heartbeat is {grace} s old: run the same command to continue"
    try:
        left = sum(
            1
            for study in exp.studies.values()
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if owner(trial) in ours | {None}  # not another machine's: ours, or claimed and never beaten
        )
    except Exception as e:  # the fault that stopped the workers may stop this read too
        return f"stopped by {name}; the store could not be asked whether running trials were handed back ({describe_error(e)}); {later}"
    if left == 0:
        return f"stopped by {name}: running trials were handed back; run the same command to continue"
    failed = sum(1 for code in group.returncodes() if code not in (0, None, -group.stop_signal, 128 + group.stop_signal))
    return (
        f"stopped by {name}: {left} running trial(s) could not be handed back ({failed} worker(s) failed: see their "
        f"errors above) and stay RUNNING; {later}"
    )


def _next_command(command: str, args: argparse.Namespace) -> str:
    """``command`` on the same spec and store, the store's password masked (a store from the environment is left out)."""
    from scaling_optuna.progress import next_command

    given = args.storage if args.storage and args.storage != os.environ.get(STORAGE_ENV) else None
    return next_command(command, args.spec, mask_url(given) if given else None)


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
    """Print progress until every worker has exited: on a terminal one line kept fresh, else a line per change."""
    from scaling_optuna.progress import progress_line
    from scaling_optuna.progress import tally

    start_time = time.monotonic()
    start = tally(exp.status())
    tty = sys.stdout.isatty()
    ever_running = False
    last_line, last_counts = "", None
    while True:
        alive = any(w.poll() is None for w in workers)
        now = tally(exp.status())
        ever_running = ever_running or now.running > 0 or now.finished > start.finished
        line = progress_line(now, start, time.monotonic() - start_time, starting=not ever_running)
        counts = dataclasses.replace(now, work_done=0, work_left=0)
        if tty:
            print("\r" + line.ljust(len(last_line)), end="", flush=True)
        elif counts != last_counts:
            # A finished (or newly running) trial is printed at once; an unchanged store prints nothing.
            print(line, flush=True)
        last_line, last_counts = line, counts
        if not alive:
            break
        time.sleep(RUN_POLL_S)
    if tty:
        print()


def _cmd_proxy(args: argparse.Namespace) -> int:
    from scaling_optuna.storages.proxy import serve

    serve(args.storage, host=args.host, port=args.port, threads=args.grpc_threads, heartbeat_interval=args.heartbeat, grace_period=args.grace)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from scaling_optuna.experiment import load_experiment
    from scaling_optuna.progress import status_table

    exp = load_experiment(_spec(args), args.storage)
    if args.watch is None:
        print(status_table(exp.status()))
        return 0
    try:
        _watch_status(exp, args.watch)
    except KeyboardInterrupt:
        print()  # Ctrl-C is how watching ends: no message, status 0
    return 0


def _watch_status(exp, interval_s: float) -> None:
    """Print the status table and a progress line every ``interval_s`` until every budget is finished.

    On a terminal the screen is redrawn; elsewhere (a log file) a table is
    printed only when the counts change.
    """
    from scaling_optuna.progress import progress_line
    from scaling_optuna.progress import status_table
    from scaling_optuna.progress import tally

    start_time = time.monotonic()
    start = None
    tty = sys.stdout.isatty()
    last_rows = None
    while True:
        rows = exp.status()
        now = tally(rows)
        start = start or now
        if rows != last_rows or tty:
            text = f"{status_table(rows)}\n{progress_line(now, start, time.monotonic() - start_time)}"
            print(("\033[H\033[J" if tty else "\n" if last_rows is not None else "") + text, flush=True)
        last_rows = rows
        if now.done:
            return
        time.sleep(interval_s)


def _cmd_best(args: argparse.Namespace) -> int:
    from scaling_optuna.experiment import load_experiment

    _print_best(load_experiment(_spec(args), args.storage))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from scaling_optuna.dashboard import planned_publication
    from scaling_optuna.dashboard import publish_report
    from scaling_optuna.experiment import load_experiment
    from scaling_optuna.report import build_report
    from scaling_optuna.report import check_output_dir
    from scaling_optuna.report import report_files
    from scaling_optuna.report import stage_report

    exp = load_experiment(_spec(args), args.storage)
    # A folder that cannot be written must fail the command before the fits, and before the store is written to.
    out = check_output_dir(args.out or f"report-{exp.spec.name}")
    report = build_report(exp, target=args.target, bootstrap=args.bootstrap)
    if not args.no_publish:
        report.dashboard = planned_publication(exp)
    # Every file is written (under a temporary name) before anything is published.
    with stage_report(report, out) as staged:
        if not args.no_publish:
            published = publish_report(exp, report)
            if published != report.dashboard:  # it failed: the files say so
                report.dashboard = published
                staged.write(report_files(report))
        json_path, html_path = staged.commit()
    print(report.to_text())
    print(f"\nwrote {json_path} and {html_path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from scaling_optuna.compare import compare_experiments
    from scaling_optuna.compare import comparison_files
    from scaling_optuna.dashboard import planned_comparison
    from scaling_optuna.dashboard import publish_comparison
    from scaling_optuna.experiment import load_experiment
    from scaling_optuna.report import stage_files
    from scaling_optuna.spec import load_spec

    if len(args.specs) < 2:
        raise UserError(f"compare needs two or more experiment specs, got {args.specs[0]}: pass e.g. studies/digits.toml studies/digits-mlp.toml")
    experiments = [load_experiment(load_spec(path), args.storage) for path in args.specs]
    comparison = compare_experiments(
        experiments, target=args.target, cost_per_example=args.cost_per_example, cost_per_gpu_hour=args.cost_per_gpu_hour, seed=args.seed,
    )
    out = args.out or "compare-" + "-vs-".join(comparison.names)
    if not args.no_publish:
        comparison.dashboard = planned_comparison(experiments, comparison)
    # Every file is written (under a temporary name) before anything is published.
    with stage_files(out, comparison_files(comparison)) as staged:
        if not args.no_publish:
            published = publish_comparison(experiments, comparison)
            if published != comparison.dashboard:  # it failed somewhere: the files say so
                comparison.dashboard = published
                staged.write(comparison_files(comparison))
        json_path, html_path = staged.commit()
    print(comparison.to_text())
    print(f"\nwrote {json_path} and {html_path}")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from scaling_optuna.dashboard import serve

    serve(args.storage or DEFAULT_STORAGE, host=args.host, port=args.port)
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from scaling_optuna.report import curve_summary

    from scaling_optuna import _checks

    values = _parse_numbers(args.values, "--values")
    sizes = [_checks.whole_number(v, "--sizes") for v in _parse_numbers(args.sizes, "--sizes")]
    plateau = _parse_number(args.plateau, "--plateau")
    print(curve_summary(sizes, values, target=_fit_target(args.target, values, plateau), plateau=plateau, form=args.form))
    return 0


def _fit_target(text: str | None, values: list[float], plateau: float | None) -> float | None:
    """``fit --target``: checked as ``report --target`` is when the values are test errors (below ``--plateau``,
    the error of guessing), else any positive value."""
    from scaling_optuna.report import validate_target

    if text is None:
        return None
    target = _parse_number(text, "--target")
    return validate_target(target, error=all(0 <= v <= 1 for v in values), majority_error=plateau)


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
    _print_reruns(exp)


def _print_reruns(exp) -> None:
    from scaling_optuna.report.reruns import rerun_table

    table = rerun_table(exp)
    if table is not None:
        print()
        print(table)


if __name__ == "__main__":
    sys.exit(main())
