"""Several hosts on one machine: network namespaces on a private bridge, a private PostgreSQL, and faults.

Each host is a network namespace with its own address (``10.247.0.N``) and its
own hostname, working directory, HOME and TMPDIR, so nothing reaches another
host through 127.0.0.1 or a shared path by accident. The hosts' cables (veth
pairs) meet in a bridge that lives in a namespace of its own: the machine's
own network is never touched. Pulling a host's cable (:meth:`Network.cut`)
drops its packets silently, as a failed switch port would.

Everything is named ``sotest-<pid>-<token>-…``, and torn down when the
``Network`` closes, also when a test fails or is interrupted; a run that was
killed outright leaves namespaces and folders behind, which the next run
removes (those whose creating process is gone).

Needs root and iproute2 (``ip netns``); :func:`unavailable_reason` says why
not, if not. Example::

    with Network(tmp_path) as net:
        db, w1 = net.add_host("db"), net.add_host("w1")
        pg = net.start_postgres(db)
        url = pg.create_database("exp")
        worker = w1.start(["python", "-m", "scaling_optuna", "worker", "spec.toml", "--storage", url], "worker")
        net.cut(w1)
        net.heal(w1)
        pg.stop()
        pg.start()
        worker.kill()
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence, TypeVar

PREFIX = "sotest-"
SUBNET = "10.247.0"
ROOT = Path(__file__).resolve().parents[1]
_T = TypeVar("_T")
# Variables that would point a host at a store or a folder of the machine running the test.
_PRIVATE_ENV = ("SCALING_OPTUNA_STORAGE", "SCALING_OPTUNA_ARTIFACTS", "PGHOST", "PGPORT", "PGDATABASE", "TMPDIR")


def unavailable_reason() -> str | None:
    """Why hosts cannot be made here (not root, no ``ip netns``, no PostgreSQL), or ``None``."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("unshare") is None or shutil.which("runuser") is None:
        return "needs iproute2 (ip), util-linux (unshare, runuser)"
    if postgres_bindir() is None:
        return "needs PostgreSQL's server binaries (initdb, pg_ctl)"
    probe = f"{PREFIX}{os.getpid()}-probe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def postgres_bindir() -> Path | None:
    """The folder of PostgreSQL's initdb and pg_ctl (Debian keeps them out of PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if Path(folder, "initdb").exists():
            return Path(folder)
    return None


def wait_for(predicate: Callable[[], _T], timeout: float, what: str, every: float = 0.5) -> _T:
    """Poll ``predicate`` until it returns something true; at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespace_pids(netns: str) -> list[int]:
    done = _ip("netns", "pids", netns, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def _empty_namespace(netns: str, timeout: float = 10) -> None:
    """SIGKILL every process in ``netns`` and wait until none is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = _namespace_pids(netns)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def remove_leftovers() -> list[str]:
    """Remove the namespaces and folders of earlier runs whose process is gone; returns their names."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX) and not _owner_alive(name):
            _empty_namespace(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for folder in glob.glob(os.path.join(tempfile.gettempdir(), f"{PREFIX}*")):
        if not _owner_alive(os.path.basename(folder)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _owner_alive(name: str) -> bool:
    pid = name[len(PREFIX):].split("-", 1)[0]
    return not pid.isdigit() or _alive(int(pid))


class Process:
    """A command running on a host; its output goes to a log file in the host's home."""

    def __init__(self, host: Host, argv: Sequence[str], label: str, env: dict[str, str] | None = None) -> None:
        self.host, self.label, self.argv = host, label, list(argv)
        self.log = host.home / f"{label}.log"
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                host.command(argv), cwd=host.home, env=host.env(env), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The command's own process id (``ip netns exec``, ``unshare`` and ``sh`` exec into it)."""
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a pulled plug would."""
        self.signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self) -> None:
        """SIGTERM, as a scheduler or ``docker stop`` would; does not wait."""
        self.signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """The exit status, or ``None`` if still running after ``timeout`` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self, tail: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-tail:]

    def stop_group(self) -> None:
        """SIGKILL the command and everything it started in its session (teardown)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)


class Host:
    """One network namespace with its own address, hostname, working directory, HOME and TMPDIR."""

    def __init__(self, network: Network, name: str, index: int) -> None:
        self.network, self.name = network, name
        self.netns = f"{network.tag}-{name}"
        self.address = f"{SUBNET}.{index}"
        self.cable = f"c-{name}"[:15]  # the bridge's end of the host's veth pair
        self.home = network.folder / name
        (self.home / "tmp").mkdir(parents=True)
        self.processes: list[Process] = []

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host: its namespace, and its own hostname (a UTS namespace)."""
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *argv]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env.update(HOME=str(self.home), TMPDIR=str(self.home / "tmp"), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        env.update(extra or {})
        return env

    def start(self, argv: Sequence[str], label: str, env: dict[str, str] | None = None) -> Process:
        """Start ``argv`` on this host in the background."""
        process = Process(self, argv, label, env)
        self.processes.append(process)
        return process

    def run(self, argv: Sequence[str], timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``argv`` on this host and wait for it (at most ``timeout`` seconds)."""
        return subprocess.run(self.command(argv), cwd=self.home, env=self.env(env), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def pids(self) -> list[int]:
        """Every process now in this host's namespace."""
        return _namespace_pids(self.netns)

    def stop_all(self) -> None:
        """SIGKILL every process on this host (and wait until none is left), as a power cut would."""
        _empty_namespace(self.netns)
        for process in self.processes:
            process.wait(5)


class Postgres:
    """A private PostgreSQL server on one host, listening only on that host's address.

    Its data folder lives in a temporary folder owned by the ``postgres``
    user; it trusts the test's subnet and nothing else.
    """

    def __init__(self, host: Host, folder: Path, port: int = 15432) -> None:
        self.host, self.folder, self.port = host, folder, port
        self.data = folder / "data"
        self.log = folder / "postgres.log"
        self.bindir = postgres_bindir()
        assert self.bindir is not None, unavailable_reason()

    def _as_postgres(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = self.host.command(["runuser", "-u", "postgres", "--", *argv])
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.folder, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}{self._log_tail()}")
        return done

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def init(self) -> None:
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '{self.host.address}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\nfsync = off\nmax_connections = 200\n"
            )
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")

    def start(self) -> None:
        """Start the server (``pg_ctl start``), waiting until it accepts connections."""
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server as an administrator would (``pg_ctl stop -m fast``): every connection is cut."""
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host.address}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres", via: Host | None = None, timeout: float = 20) -> list[list[str]]:
        """Rows of ``sql`` (tab-separated fields), run with psql from host ``via`` (default: the server's)."""
        host = via or self.host
        done = subprocess.run(
            host.command(["psql", "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", self.host.address, "-p", str(self.port),
                          "-U", "postgres", "-d", database, "-c", sql]),
            capture_output=True, text=True, timeout=timeout, env=host.env(), stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines()]

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)


class Network:
    """Hosts on one private bridge; a context manager that tears everything down on exit.

    Args:
        folder: where the hosts' homes (and the processes' logs) go; it is kept.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.tag = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.bridge_ns = f"{self.tag}-br"
        self.hosts: list[Host] = []
        self.postgres: list[Postgres] = []
        self._scratch: list[Path] = []
        self._mounts: list[Path] = []
        self._namespaces: list[str] = []

    def __enter__(self) -> Network:
        remove_leftovers()
        try:
            self._namespace(self.bridge_ns)
            _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add_host(self, name: str) -> Host:
        """A new host on the bridge, with the next free address of the subnet."""
        host = Host(self, name, len(self.hosts) + 2)
        self._namespace(host.netns)
        _ip("-n", self.bridge_ns, "link", "add", host.cable, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("-n", self.bridge_ns, "link", "set", host.cable, "master", "br0", "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        self.hosts.append(host)
        return host

    def start_postgres(self, host: Host, port: int = 15432, disk: str | None = None) -> Postgres:
        """initdb and start a private PostgreSQL server on ``host``; ``disk`` (``mount``'s size, ``96m``)
        puts its data on a tmpfs of that size, which a test can fill."""
        folder = Path(tempfile.mkdtemp(prefix=f"{self.tag}-pg-"))
        self._scratch.append(folder)
        if disk is not None:
            self.mount_tmpfs(folder, disk)
        folder.chmod(0o755)
        server = Postgres(host, folder, port)
        self.postgres.append(server)
        server.init()
        server.start()
        return server

    def mount_tmpfs(self, folder: Path, size: str) -> Path:
        """A tmpfs of ``size`` on ``folder`` (created if missing), unmounted when the network closes."""
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
        self._mounts.append(folder)
        return folder

    def cut(self, host: Host) -> None:
        """Pull the host's cable at the bridge: its packets are dropped, its connections hang."""
        _ip("-n", self.bridge_ns, "link", "set", host.cable, "down")

    def heal(self, host: Host) -> None:
        _ip("-n", self.bridge_ns, "link", "set", host.cable, "up")

    def close(self) -> None:
        """Stop every process and server, delete every namespace and scratch folder; never raises."""
        for host in self.hosts:
            for process in host.processes:
                with contextlib.suppress(Exception):
                    process.stop_group()
        for server in self.postgres:
            if server.running():
                with contextlib.suppress(Exception):
                    subprocess.run(
                        server.host.command(["runuser", "-u", "postgres", "--", str(server.bindir / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "-w", "-t", "20", "stop"]),
                        capture_output=True, timeout=30, cwd=server.folder,
                    )
        for name in reversed(self._namespaces):
            with contextlib.suppress(Exception):
                _empty_namespace(name)
            with contextlib.suppress(Exception):
                _ip("netns", "del", name, check=False)
        self._namespaces.clear()
        for folder in reversed(self._mounts):
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
        self._mounts.clear()
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)
        self._scratch.clear()
