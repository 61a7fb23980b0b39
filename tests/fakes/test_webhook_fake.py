"""The fake webhook receiver records deliveries and answers as scripted."""

from __future__ import annotations

import base64
import time

import pytest
import requests

from fakes.webhook import WebhookFake

HTTP = requests.Session()
HTTP.trust_env = False  # talk to the fake directly, whatever proxy the environment names


@pytest.fixture(scope="module")
def server():
    fake = WebhookFake()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server):
    server.reset()
    return server


def post(fake: WebhookFake, body: bytes = b'{"status":"delivered"}', path: str = "/hooks/push"):
    headers = {"Content-Type": "application/json", "X-Keymaster-Signature": "sha256=abc"}
    return HTTP.post(
        f"{fake.url}{path}", data=body, headers=headers, timeout=5, allow_redirects=False
    )


def test_records_raw_body_headers_path_and_time(fake) -> None:
    body = b'{"notification_id":"n1","status":"delivered"}'
    assert post(fake, body).status_code == 200
    [delivery] = fake.received()
    assert delivery.path == "/hooks/push"
    assert delivery.body == body
    assert delivery.headers["x-keymaster-signature"] == "sha256=abc"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.status == 200
    assert abs(delivery.time - time.time()) < 5


def test_scripted_status_sequence_is_honoured_in_order(fake) -> None:
    fake.script([503, 503, 200])
    assert [post(fake).status_code for _ in range(4)] == [503, 503, 200, 200]
    assert [d.status for d in fake.received()] == [503, 503, 200, 200]


@pytest.mark.parametrize(("mode", "status"), [("down", 503), ("gone", 410), ("normal", 200)])
def test_modes_answer_every_delivery(fake, mode, status) -> None:
    fake.set_mode(mode)
    assert [post(fake).status_code for _ in range(2)] == [status, status]


def test_redirect_mode_points_at_an_internal_address(fake) -> None:
    fake.set_mode("redirect")
    response = post(fake)
    assert response.status_code == 302
    assert response.headers["Location"] == "http://169.254.169.254/latest/meta-data/"
    fake.set_mode("redirect", location="http://127.0.0.1:1/admin")
    assert post(fake).headers["Location"] == "http://127.0.0.1:1/admin"


def test_close_mode_drops_the_connection_but_records(fake) -> None:
    fake.set_mode("close")
    with pytest.raises(requests.ConnectionError):
        post(fake)
    [delivery] = fake.received()
    assert delivery.status is None
    assert fake.stats()["statuses"] == {"closed": 1}


def test_latency_delays_the_answer(fake) -> None:
    fake.set_latency(300)
    started = time.monotonic()
    assert post(fake).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_unknown_mode_is_refused(fake) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        fake.set_mode("sideways")


def test_http_control_api(fake) -> None:
    base = f"{fake.url}/_control"
    assert HTTP.post(f"{base}/script", json={"statuses": [503, 200]}, timeout=5).ok
    assert [post(fake, path="/a").status_code for _ in range(2)] == [503, 200]
    received = HTTP.get(f"{base}/received", timeout=5).json()["requests"]
    assert [r["status"] for r in received] == [503, 200]
    assert received[0]["path"] == "/a"
    assert received[0]["body"] == '{"status":"delivered"}'
    assert base64.b64decode(received[0]["body_b64"]) == b'{"status":"delivered"}'
    assert received[0]["headers"]["x-keymaster-signature"] == "sha256=abc"

    assert HTTP.post(f"{base}/mode", json={"mode": "gone"}, timeout=5).ok
    assert post(fake).status_code == 410
    assert HTTP.post(f"{base}/mode", json={"mode": "nope"}, timeout=5).status_code == 400
    assert HTTP.post(f"{base}/latency", json={"ms": 0}, timeout=5).ok
    stats = HTTP.get(f"{base}/stats", timeout=5).json()
    assert stats["requests"] == 3
    assert stats["mode"] == "gone"

    assert HTTP.post(f"{base}/reset", timeout=5).ok
    assert HTTP.get(f"{base}/received", timeout=5).json()["requests"] == []
    assert post(fake).status_code == 200
