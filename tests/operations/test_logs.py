"""Structured logs: X-Request-ID on every answer, JSON lines carrying the ids they are about."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from rest_framework.test import APIClient

from keymaster.logs import LogIdsFilter, formatter
from push.delivery.deliveries import deliveries_send
from push.models import Device
from push.services.notifications import NotificationDraft, notifications_send
from tests.drain import drain
from tests.factories import app_client, enroll, fcm_token, make_push_app, make_user, register

pytestmark = pytest.mark.django_db


@contextmanager
def json_log() -> Iterator[io.StringIO]:
    """Log everything at INFO through the LOG_FORMAT=json formatter into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter("json"))
    handler.addFilter(LogIdsFilter())
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


def _lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_every_answer_carries_a_request_id_kept_from_the_request_when_sane():
    given = APIClient().get("/healthz", HTTP_X_REQUEST_ID="edge-7f3a9c21-0001")
    assert given["X-Request-ID"] == "edge-7f3a9c21-0001"
    made = APIClient().get("/healthz")["X-Request-ID"]
    assert len(made) == 32 and int(made, 16) >= 0
    for insane in ("short", "a b c d e f g h", "x" * 129, "id\r\nSet-Cookie: a=b"):
        answer = APIClient().get("/nothing-here", HTTP_X_REQUEST_ID=insane)
        assert answer["X-Request-ID"] != insane and len(answer["X-Request-ID"]) == 32


def test_a_request_logs_json_lines_with_its_request_and_app_ids():
    app = make_push_app()
    client = app_client(app)
    with json_log() as buffer:
        answer = client.post("/push/send", {"title": "t"}, HTTP_X_REQUEST_ID="req-0123456789")
    assert answer.status_code == 400
    lines = _lines(buffer)
    refused = [line for line in lines if line["logger"] == "django.request"]
    assert refused, lines
    assert refused[0]["request_id"] == "req-0123456789"
    assert refused[0]["app_id"] == str(app.app_id)
    assert refused[0]["level"] == "WARNING"
    assert {"time", "message"} <= set(refused[0])


def test_a_worker_line_about_a_delivery_carries_its_ids(providers):
    app = make_push_app()
    user = make_user()
    enroll(app, user)
    # A subscription that is not JSON: its delivery's message cannot be built.
    device = Device.objects.create(
        app=app, user=user, platform="web", transport="webpush", token="{not json", token_hmac="x"
    )
    [notification_id], _ = notifications_send(
        app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")]
    )
    delivery = device and app.notifications.get().deliveries.get()
    with json_log() as buffer:
        deliveries_send([delivery.id])
    lines = _lines(buffer)
    [broken] = [line for line in lines if "cannot build its message" in line["message"]]
    assert broken["delivery_id"] == delivery.id
    assert broken["notification_id"] == str(notification_id)
    assert broken["app_id"] == str(app.app_id)
    assert broken["logger"] == "push.delivery.deliveries" and broken["level"] == "ERROR"
    assert "{not json" not in json.dumps(lines)  # the subscription itself is never logged


def test_provider_lines_carry_the_provider(providers):
    app = make_push_app(webhook_url=f"{providers['webhook'].url}/hook")
    user = make_user()
    enroll(app, user)
    providers["webhook"].script([503])  # the receipt's POST is refused: the transport says so
    with json_log() as buffer:
        register(user, app, fcm_token("log-provider"), "android")
        notifications_send(
            app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")]
        )
        drain(max_rounds=2)
    lines = _lines(buffer)
    [registered] = [line for line in lines if "registered" in line["message"]]
    assert (registered["provider"], registered["app_id"]) == ("fcm", str(app.app_id))
    webhook = [line for line in lines if line["message"].startswith("Webhook:")]
    assert webhook and {line["provider"] for line in webhook} == {"webhook"}
    assert all("provider" not in line for line in lines if line["logger"].startswith("django"))
