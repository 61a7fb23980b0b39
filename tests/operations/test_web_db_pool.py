"""The web server's database connections stay within its pool (Django ticket #33497).

Under the Procfile's ASGI server each request's sync code runs in a thread of its own; with
persistent connections (CONN_MAX_AGE > 0) each request opened a connection that outlived it,
hundreds at once from a few workers (bench/README.md, items 26 and 32). The server is started
exactly as the Procfile says, with no pool setting of ours: a few hundred requests over a few
connections, and the database must never see more of the server's backends than its pools hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from django.conf import settings

from accounts.tokens import client_token_issue
from tests.factories import enable_push, enroll, fcm_device, make_app, make_user
from tests.webserver import free_port, procfile_web_command, serving
from tests.workers import ROOT, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = 2
POOL_DEFAULT = 4  # DB_POOL_MAX_SIZE the gunicorn config gives each web process (README)
CLIENTS = 4
REQUESTS_PER_CLIENT = 75
APPLICATION_NAME = "keymaster-web-pool-test"


def _dsn() -> str:
    db = settings.DATABASES["default"]
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _server_backends(probe: psycopg.Connection) -> int:
    row = probe.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME]
    ).fetchone()
    return row[0]


class _PeakSampler(threading.Thread):
    """Counts the server's backends every 20 ms; `peak` is the most seen at once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        with psycopg.connect(_dsn(), autocommit=True) as probe:
            while not self.done.wait(0.02):
                self.peak = max(self.peak, _server_backends(probe))


def test_a_few_hundred_requests_stay_within_the_pool(tmp_path: Path, providers):
    app, _ = make_app()
    enable_push(app)
    user = make_user()
    enroll(app, user)
    fcm_device(app, user, "pool-device-token-" + "x" * 30)
    token = client_token_issue(app, ["push:send"])["access_token"]

    env = worker_env({"PORT": str(free_port()), "WEB_CONCURRENCY": str(WORKERS)})
    # The server's own connections, told apart in pg_stat_activity by their application name.
    env["DATABASE_URL"] += f"?application_name={APPLICATION_NAME}"
    env["FCM_CREDENTIALS_FILE"] = settings.FCM_CREDENTIALS_FILE
    env["FCM_API_URL"] = settings.FCM_API_URL
    env["OUTBOUND_ALLOWED_HOSTS"] = "127.0.0.1"
    # The defaults, as in production.
    for name in ("DB_POOL_MAX_SIZE", "WEB_DB_POOL_SIZE", "CONN_MAX_AGE"):
        env.pop(name, None)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"

    def client(n: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=url, timeout=30) as http:  # one keep-alive connection
            for i in range(REQUESTS_PER_CLIENT):
                if i % 15 == n:  # a send now and then: authentication, quotas, the outbox
                    answer = http.post(
                        "/push/send",
                        json={"user_id": str(user.id), "title": "Pooled", "body": f"{n}/{i}"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                else:
                    answer = http.get("/healthz")
                statuses.append(answer.status_code)
        return statuses

    sampler = _PeakSampler()
    with serving(procfile_web_command(), env, tmp_path) as url:
        sampler.start()
        try:
            with ThreadPoolExecutor(CLIENTS) as clients:
                statuses = [s for batch in clients.map(client, range(CLIENTS)) for s in batch]
            with psycopg.connect(_dsn(), autocommit=True) as probe:
                after = _server_backends(probe)
        finally:
            sampler.done.set()
            sampler.join()

    assert len(statuses) == CLIENTS * REQUESTS_PER_CLIENT
    assert set(statuses) <= {200, 202}, sorted(set(statuses))
    assert 202 in statuses
    assert 0 < sampler.peak <= WORKERS * POOL_DEFAULT, sampler.peak
    assert after <= WORKERS * POOL_DEFAULT, after


PREPARED_PROBE = """
import json
import django
from django.db import connection

django.setup()
seen = []
for n in range(7):  # seven requests: each checks the one pooled connection out and back in
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE oid = %s", [n])
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        seen.append([backend, cursor.fetchone()[0]])
    connection.close()  # what request_finished does with CONN_MAX_AGE=0: back to the pool
print(json.dumps({"pooled": connection.pool is not None, "seen": seen}))
"""


def test_prepared_statements_outlive_a_request_on_a_pooled_connection(tmp_path: Path):
    """DB_SERVER_SIDE_BINDING on a pooled connection: what one request prepared, the next runs."""
    env = worker_env({"DB_POOL_MAX_SIZE": "1", "DJANGO_SETTINGS_MODULE": "keymaster.settings"})
    env.pop("DB_SERVER_SIDE_BINDING", None)  # the default: on
    probe = subprocess.run(
        [sys.executable, "-c", PREPARED_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["pooled"]
    backends = {backend for backend, _ in result["seen"]}
    assert len(backends) == 1, backends  # the same connection each time, not a new one
    prepared = [count for _, count in result["seen"]]
    assert prepared[:5] == [0] * 5  # prepared after 5 runs (prepare_threshold)
    assert prepared[-1] >= 3, prepared  # and still prepared after being given back twice
