"""GET /metrics: who may read it, what it counts, and counts added up across processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections import Counter as Tally
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from push.models import Delivery, DeliveryStatus, Receipt, ReceiptStatus
from tests.drain import drain
from tests.factories import app_client, enroll, make_push_app, make_user, register
from tests.faults.support import Qcluster
from tests.workers import ROOT, wait_until, worker_env


def _samples(text: str) -> dict[tuple, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_metrics_answer_loopback_only_without_a_token():
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    refused = Client(REMOTE_ADDR="10.1.2.3").get("/metrics")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"


@pytest.mark.django_db
def test_metrics_answer_only_the_bearer_token_when_one_is_set(settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403
    wrong = Client(REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.get("/metrics").status_code == 403
    right = Client(REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    answer = right.get("/metrics")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
def test_sends_deliveries_receipts_and_routes_are_counted(providers):
    def now(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "send": now("keymaster_notifications_accepted_total", endpoint="send"),
        "bulk": now("keymaster_notifications_accepted_total", endpoint="bulk"),
        "delivered": now("keymaster_deliveries_total", provider="fcm", outcome="delivered"),
        "timed": now("keymaster_delivery_seconds_count", provider="fcm"),
        "receipts": now("keymaster_receipts_total", outcome="delivered"),
        "fcm_ok": now("keymaster_provider_requests_total", provider="fcm", status="ok"),
        "route": now(
            "keymaster_http_requests_total", method="POST", route="push/send/bulk", status="202"
        ),
    }
    app = make_push_app(webhook_url=f"{providers['webhook'].url}/hook")
    users = [make_user() for _ in range(3)]
    enroll(app, *users)
    for user in users:
        register(user, app)
    client = app_client(app)
    body = {"title": "t", "body": "b"}
    assert client.post("/push/send", {**body, "user_id": str(users[0].id)}).status_code == 202
    bulk = {**body, "user_ids": [str(u.id) for u in users[1:]]}
    assert client.post("/push/send/bulk", bulk).status_code == 202
    drain()
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 3
    assert Receipt.objects.filter(status=ReceiptStatus.DELIVERED).count() == 3
    assert now("keymaster_notifications_accepted_total", endpoint="send") - before["send"] == 1
    assert now("keymaster_notifications_accepted_total", endpoint="bulk") - before["bulk"] == 2
    delivered = now("keymaster_deliveries_total", provider="fcm", outcome="delivered")
    assert delivered - before["delivered"] == 3
    assert now("keymaster_delivery_seconds_count", provider="fcm") - before["timed"] == 3
    assert now("keymaster_receipts_total", outcome="delivered") - before["receipts"] == 3
    fcm_ok = now("keymaster_provider_requests_total", provider="fcm", status="ok")
    assert fcm_ok - before["fcm_ok"] == 3
    route = now(
        "keymaster_http_requests_total", method="POST", route="push/send/bulk", status="202"
    )
    assert route - before["route"] == 1

    scraped = _samples(Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode())
    assert _value(scraped, "keymaster_queue_due", kind="deliveries") == 0
    assert ("keymaster_queue_oldest_due_seconds", (("kind", "receipts"),)) in scraped
    assert _value(scraped, "keymaster_webhooks_disabled") == 0
    # No label carries an id: every label value is one of a few words or a route pattern.
    for name, labels in scraped:
        for _, value in labels:
            assert str(app.app_id) not in value and str(users[0].id) not in value, name


@contextmanager
def _gunicorn(env: dict[str, str], log: Path, workers: int = 2):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "keymaster.wsgi",
                "--bind",
                f"fd://{listener.fileno()}",
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            pass_fds=(listener.fileno(),),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            host, port = listener.getsockname()
            yield f"http://{host}:{port}"
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            listener.close()


def _accepted_by_process(directory: Path) -> Tally:
    """How many notifications each process counted, from its own counter file."""
    counted = Tally()
    for path in directory.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in family.samples:
                if sample.name == "keymaster_notifications_accepted_total":
                    counted[path.stem] += sample.value
    return counted


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_counts_add_up_across_two_gunicorn_workers_and_a_qcluster(providers, tmp_path):
    directory = tmp_path / "prometheus"
    env = worker_env({"PROMETHEUS_MULTIPROC_DIR": str(directory), "Q_WORKERS": "1"})
    app = make_push_app(webhook_url=f"{providers['webhook'].url}/hook")
    user = make_user()
    enroll(app, user)
    register(user, app)
    token = app_client(app)._credentials["HTTP_AUTHORIZATION"]
    sent = 0
    with _gunicorn(env, tmp_path / "gunicorn.log") as base:

        def send(_: int) -> int:
            # A new connection each: the two sync workers take turns at accepting.
            answer = httpx.post(
                f"{base}/push/send",
                headers={"Authorization": token},
                json={"user_id": str(user.id), "title": "t", "body": "b"},
                timeout=30,
            )
            assert answer.status_code == 202, answer.text
            return 1

        with ThreadPoolExecutor(4) as pool:
            for _ in range(10):  # until both web processes have counted some
                sent += sum(pool.map(send, range(8)))
                if len([n for n in _accepted_by_process(directory).values() if n]) >= 2:
                    break
        assert len(_accepted_by_process(directory)) >= 2, "one gunicorn worker took every send"
        with Qcluster(tmp_path / "qcluster.log", PROMETHEUS_MULTIPROC_DIR=str(directory)):
            done = Delivery.objects.filter(status=DeliveryStatus.DELIVERED)
            receipts = Receipt.objects.filter(status=ReceiptStatus.DELIVERED)
            wait_until(lambda: receipts.count() == sent, 120, "the qcluster to deliver all")
        assert done.count() == sent
        scraped = _samples(httpx.get(f"{base}/metrics", timeout=30).text)
    assert _value(scraped, "keymaster_notifications_accepted_total", endpoint="send") == sent
    assert (
        _value(scraped, "keymaster_deliveries_total", provider="fcm", outcome="delivered") == sent
    )
    assert _value(scraped, "keymaster_delivery_seconds_count", provider="fcm") == sent
    assert _value(scraped, "keymaster_receipts_total", outcome="delivered") == sent
    assert _value(scraped, "keymaster_receipt_seconds_count") == sent
    assert (
        _value(scraped, "keymaster_provider_requests_total", provider="webhook", status="ok")
        == sent
    )
    posts = _value(
        scraped, "keymaster_http_requests_total", method="POST", route="push/send", status="202"
    )
    assert posts == sent
    # The web processes and the worker each wrote their own file.
    assert len(list(directory.glob("counter_*.db"))) >= 3


@pytest.mark.django_db
def test_the_sample_alerts_use_only_metrics_keymaster_exposes():
    import re

    import yaml

    rules = yaml.safe_load((ROOT / "docs" / "prometheus-alerts.yml").read_text())
    exprs = " ".join(rule["expr"] for group in rules["groups"] for rule in group["rules"])
    used = set(re.findall(r"\bkeymaster_[a-z_]+", exprs))
    families = text_string_to_metric_families(
        Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()
    )
    exposed = {family.name for family in families}
    exposed |= {f"{name}_total" for name in exposed}
    assert used and used <= exposed, used - exposed


def _now(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
def test_opens_are_counted_by_how_they_were_reported():
    from push.open_tokens import open_token_for
    from tests.factories import user_client

    app = make_push_app(track_opens=True)
    user = make_user()
    enroll(app, user)
    register(user, app)  # android: the app reports its open
    send = {"user_id": str(user.id), "title": "t", "body": "b"}
    first = app_client(app).post("/push/send", send, format="json").json()["notification_id"]
    second = app_client(app).post("/push/send", send, format="json").json()["notification_id"]
    before = {via: _now("keymaster_opens_total", via=via) for via in ("app", "token")}

    opened = user_client(user).post("/push/opened", {"notification_id": first}, format="json")
    again = user_client(user).post("/push/opened", {"notification_id": first}, format="json")
    delivery = Delivery.objects.get(notification_id=second)
    token = {"token": open_token_for(delivery.id)}
    by_token = Client().post("/push/opened", token, content_type="application/json")
    used = Client().post("/push/opened", token, content_type="application/json")

    assert [r.status_code for r in (opened, again, by_token, used)] == [204, 204, 204, 409]
    assert _now("keymaster_opens_total", via="app") - before["app"] == 1  # the repeat marks none
    assert _now("keymaster_opens_total", via="token") - before["token"] == 1


@pytest.mark.django_db
def test_broadcasts_count_their_recipients_at_acceptance_and_the_fan_outs_notifications(
    django_capture_on_commit_callbacks,
):
    from tests.factories import user_client

    app = make_push_app()
    users = [make_user() for _ in range(4)]
    enroll(app, *users)
    for user in users[:3]:
        register(user, app)
    user_client(users[2]).patch(f"/account/apps/{app.app_id}", {"muted": True}, format="json")
    accepted_before = _now("keymaster_notifications_accepted_total", endpoint="broadcast")
    made_before = {
        status: _now("keymaster_broadcast_notifications_total", status=status)
        for status in ("queued", "muted")
    }
    client = app_client(app)

    dry = client.post("/push/send/broadcast", {"title": "t", "body": "b", "dry_run": True})
    sent = client.post("/push/send/broadcast", {"title": "t", "body": "b"}, format="json")
    assert (dry.status_code, sent.status_code) == (200, 202)
    recipients = sent.json()["recipients"]
    with django_capture_on_commit_callbacks(execute=True):
        drain()

    accepted = _now("keymaster_notifications_accepted_total", endpoint="broadcast")
    assert accepted - accepted_before == recipients == 3  # the dry run counts nothing
    made = {
        s: _now("keymaster_broadcast_notifications_total", status=s) - made_before[s]
        for s in made_before
    }
    assert made == {"queued": 2, "muted": 1}
