"""The fake Web Push service checks RFC 8030/8291/8292 the way a real one does."""

from __future__ import annotations

import base64
import json
import time

import http_ece
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from fakes.webpush import Rejected, WebPushFake, verify_vapid


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def sign_jwt(key: ec.EllipticCurvePrivateKey, claims: dict) -> str:
    """An ES256 JWT, written here independently of py_vapid."""
    head = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}).encode())
    body = b64url(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{head}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def encrypt(subscription: dict, payload: bytes) -> bytes:
    """RFC 8291 aes128gcm with http_ece directly (not through pywebpush)."""
    return http_ece.encrypt(
        payload,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=unb64url(subscription["keys"]["p256dh"]),
        auth_secret=unb64url(subscription["keys"]["auth"]),
        version="aes128gcm",
    )


VAPID = ec.generate_private_key(ec.SECP256R1())
HTTP = requests.Session()
HTTP.trust_env = False  # talk to the fake directly, whatever proxy the environment names


def push(
    subscription: dict,
    payload: bytes = b'{"hello":"world"}',
    *,
    key: ec.EllipticCurvePrivateKey = VAPID,
    k: str | None = None,
    claims: dict | None = None,
    headers: dict | None = None,
    body: bytes | None = None,
) -> requests.Response:
    endpoint = subscription["endpoint"]
    origin = endpoint.split("/push/")[0]
    all_claims = {"aud": origin, "exp": int(time.time()) + 3600, "sub": "mailto:ops@example.com"}
    all_claims.update(claims or {})
    token = sign_jwt(key, all_claims)
    all_headers = {
        "TTL": "60",
        "Content-Encoding": "aes128gcm",
        "Authorization": f"vapid t={token}, k={k or public_b64(key)}",
    }
    all_headers.update(headers or {})
    data = encrypt(subscription, payload) if body is None else body
    return HTTP.post(endpoint, data=data, headers=all_headers, timeout=5, allow_redirects=False)


@pytest.fixture(scope="module")
def server():
    fake = WebPushFake(seed=7)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server):
    server.reset()
    return server


def test_new_subscription_has_the_browser_shape_with_a_real_p256_key(fake) -> None:
    sub = fake.new_subscription()
    assert set(sub) == {"endpoint", "expirationTime", "keys"}
    assert sub["endpoint"].startswith(f"{fake.url}/push/")
    assert sub["expirationTime"] is None
    assert "=" not in sub["keys"]["p256dh"] + sub["keys"]["auth"]
    point = unb64url(sub["keys"]["p256dh"])
    assert len(point) == 65
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert len(unb64url(sub["keys"]["auth"])) == 16


def test_a_valid_push_is_decrypted_recorded_and_answered_201(fake) -> None:
    sub = fake.new_subscription()
    response = push(sub, b"secret payload", headers={"Urgency": "high", "Topic": "scores"})
    assert response.status_code == 201
    assert response.headers["Location"].startswith(f"{fake.url}/m/")
    [message] = fake.received(sub)
    assert message.payload == b"secret payload"
    assert message.headers["ttl"] == "60"
    assert message.headers["urgency"] == "high"
    assert message.headers["topic"] == "scores"
    assert abs(message.time - time.time()) < 5


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://push.example"}, "aud"),
        ({"aud": None}, "aud"),
        ({"exp": int(time.time()) - 10}, "exp"),
        ({"exp": int(time.time()) + 25 * 3600}, "24 hours"),
        ({"exp": "soon"}, "exp"),
        ({"sub": "ops@example.com"}, "sub"),
    ],
)
def test_bad_jwt_claims_are_rejected_401(fake, claims, reason) -> None:
    sub = fake.new_subscription()
    response = push(sub, claims=claims)
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert fake.received(sub) == []


def test_a_forged_signature_is_rejected_401(fake) -> None:
    sub = fake.new_subscription()
    other = ec.generate_private_key(ec.SECP256R1())
    # Signed by another key but presenting ours.
    assert push(sub, key=other, k=public_b64(VAPID)).status_code == 401
    # A valid token with tampered claims.
    token = sign_jwt(VAPID, {"aud": "x", "exp": int(time.time()) + 60, "sub": "mailto:a@b.c"})
    head, _, sig = token.split(".")
    forged_claims = {"aud": fake.url, "exp": int(time.time()) + 60, "sub": "mailto:a@b.c"}
    forged = f"{head}.{b64url(json.dumps(forged_claims).encode())}.{sig}"
    response = push(sub, headers={"Authorization": f"vapid t={forged},k={public_b64(VAPID)}"})
    assert response.status_code == 401
    assert "signature" in response.json()["error"]
    assert fake.received(sub) == []


def test_verify_vapid_directly() -> None:
    claims = {"aud": "https://push.example", "exp": int(time.time()) + 60, "sub": "mailto:a@b.c"}
    token = sign_jwt(VAPID, claims)
    header = f"vapid t={token},k={public_b64(VAPID)}"
    assert verify_vapid(header, "https://push.example") == (token, public_b64(VAPID))
    with pytest.raises(Rejected, match="aud"):
        verify_vapid(header, "https://other.example")
    with pytest.raises(Rejected, match="vapid scheme"):
        verify_vapid(f"WebPush {token}", "https://push.example")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"TTL": ""}, 400),
        ({"TTL": "-1"}, 400),
        ({"Content-Encoding": "aesgcm"}, 400),
        ({"Urgency": "urgent"}, 400),
        ({"Topic": "x" * 33}, 400),
        ({"Topic": "has space"}, 400),
        ({"Authorization": "Bearer abc"}, 401),
        ({"Authorization": "vapid t=abc"}, 401),
    ],
)
def test_protocol_violations_are_rejected(fake, headers, status) -> None:
    sub = fake.new_subscription()
    assert push(sub, headers=headers).status_code == status
    assert fake.received(sub) == []


def test_undecryptable_and_oversized_bodies_are_rejected(fake) -> None:
    sub = fake.new_subscription()
    other = fake.new_subscription()
    assert push(sub, body=encrypt(other, b"for someone else")).status_code == 400
    assert push(sub, body=b"\x00" * 4097).status_code == 413
    assert push(sub, b"x" * 3993).status_code == 201  # 4096 bytes once encrypted


def test_a_restricted_subscription_only_accepts_its_application_server_key(fake) -> None:
    sub = fake.new_subscription(application_server_key=public_b64(VAPID))
    other = ec.generate_private_key(ec.SECP256R1())
    assert push(sub, key=other).status_code == 403
    assert push(sub).status_code == 201


def test_unknown_and_expired_subscriptions(fake) -> None:
    sub = fake.new_subscription()
    unknown = dict(sub, endpoint=f"{fake.url}/push/nope")
    assert push(unknown).status_code == 404
    fake.expire(sub)
    assert push(sub).status_code == 410


def test_scripted_answers_are_given_in_order_then_normal_service(fake) -> None:
    sub = fake.new_subscription()
    fake.script(sub, [{"status": 503, "retry_after": 30}, 429, 413, {"status": 302}, 201])
    first = push(sub)
    assert (first.status_code, first.headers["Retry-After"]) == (503, "30")
    assert push(sub).status_code == 429
    assert push(sub).status_code == 413
    redirect = push(sub)
    assert redirect.status_code == 302
    assert redirect.headers["Location"].startswith("http://169.254.169.254/")
    assert push(sub).status_code == 201
    assert push(sub).status_code == 201
    assert len(fake.received(sub)) == 2


def test_random_faults_are_seeded_and_latency_is_added(fake) -> None:
    subs = [fake.new_subscription() for _ in range(20)]
    fake.set_faults(throttle=1.0, retry_after=7, seed=1)
    throttled = push(subs[0])
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")

    def run() -> list[int]:
        fake.set_faults(gone=0.5, seed=42)
        return [push(s).status_code for s in subs]

    first = run()
    assert set(first) == {201, 410}
    for sub, status in zip(subs, first, strict=True):
        if status == 410:
            assert push(sub).status_code == 410  # gone stays gone
    fake.set_faults(latency_ms=300)
    started = time.monotonic()
    assert push(subs[first.index(201)]).status_code == 201
    assert time.monotonic() - started >= 0.3


def test_distinct_jwts_are_counted(fake) -> None:
    sub = fake.new_subscription()
    claims = {"exp": int(time.time()) + 600}
    token = sign_jwt(VAPID, {"aud": fake.url, "sub": "mailto:a@b.c", **claims})
    auth = {"Authorization": f"vapid t={token}, k={public_b64(VAPID)}"}
    for _ in range(3):
        assert push(sub, headers=auth).status_code == 201
    assert fake.jwts_seen == 1
    assert push(sub).status_code == 201
    assert fake.jwts_seen == 2
    assert fake.stats()["jwts_seen"] == 2


def test_http_control_api(fake) -> None:
    base = f"{fake.url}/_control"
    created = HTTP.post(f"{base}/subscriptions", json={}, timeout=5)
    assert created.status_code == 201
    sub = created.json()
    sub_id = sub["endpoint"].rsplit("/", 1)[1]
    assert push(sub, b"over http").status_code == 201
    received = HTTP.get(f"{base}/received", params={"subscription": sub_id}, timeout=5)
    [message] = received.json()["messages"]
    assert message["payload"] == "over http"
    assert message["headers"]["ttl"] == "60"

    script = {"answers": [{"status": 503, "retry_after": "30"}, 201]}
    assert HTTP.post(f"{base}/subscriptions/{sub_id}/script", json=script, timeout=5).ok
    assert push(sub).status_code == 503
    assert push(sub).status_code == 201
    assert HTTP.post(f"{base}/subscriptions/{sub_id}/expire", timeout=5).json()["ok"]
    assert push(sub).status_code == 410

    assert HTTP.post(f"{base}/faults", json={"throttle": 1.0, "seed": 3}, timeout=5).ok
    assert push(fake.new_subscription()).status_code == 429
    stats = HTTP.get(f"{base}/stats", timeout=5).json()
    assert stats["statuses"] == {"201": 2, "410": 1, "429": 1, "503": 1}
    assert stats["delivered"] == 2

    assert HTTP.post(f"{base}/reset", json={}, timeout=5).ok
    assert HTTP.get(f"{base}/stats", timeout=5).json()["requests"] == 0
    assert HTTP.get(f"{base}/received", timeout=5).json()["messages"] == []
    assert HTTP.post(f"{base}/subscriptions/nope/expire", timeout=5).status_code == 404


def test_restricted_subscription_over_http(fake) -> None:
    created = HTTP.post(
        f"{fake.url}/_control/subscriptions",
        json={"applicationServerKey": public_b64(VAPID)},
        timeout=5,
    ).json()
    assert push(created, key=ec.generate_private_key(ec.SECP256R1())).status_code == 403
    assert push(created).status_code == 201


def test_reset_can_forget_subscriptions(fake) -> None:
    sub = fake.new_subscription()
    fake.reset(subscriptions=True)
    assert push(sub).status_code == 404
