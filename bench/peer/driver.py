"""Run the peer once: `python -m bench.peer.driver SPEC.json RESULT.json`.

In its own process because it configures Django with the peer's settings, which a process
already running Keymaster's cannot. Steps: recreate and migrate the peer's database, store one
GCMDevice and one WebPushDevice per user, start `qcluster`, then for each provider enqueue one
task per device and wait for every answer, metering the qcluster tree, the PostgreSQL backends
and this process (which enqueues, as the team's web process would).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.peer.meter import BackendMeter, SelfMeter, TreeMeter, combine
from bench.workload import check_spec, fcm_data, provider_result, webpush_origins, webpush_payload

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_EVERY = 0.2
# Give up on a phase when no answer arrived for this long (a stuck worker, a dead fake).
STALL_SECONDS = 120.0


def peer_database_url(url: str) -> str:
    """Return the URL of the peer's own database: the given name, suffixed `_peer` if needed."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise ValueError("spec 'database_url' must be a PostgreSQL URL")
    name = parts.path.lstrip("/") or "bench"
    if not name.endswith("_peer"):
        name += "_peer"
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_database(url: str) -> None:
    """Drop and create the peer's database, so every run starts from the same empty tables."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def configure_environment(spec: dict[str, Any], work_dir: Path) -> dict[str, str]:
    """Set the environment bench.peer.settings reads, here and for qcluster; return it."""
    if "database_url" not in spec:
        raise ValueError("spec is missing 'database_url' (the peer needs PostgreSQL)")
    key_file = work_dir / "vapid-private-key.pem"
    key_file.touch(mode=0o600)
    key_file.write_text(spec["vapid_private_key_pem"])
    origins = webpush_origins(spec)
    if len(origins) > 1:
        raise ValueError("the peer supports subscriptions on one push-service origin")
    results_dir = work_dir / "results"
    results_dir.mkdir()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.peer.settings",
            "BENCH_PEER_DATABASE_URL": peer_database_url(spec["database_url"]),
            "BENCH_PEER_WORKERS": str(int(spec.get("workers", 2))),
            "BENCH_PEER_FCM_URL": spec["fcm_url"],
            "BENCH_PEER_FCM_SERVICE_ACCOUNT_FILE": spec["fcm_service_account_file"],
            "BENCH_PEER_VAPID_KEY_FILE": str(key_file),
            "BENCH_PEER_VAPID_SUBJECT": spec["vapid_subject"],
            "BENCH_PEER_WP_POST_URL": f"{origins[0]}/push" if origins else "",
            "BENCH_PEER_RESULTS_DIR": str(results_dir),
        }
    )
    return dict(os.environ)


def store_devices(spec: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Bulk-create the devices; return the WebPushDevice and GCMDevice ids."""
    from push_notifications.models import GCMDevice, WebPushDevice

    prefix = f"{webpush_origins(spec)[0]}/push/" if spec["webpush_subscriptions"] else ""
    webpush = WebPushDevice.objects.bulk_create(
        (
            WebPushDevice(
                registration_id=sub["endpoint"].removeprefix(prefix),
                p256dh=sub["keys"]["p256dh"],
                auth=sub["keys"]["auth"],
                browser="CHROME",
            )
            for sub in spec["webpush_subscriptions"]
        ),
        batch_size=1000,
    )
    fcm = GCMDevice.objects.bulk_create(
        (GCMDevice(registration_id=t, cloud_message_type="FCM") for t in spec["fcm_tokens"]),
        batch_size=1000,
    )
    return [d.pk for d in webpush], [d.pk for d in fcm]


class Results:
    """The answers tasks append under BENCH_PEER_RESULTS_DIR, read incrementally."""

    def __init__(self, directory: Path, kind: str) -> None:
        self._directory = directory
        self._kind = kind
        self._offsets: dict[Path, int] = {}
        self.answers = self.ok = 0
        self.last_answer = 0.0

    def read(self) -> None:
        """Count the lines written since the last read."""
        for path in self._directory.glob(f"{self._kind}-*.log"):
            with path.open() as file:
                file.seek(self._offsets.get(path, 0))
                chunk = file.read()
            complete = chunk[: chunk.rfind("\n") + 1]  # a line still being written waits
            self._offsets[path] = self._offsets.get(path, 0) + len(complete)
            for line in complete.splitlines():
                ok, at = line.split()
                self.answers += 1
                self.ok += ok == "1"
                self.last_answer = max(self.last_answer, float(at))


def start_cluster(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `qcluster` in its own session (so it can be stopped as one group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "django", "qcluster"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def stop_cluster(cluster: subprocess.Popen[bytes]) -> None:
    """Stop the qcluster we started: SIGTERM to it, then SIGKILL to its group if it lingers."""
    if cluster.poll() is not None:
        return
    # Only the cluster process: it stops its sentinel, which stops the workers in order.
    cluster.send_signal(signal.SIGTERM)
    try:
        cluster.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait(10)


def backend_pids() -> list[int]:
    """Return the pids of the PostgreSQL backends connected to the peer's database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]


def wait_for_answers(
    results: Results, expected: int, cluster: subprocess.Popen[bytes], sample: Callable[[], None]
) -> None:
    """Read answers until `expected` arrived, the cluster died, or nothing came for a while."""
    progress_at, seen = time.monotonic(), -1
    while True:
        results.read()
        sample()
        if results.answers >= expected or cluster.poll() is not None:
            return
        if results.answers != seen:
            progress_at, seen = time.monotonic(), results.answers
        elif time.monotonic() - progress_at > STALL_SECONDS:
            return
        time.sleep(SAMPLE_EVERY)


def run_phase(
    kind: str,
    calls: list[tuple[Any, ...]],
    cluster: subprocess.Popen[bytes],
    results_dir: Path,
) -> dict[str, Any]:
    """Enqueue one task per call and wait for every answer; return the provider's result."""
    from django_q.tasks import async_task

    meters = {
        "qcluster": TreeMeter(cluster.pid),
        "postgres": BackendMeter(backend_pids),
        "app": SelfMeter(),
    }

    def sample() -> None:
        for meter in meters.values():
            meter.sample()

    results = Results(results_dir, kind)
    started = time.time()
    for index, (func, *args) in enumerate(calls):
        async_task(func, *args)
        if index % 500 == 0:
            sample()
    enqueue_seconds = time.time() - started
    wait_for_answers(results, len(calls), cluster, sample)
    seconds = max(results.last_answer - started, 0.0)
    processes = {name: meter.result() for name, meter in meters.items()}
    return provider_result(
        len(calls),
        results.ok,
        seconds,
        answers=results.answers,
        enqueue_seconds=round(enqueue_seconds, 3),
        processes=processes,
    )


def warm_up(workers: int, cluster: subprocess.Popen[bytes], results_dir: Path) -> None:
    """Wait until the cluster's workers are taking tasks."""
    from django_q.tasks import async_task

    for _ in range(workers * 2):
        async_task("bench.peer.tasks.warm_up")
    results = Results(results_dir, "warmup")
    wait_for_answers(results, workers * 2, cluster, lambda: None)
    if results.answers < workers * 2:
        raise RuntimeError("qcluster did not start taking tasks")


def run(spec: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """Run the whole peer benchmark once and return its result."""
    check_spec(spec)
    env = configure_environment(spec, work_dir)
    recreate_database(env["BENCH_PEER_DATABASE_URL"])
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    webpush_ids, fcm_ids = store_devices(spec)
    payload = webpush_payload(spec).decode()
    data = fcm_data(spec)
    results_dir = Path(env["BENCH_PEER_RESULTS_DIR"])
    workers = int(env["BENCH_PEER_WORKERS"])
    cluster = start_cluster(env, work_dir / "qcluster.log")
    try:
        warm_up(workers, cluster, results_dir)
        webpush = run_phase(
            "webpush",
            [("bench.peer.tasks.send_webpush", pk, payload) for pk in webpush_ids],
            cluster,
            results_dir,
        )
        fcm = run_phase(
            "fcm",
            [
                ("bench.peer.tasks.send_fcm", pk, spec["title"], spec["body"], data)
                for pk in fcm_ids
            ],
            cluster,
            results_dir,
        )
    finally:
        stop_cluster(cluster)
    names = webpush["processes"].keys()
    processes = {n: combine(webpush["processes"][n], fcm["processes"][n]) for n in names}
    notes = (
        f"django-push-notifications 3.3.0, one django-q2 task per send (async_task per device), "
        f"{workers} qcluster workers, ORM broker with Keymaster's tuned Q_CLUSTER "
        "(save_limit -1, bulk 10, poll 0.2, recycle 500 by default); Web Push phase then FCM "
        "phase, each timed from the first async_task to the last answer; 'app' is the process "
        "that enqueues; 'postgres' is the backends of the peer's database (RSS includes shared "
        "buffers)."
    )
    return {"webpush": webpush, "fcm": fcm, "processes": processes, "notes": notes}


def main(argv: list[str]) -> None:
    """Read the spec file, run, write the result file."""
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as work:
        try:
            result = run(spec, Path(work))
        finally:
            log = Path(work) / "qcluster.log"
            if log.exists():
                # Keep the cluster's output for the caller to show when something went wrong.
                (result_path.parent / "qcluster.log").write_bytes(log.read_bytes())
    result_path.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
