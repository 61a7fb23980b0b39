"""Daily quotas (one atomic statement, exact under concurrency) and Idempotency-Key."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from rest_framework.test import APIClient

from accounts.tokens import client_token_issue
from push.models import Delivery, Notification
from push.services.config import push_config_update
from tests.concurrency import burst_url, concurrently
from tests.factories import (
    app_client,
    enroll,
    make_push_app,
    make_user,
    register,
)
from tests.figures import figures_record


@pytest.fixture
def app(db):
    app = make_push_app(daily_quota=5)
    return app


@pytest.fixture
def users(app):
    users = [make_user() for _ in range(6)]
    enroll(app, *users)
    return users


def _bulk(app, users, **headers):
    body = {"user_ids": [str(u.id) for u in users], "title": "t", "body": "b"}
    return app_client(app).post("/push/send/bulk", body, **headers)


def test_quota_counts_one_per_user_and_refuses_a_send_that_would_pass_it(app, users):
    assert _bulk(app, users[:3]).status_code == 202
    refused = _bulk(app, users[3:6])  # 3 + 3 > 5: refused whole
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert Notification.objects.count() == 3
    seconds_to_midnight = 86400 - int(time.time()) % 86400
    assert abs(int(refused["Retry-After"]) - seconds_to_midnight) <= 2
    assert refused["RateLimit-Limit"] == "5" and refused["RateLimit-Remaining"] == "2"
    assert _bulk(app, users[3:5]).status_code == 202  # exactly reaching the quota is fine
    assert _bulk(app, users[5:6]).status_code == 429


def test_config_shows_notifications_today(app, users, db):
    from tests.factories import make_admin, user_client

    _bulk(app, users[:2])
    body = user_client(make_admin(app)).get(f"/push/config/{app.app_id}").json()
    assert body["notifications_today"] == 2


def test_raising_the_quota_lets_sends_through(app, users):
    _bulk(app, users[:5])
    assert _bulk(app, users[5:6]).status_code == 429
    push_config_update(app=app, actor=None, daily_quota=6)
    assert _bulk(app, users[5:6]).status_code == 202


def test_idempotent_repeat_replays_and_sends_nothing_new(app, users):
    register(users[0], app)
    first = _bulk(app, users[:2], HTTP_IDEMPOTENCY_KEY="order-42")
    again = _bulk(app, users[:2], HTTP_IDEMPOTENCY_KEY="order-42")
    assert again.status_code == first.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Notification.objects.count() == 2 and Delivery.objects.count() == 1


def test_same_key_different_body_is_422(app, users):
    _bulk(app, users[:2], HTTP_IDEMPOTENCY_KEY="k1")
    response = _bulk(app, users[:3], HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_keys_are_per_app(app, users):
    other = make_push_app()
    enroll(other, users[0])
    _bulk(app, users[:1], HTTP_IDEMPOTENCY_KEY="shared")
    assert _bulk(other, users[:1], HTTP_IDEMPOTENCY_KEY="shared").status_code == 202
    assert Notification.objects.count() == 2


def test_key_longer_than_255_is_400(app, users):
    response = _bulk(app, users[:1], HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert _bulk(app, users[:1], HTTP_IDEMPOTENCY_KEY="k" * 255).status_code == 202


def test_a_refused_send_does_not_burn_the_key(app, users):
    _bulk(app, users[:5])
    assert _bulk(app, users[5:6], HTTP_IDEMPOTENCY_KEY="later").status_code == 429
    push_config_update(app=app, actor=None, daily_quota=10)
    assert _bulk(app, users[5:6], HTTP_IDEMPOTENCY_KEY="later").status_code == 202


def _documented_headers(path: str) -> dict[str, set[str]]:
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    responses = schema["paths"][path]["post"]["responses"]
    return {code: set(answer.get("headers", {})) for code, answer in responses.items()}


@pytest.mark.parametrize("path", ["/push/send", "/push/send/bulk", "/push/send/batch"])
def test_the_schema_documents_the_quota_and_replay_headers(path):
    documented = _documented_headers(path)
    quota = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
    assert documented["202"] == quota | {"Idempotent-Replayed"}
    assert documented["200"] == quota
    assert documented["429"] == quota | {"Retry-After"}


def test_each_answer_sends_the_headers_documented_for_it(app, users):
    documented = _documented_headers("/push/send/bulk")
    quota = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
    sent = _bulk(app, users[:2], HTTP_IDEMPOTENCY_KEY="k")
    replayed = _bulk(app, users[:2], HTTP_IDEMPOTENCY_KEY="k")
    refused = _bulk(app, users[:4])
    for answer, expected in ((sent, quota), (replayed, {"Idempotent-Replayed"})):
        assert {h for h in documented["202"] if h in answer} == expected
    assert {h for h in documented["429"] if h in refused} == documented["429"]
    assert (sent["RateLimit-Limit"], sent["RateLimit-Remaining"]) == ("5", "3")
    assert 0 <= int(sent["RateLimit-Reset"]) <= 86400


# --- PostgreSQL: exact under real concurrency (real HTTP to a threaded live server) ----------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_sends_never_pass_the_quota(live_server):
    app = make_push_app(daily_quota=20)
    users = [make_user() for _ in range(50)]
    enroll(app, *users)
    token = client_token_issue(app, ["push:send"])["access_token"]
    url = burst_url(live_server)

    def send(i):
        return requests.post(
            f"{url}/push/send",
            json={"user_id": str(users[i].id), "title": "t", "body": "b"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ).status_code

    codes = concurrently(50, send)
    assert codes.count(202) == 20 and codes.count(429) == 30
    assert Notification.objects.filter(app=app).count() == 20
    figures_record(
        "concurrency",
        "daily_quota",
        {
            "concurrent_requests": 50,
            "limit": 20,
            "succeeded": codes.count(202),
            "refused_429": codes.count(429),
            "notifications_stored": Notification.objects.filter(app=app).count(),
            "over_limit": max(0, codes.count(202) - 20),
        },
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_of_one_key_send_once(live_server):
    app = make_push_app()
    user = make_user()
    enroll(app, user)
    token = client_token_issue(app, ["push:send"])["access_token"]
    key = str(uuid.uuid4())
    url = burst_url(live_server)

    def send(_):
        response = requests.post(
            f"{url}/push/send",
            json={"user_id": str(user.id), "title": "t", "body": "b"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
            timeout=60,
        )
        return response.status_code, response.json()

    answers = concurrently(20, send)
    assert {code for code, _ in answers} == {202}
    assert len({body["notification_id"] for _, body in answers}) == 1
    assert Notification.objects.filter(app=app).count() == 1
    figures_record(
        "concurrency",
        "idempotency_key",
        {
            "concurrent_requests": 20,
            "answered_202": len(answers),
            "distinct_notification_ids": len({body["notification_id"] for _, body in answers}),
            "notifications_stored": Notification.objects.filter(app=app).count(),
        },
    )
