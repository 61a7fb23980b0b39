"""The stack under test, as processes on this machine: fakes, gunicorn, qcluster, PostgreSQL.

`Stack` starts the three fakes (each in its own process), gunicorn and a django-q2 cluster
against one PostgreSQL database, and `Sampler` follows the CPU time and RSS of each group of
processes (web, workers, postgres backends of that database, fakes, harness) while it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a port the kernel just handed out on 127.0.0.1 (ephemeral)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(url: str, what: str, timeout: float = 30.0, proc: subprocess.Popen | None = None):
    """Wait until `url` answers any HTTP status; raise naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            return requests.get(url, timeout=2)
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:.0f} s")


def database_recreate(url: str) -> None:
    """Drop and create the database named by `url` (a fresh benchmark database)."""
    name = urlsplit(url).path.lstrip("/")
    admin = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


@contextlib.contextmanager
def autovacuum_on(url: str) -> Iterator[str]:
    """Run with the server's autovacuum on, as every production server has it; say what was done.

    Some development servers turn it off. Without it the outbox tables are never analysed or
    vacuumed during a run: the planner works from the empty tables' statistics and every
    index keeps the entry of each row version since the run began, which is nothing like
    production. Turned on for the run (ALTER SYSTEM, a superuser's), and back off after.
    """
    admin = urlsplit(url)._replace(path="/postgres").geturl()
    unchanged = None  # what to say when nothing was changed (no connection held meanwhile)
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SHOW autovacuum").fetchone()[0] == "on":
            unchanged = "on (the server's own setting)"
        else:
            try:
                conn.execute("ALTER SYSTEM SET autovacuum = on")
                conn.execute("SELECT pg_reload_conf()")
            except psycopg.Error as exc:
                unchanged = f"off: the server has it off and it could not be turned on ({exc})"
    if unchanged is not None:
        yield unchanged
        return
    try:
        yield "on for this run (the server had it off; turned off again after)"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET autovacuum")
            conn.execute("SELECT pg_reload_conf()")


def database_url_of(db: dict[str, Any]) -> str:
    """Return a postgres:// URL for a Django DATABASES entry."""
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Fakes:
    """The three fakes, each a process: base URLs, processes and the FCM service-account file."""

    fcm: str = ""
    webpush: str = ""
    webhook: str = ""
    service_account_file: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def control(self, name: str, action: str, body: dict | None = None, get: bool = False) -> Any:
        """Call a fake's /_control/ endpoint and return its JSON answer."""
        url = f"{getattr(self, name)}/_control/{action}"
        if get:
            answer = requests.get(url, params=body, timeout=120)
        else:
            answer = requests.post(url, json=body or {}, timeout=120)
        answer.raise_for_status()
        return answer.json()

    def reset(self) -> None:
        """Forget messages, counters, scripts and faults at all three (keep subscriptions)."""
        self.control("fcm", "reset")
        self.control("webpush", "reset")
        self.control("webhook", "reset")

    def set_faults(
        self,
        *,
        gone: float,
        throttle: float,
        retry_after: int,
        latency_ms: int,
        seed: int,
        fcm_throttle: float | None = None,
    ) -> None:
        """Answer `gone` 410/UNREGISTERED, `throttle` 429 + Retry-After, add latency.

        `fcm_throttle` overrides `throttle` at FCM: Keymaster waits at least 60 s after an FCM
        quota error, longer than a smoke test should.
        """
        self.control(
            "fcm",
            "faults",
            {
                "unregistered_rate": gone,
                "quota_rate": throttle if fcm_throttle is None else fcm_throttle,
                "quota_retry_after": retry_after,
                "latency_ms": latency_ms,
                "seed": seed,
            },
        )
        self.control(
            "webpush",
            "faults",
            {
                "gone": gone,
                "throttle": throttle,
                "retry_after": retry_after,
                "latency_ms": latency_ms,
                "seed": seed,
            },
        )


class Stack:
    """Start and stop the fakes, gunicorn and qcluster for one benchmark run."""

    def __init__(
        self,
        *,
        database_url: str,
        web_workers: int,
        q_workers: int,
        workdir: Path,
        settings_env: dict[str, str],
        keep_received: int | None = None,
        web_server: str = "asgi",
        sql_dir: Path | None = None,
        web_db_pool: int = 0,
    ) -> None:
        self.web_db_pool = web_db_pool
        self.database_url = database_url
        self.web_server = web_server
        self.web_workers = web_workers
        self.q_workers = q_workers
        self.workdir = workdir
        self.settings_env = settings_env
        self.keep_received = keep_received
        self.fakes = Fakes()
        self.web: subprocess.Popen | None = None
        self.workers: subprocess.Popen | None = None
        self.web_url = ""
        workdir.mkdir(parents=True, exist_ok=True)
        self.sql_dir = sql_dir or Path(tempfile.mkdtemp(prefix="sql-", dir=workdir))
        self._logs: list[Any] = []
        # More stacks on the same database (`--stacks N`): their web and worker processes are
        # sampled with this one's, as one more machine's would be.
        self.others: list[Stack] = []

    # -- processes ---------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_fakes(self) -> Fakes:
        """Start FakeFcm, WebPushFake and WebhookFake, each in its own process."""
        python = sys.executable
        ports = {name: free_port() for name in ("fcm", "webpush", "webhook")}
        sa_file = self.workdir / "fcm-service-account.json"
        sa_file.unlink(missing_ok=True)  # the fake writes a new one naming its own URL
        keep = [] if self.keep_received is None else ["--keep-received", str(self.keep_received)]
        commands = {
            "fcm": [python, "-m", "fakes.fcm", "--port", str(ports["fcm"]), "--keep-messages"]
            + [str(self.keep_received or 100_000), "--service-account", str(sa_file)],
            "webpush": [python, "-m", "fakes.webpush", "--port", str(ports["webpush"]), *keep],
            "webhook": [python, "-m", "fakes.webhook", "--port", str(ports["webhook"]), *keep],
        }
        for name, command in commands.items():
            self.fakes.procs[name] = self._spawn(f"fake-{name}", command, dict(os.environ))
            setattr(self.fakes, name, f"http://127.0.0.1:{ports[name]}")
        for name, proc in self.fakes.procs.items():
            wait_http(f"{getattr(self.fakes, name)}/_control/stats", f"fake {name}", proc=proc)
        while not sa_file.exists() or not sa_file.read_text().strip():
            time.sleep(0.05)
        self.fakes.service_account_file = str(sa_file)
        return self.fakes

    def env(self) -> dict[str, str]:
        """The environment gunicorn and qcluster run with."""
        return {
            **os.environ,
            **self.settings_env,
            "DJANGO_SETTINGS_MODULE": "keymaster.settings",
            "DATABASE_URL": self.database_url,
            "FCM_CREDENTIALS_FILE": self.fakes.service_account_file,
            "FCM_API_URL": self.fakes.fcm,
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "Q_WORKERS": str(self.q_workers),
            "BENCH_SQL_COUNT_DIR": str(self.sql_dir),
        }

    def start_web(self) -> str:
        """Start gunicorn on an ephemeral port; return its URL.

        `web_server` "asgi" is production's (keymaster/gunicorn_conf.py: the asyncio worker on
        keymaster.asgi); "sync" is the sync worker on keymaster.wsgi that the benchmark ran
        before issue 22 (33c1b55), kept to compare the accept phase of the two.
        """
        port = free_port()
        if self.web_server == "sync":
            command = [sys.executable, "-m", "gunicorn", "keymaster.wsgi"]
            config = "python:bench.gunicorn_sync_conf"
        else:
            command = [sys.executable, "-m", "gunicorn", "keymaster.asgi:application"]
            config = "python:bench.gunicorn_conf"
        command += ["--workers", str(self.web_workers), "--bind", f"127.0.0.1:{port}"]
        command += ["--config", config, "--backlog", "2048"]
        pool = 0 if self.web_server == "sync" else self.web_db_pool  # sync: as at 33c1b55
        # asgi: keymaster/gunicorn_conf.py sets DB_POOL_MAX_SIZE from WEB_DB_POOL_SIZE.
        env = self.env() | {"DB_POOL_MAX_SIZE": str(pool), "WEB_DB_POOL_SIZE": str(pool)}
        self.web = self._spawn("gunicorn", command, env)
        self.web_url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.web_url}/healthz", "gunicorn", proc=self.web)
        return self.web_url

    def start_workers(self) -> None:
        """Start the django-q2 cluster (`Q_WORKERS` worker processes)."""
        self.workers = self._spawn("qcluster", [sys.executable, "-m", "bench.qcluster"], self.env())
        deadline = time.monotonic() + 30
        while len(_tree(self.workers.pid)) < self.q_workers + 1:
            if self.workers.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("qcluster did not start; see its log in " + str(self.workdir))
            time.sleep(0.1)

    def pause_workers(self) -> None:
        """Freeze the cluster (SIGSTOP), so an accept measurement has the CPU to itself."""
        if self.workers is not None:
            os.killpg(self.workers.pid, signal.SIGSTOP)

    def resume_workers(self) -> None:
        """Let a frozen cluster go on (SIGCONT)."""
        if self.workers is not None:
            os.killpg(self.workers.pid, signal.SIGCONT)

    def start_more(self, count: int) -> list[Stack]:
        """Start `count` more stacks (gunicorn + qcluster each) on this one's database and fakes.

        Each is what one more machine would run: its own gunicorn and django-q2 process groups,
        the same PostgreSQL. The fakes stand for the providers, so they are shared; each extra
        stack's statement counts go to this one's directory (one file per process).
        """
        for _ in range(count):
            other = Stack(
                database_url=self.database_url,
                web_workers=self.web_workers,
                q_workers=self.q_workers,
                workdir=self.workdir / f"stack-{len(self.others) + 2}",
                settings_env=self.settings_env,
                keep_received=self.keep_received,
                web_server=self.web_server,
                sql_dir=self.sql_dir,
                web_db_pool=self.web_db_pool,
            )
            other.fakes = Fakes(  # the same providers; stop() leaves their processes alone
                fcm=self.fakes.fcm,
                webpush=self.fakes.webpush,
                webhook=self.fakes.webhook,
                service_account_file=self.fakes.service_account_file,
            )
            self.others.append(other)
            try:
                other.start_web()
                other.start_workers()
            except BaseException:
                self.stop_more()
                raise
        return self.others[-count:] if count else []

    def stop_more(self) -> None:
        """Stop the stacks `start_more` started."""
        while self.others:
            self.others.pop().stop()

    def stop(self) -> None:
        """Stop every process this stack started (TERM, then KILL after 15 s)."""
        self.stop_more()
        procs = [p for p in (self.workers, self.web, *self.fakes.procs.values()) if p]
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        for log in self._logs:
            log.close()
        if self.fakes.procs:  # the first stack, last to stop
            connections_release()

    def groups(self) -> dict[str, Any]:
        """Process groups to sample: name -> callable returning the pids in it now."""
        fake_pids = {name: proc.pid for name, proc in self.fakes.procs.items()}

        def trees(kind: str) -> list[int]:
            procs = (getattr(s, kind) for s in (self, *self.others))
            return [pid for proc in procs if proc for pid in _tree(proc.pid)]

        return {
            "web": lambda: trees("web"),
            "workers": lambda: trees("workers"),
            "postgres": lambda: _backends(self.database_url),
            "fakes": lambda: [p for pid in fake_pids.values() for p in _tree(pid)],
            "harness": lambda: [os.getpid()],
        }


def _tree(pid: int) -> list[int]:
    try:
        root = psutil.Process(pid)
        return [pid] + [child.pid for child in root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


_backend_conn: dict[str, Any] = {}


def _held(url: str) -> psycopg.Connection:
    """One connection per URL, kept for the run: the server is shared, and its connection
    slots can run out for a moment while other test suites start; a held one never needs one.
    """
    conn = _backend_conn.get(url)
    for attempt in range(20):
        if conn is not None and not conn.closed:
            return conn
        try:
            conn = _backend_conn[url] = psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.5)
    return conn


def _backends(database_url: str) -> list[int]:
    conn = _held(urlsplit(database_url)._replace(path="/postgres").geturl())
    name = urlsplit(database_url).path.lstrip("/")
    rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name]).fetchall()
    mine = {c.info.backend_pid for c in list(_backend_conn.values()) if not c.closed}
    return [row[0] for row in rows if row[0] not in mine]  # the harness's own are not measured


def connections_release() -> None:
    """Close the connections the harness held (a test database must be droppable after)."""
    while _backend_conn:
        _backend_conn.popitem()[1].close()


class Sampler:
    """Follow CPU seconds and RSS of process groups from a thread (every `interval` s)."""

    def __init__(self, groups: dict[str, Any], interval: float = 0.5) -> None:
        self.groups = groups
        self.interval = interval
        self._lock = threading.Lock()
        self._cpu: dict[str, dict[int, float]] = defaultdict(dict)  # group -> pid -> cpu s
        self._rss: dict[str, dict[int, int]] = defaultdict(dict)  # latest rss per pid
        self._peak: dict[str, int] = defaultdict(int)  # peak summed rss per group
        self._peak_process: dict[str, int] = defaultdict(int)
        self._peak_count: dict[str, int] = defaultdict(int)  # most processes at once
        self.series: list[dict[str, Any]] = []  # (time, {group: {pid: rss}}) for the soak
        self.keep_series = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # noqa: BLE001, S112 - a failed sample is skipped; the next counts
                continue

    def sample(self) -> None:
        """Read every group's processes once."""
        now: dict[str, dict[int, int]] = {}
        for name, pids_of in self.groups.items():
            rss: dict[int, int] = {}
            for pid in pids_of():
                try:
                    proc = psutil.Process(pid)
                    with proc.oneshot():
                        times = proc.cpu_times()
                        rss[pid] = proc.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                with self._lock:
                    self._cpu[name][pid] = times.user + times.system
            now[name] = rss
            with self._lock:
                self._rss[name] = rss
                self._peak[name] = max(self._peak[name], sum(rss.values()))
                self._peak_count[name] = max(self._peak_count[name], len(rss))
                if rss:
                    self._peak_process[name] = max(self._peak_process[name], max(rss.values()))
        if self.keep_series:
            self.series.append({"time": time.time(), "rss": now})

    def mark(self) -> dict[str, float]:
        """Return each group's CPU seconds so far (sample first); subtract two marks."""
        self.sample()
        with self._lock:
            return {name: sum(cpu.values()) for name, cpu in self._cpu.items()}

    def reset_peaks(self) -> None:
        with self._lock:
            self._peak.clear()
            self._peak_process.clear()
            self._peak_count.clear()

    def peaks_mb(self) -> dict[str, dict[str, float]]:
        """Peak RSS per group since the last reset: summed over its processes, and the largest."""
        with self._lock:
            return {
                name: {
                    "sum_mb": round(self._peak[name] / 2**20, 1),
                    "largest_process_mb": round(self._peak_process[name] / 2**20, 1),
                    "most_processes": self._peak_count[name],  # postgres: connections
                }
                for name in self._peak
            }


def _stats(url: str, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Rows of a statistics view, read afresh (a transaction's first read caches them)."""
    with _held(url).transaction() as tx:
        tx.connection.execute("SELECT pg_stat_clear_snapshot()")
        return tx.connection.execute(sql, params).fetchall()


def pg_counters(database_url: str) -> dict[str, int]:
    """Transactions and rows touched in the database so far (pg_stat_database)."""
    admin = urlsplit(database_url)._replace(path="/postgres").geturl()
    name = urlsplit(database_url).path.lstrip("/")
    (row,) = _stats(
        admin,
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted,"
        " tup_fetched FROM pg_stat_database WHERE datname = %s",
        [name],
    )
    keys = ("commits", "rollbacks", "inserted", "updated", "deleted", "fetched")
    return dict(zip(keys, row, strict=True))


def pg_wal(database_url: str) -> dict[str, int]:
    """The server's WAL position (bytes) and pg_stat_wal's records and full-page images.

    Both are the whole server's, not this database's: other databases' writes meanwhile count
    too (`wal_background` measures them when nothing of the benchmark runs).
    """
    admin = urlsplit(database_url)._replace(path="/postgres").geturl()
    (row,) = _stats(
        admin,
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, wal_records, wal_fpi"
        " FROM pg_stat_wal",
    )
    return dict(zip(("wal_bytes", "wal_records", "wal_fpi"), map(int, row), strict=True))


def _lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def pg_wal_of_database(database_url: str, start: int, end: int) -> dict[str, int] | None:
    """The WAL records between two positions that touch this database's relations.

    pg_walinspect (PostgreSQL 15's contrib) reads each record's block references, which name
    the database; commit records name none and are left out (tens of bytes each). None when
    the extension cannot be created or the WAL was already recycled.
    """
    try:
        # A connection of its own: WalReader calls this from a thread.
        with _held(database_url + "?application_name=bench-wal").transaction() as tx:
            conn = tx.connection
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            oid = conn.execute(
                "SELECT oid FROM pg_database WHERE datname = current_database()"
            ).fetchone()[0]
            row = conn.execute(
                "SELECT count(*), coalesce(sum(record_length), 0), coalesce(sum(fpi_length), 0)"
                " FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn) WHERE block_ref LIKE %s",
                [_lsn(start), _lsn(end), f"%/{oid}/%"],
            ).fetchone()
    except psycopg.Error:
        return None
    return dict(zip(("records", "bytes", "fpi_bytes"), map(int, row), strict=True))


class WalReader:
    """This database's WAL records, read as they are written (every `interval` s, a thread).

    A shared server checkpoints often and removes WAL segments soon after: a minute-long run's
    WAL is no longer there to read at its end. `stop()` returns the sum, or None if any read
    failed (the segment was gone already).
    """

    def __init__(self, database_url: str, interval: float = 2.0) -> None:
        self.url, self.interval = database_url, interval
        self.total: dict[str, int] | None = {"records": 0, "bytes": 0, "fpi_bytes": 0}
        self._stop = threading.Event()
        self._last = pg_wal(database_url)["wal_bytes"]
        self._thread = threading.Thread(target=self._loop, name="bench-wal", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        now = pg_wal(self.url)["wal_bytes"]
        if now <= self._last or self.total is None:
            return
        part = pg_wal_of_database(self.url, self._last, now)
        self._last = now
        if part is None:
            self.total = None
            return
        for key in self.total:
            self.total[key] += part[key]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._read()

    def stop(self) -> dict[str, int] | None:
        self._stop.set()
        self._thread.join(60)
        self._read()
        return self.total


def wal_background(database_url: str, seconds: float = 3.0) -> float:
    """WAL bytes per second the server writes while the benchmark writes nothing."""
    before = pg_wal(database_url)["wal_bytes"]
    time.sleep(seconds)
    return round((pg_wal(database_url)["wal_bytes"] - before) / seconds, 1)


def pg_tables(database_url: str) -> dict[str, dict[str, int]]:
    """Rows inserted, updated (HOT among them) and deleted so far, per table of the database."""
    rows = _stats(
        database_url,
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables",
    )
    keys = ("inserted", "updated", "hot_updated", "deleted")
    return {name: dict(zip(keys, values, strict=True)) for name, *values in rows}


def versions() -> dict[str, str]:
    """Versions of Python, PostgreSQL and the libraries on the measured path."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for package in (
        "django",
        "djangorestframework",
        "django-q2",
        "psycopg",
        "gunicorn",
        "aiohttp",
        "httpx",
        "cryptography",
        "http_ece",
        "pywebpush",
        "firebase_admin",
        "django-push-notifications",
    ):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and kernel of this machine."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": os.uname().release,
    }


def git_commit() -> str:
    """The checked-out commit (with -dirty when the tree has changes)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
