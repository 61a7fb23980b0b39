"""The fake FCM server: Google's OAuth JWT-bearer grant, FCM v1 validation, scripted answers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import google.auth.transport.requests
import httpx
import jwt
import pytest
from firebase_admin import credentials, messaging

from fakes.fcm import ANSWERS, JWT_BEARER_GRANT, FakeFcm, new_service_account

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# One client for the module: building one per request costs ~50 ms of TLS setup.
http = httpx.Client(timeout=10)


@pytest.fixture(scope="module")
def fake():
    with FakeFcm() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(fake):
    fake.reset()


@pytest.fixture(scope="module")
def account(fake):
    return fake.service_account("proj-a")


@pytest.fixture
def bearer(fake, account):
    """Return headers with a fresh access token (some tests revoke every issued token)."""
    access_token = grant(fake, assertion(account)).json()["access_token"]
    return {"Authorization": f"Bearer {access_token}"}


def assertion(info, *, key_pem=None, **claims):
    now = int(time.time())
    payload = {
        "iss": info["client_email"],
        "aud": info["token_uri"],
        "iat": now,
        "exp": now + 3600,
        "scope": SCOPE,
        **claims,
    }
    headers = {"kid": info["private_key_id"]}
    return jwt.encode(payload, key_pem or info["private_key"], algorithm="RS256", headers=headers)


def grant(fake, token):
    form = {"grant_type": JWT_BEARER_GRANT, "assertion": token}
    return http.post(f"{fake.url}/token", data=form)


def send(fake, body, headers, project="proj-a"):
    return http.post(f"{fake.url}/v1/projects/{project}/messages:send", json=body, headers=headers)


def test_real_google_auth_flow_gets_an_access_token(fake, account):
    google_credential = credentials.Certificate(account).get_credential()
    google_credential.refresh(google.auth.transport.requests.Request())

    assert google_credential.valid
    assert google_credential.token.startswith("ya29.")
    assert fake.stats()["tokens_issued"] == 1


def test_grant_answers_like_google(fake, account):
    response = grant(fake, assertion(account))

    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"
    assert body["access_token"]


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "https://example.com/token"}, "invalid_grant", "Failed audience check"),
        ({"exp": int(time.time()) - 10}, "invalid_grant", "short-lived"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant", "short-lived"),
        ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "invalid_scope", "scope"),
        ({"iss": "nobody@proj-a.iam.gserviceaccount.com"}, "invalid_grant", "not found"),
    ],
)
def test_grant_rejects_bad_claims(fake, account, claims, error, description):
    response = grant(fake, assertion(account, **claims))

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert description in response.json()["error_description"]
    assert fake.stats()["tokens_issued"] == 0


def test_grant_rejects_assertion_signed_with_another_key(fake, account):
    other_key = new_service_account("proj-a", account["token_uri"])["private_key"]

    response = grant(fake, assertion(account, key_pem=other_key))

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }


def test_grant_rejects_other_grant_types(fake, account):
    response = http.post(
        f"{fake.url}/token", data={"grant_type": "client_credentials", "assertion": "x"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_send_accepts_and_records_a_valid_message(fake, bearer):
    message = {
        "token": "device-1",
        "notification": {"title": "Hi", "body": "there"},
        "data": {"route": "/x"},
        "android": {"ttl": "3600s", "priority": "high", "collapse_key": "c"},
        "apns": {"headers": {"apns-priority": "10"}},
        "webpush": {"headers": {"TTL": "3600"}},
    }

    response = send(fake, {"message": message}, bearer)

    assert response.status_code == 200
    name = response.json()["name"]
    assert name.startswith("projects/proj-a/messages/")
    assert fake.messages == [{"name": name, **message}]


def test_validate_only_is_answered_but_not_recorded(fake, bearer):
    response = send(fake, {"message": {"token": "d"}, "validate_only": True}, bearer)

    assert response.json() == {"name": "projects/proj-a/messages/fake_message_id"}
    assert fake.messages == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer ya29.made-up"}, {"Authorization": "Basic abc"}],
)
def test_send_rejects_missing_or_unknown_bearer(fake, headers):
    response = send(fake, {"message": {"token": "d"}}, headers)

    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert fake.messages == []


def test_send_rejects_bearer_of_another_project(fake, bearer):
    response = send(fake, {"message": {"token": "d"}}, bearer, project="proj-b")

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert "details" not in error


def test_expired_access_tokens_are_refused(fake, account):
    google_credential = credentials.Certificate(account).get_credential()
    google_credential.refresh(google.auth.transport.requests.Request())
    fake.expire_access_tokens()

    response = send(
        fake, {"message": {"token": "d"}}, {"Authorization": f"Bearer {google_credential.token}"}
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"token": "d", "data": {"count": 1}}, "message.data[0].value"),
        ({"token": "d", "android": {"ttl": "3600"}}, "message.android.ttl"),
        ({"token": "d", "android": {"ttl": 3600}}, "message.android.ttl"),
        ({"token": "d", "android": {"priority": "urgent"}}, "message.android.priority"),
        (
            {"token": "d", "apns": {"headers": {"apns-priority": 10}}},
            "message.apns.headers[0].value",
        ),
        ({"token": "d", "webpush": {"headers": {"TTL": 60}}}, "message.webpush.headers[0].value"),
        ({"token": "d", "topic": "news"}, "message"),
        ({"data": {"a": "b"}}, "message"),
        ({"token": ""}, "message.token"),
        ({"token": "d", "colour": "red"}, "message.colour"),
        ({"token": "d", "data": {"google.x": "y"}}, "message.data"),
        ({"token": "d", "data": {"blob": "x" * 4100}}, "message"),
    ],
)
def test_send_rejects_invalid_messages_like_fcm(fake, bearer, message, field):
    response = send(fake, {"message": message}, bearer)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    violations = [d for d in error["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    assert violations[0]["fieldViolations"][0]["field"] == field
    assert fake.messages == []


def test_payload_over_4kb_is_too_big(fake, bearer):
    data = {f"k{i}": "v" * 100 for i in range(40)}  # 40 * 102 bytes + notification

    response = send(
        fake, {"message": {"token": "d", "data": data, "notification": {"title": "t"}}}, bearer
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Message is too big"


@pytest.mark.parametrize(
    ("answer", "status", "exception"),
    [
        ("UNREGISTERED", 404, messaging.UnregisteredError),
        ("SENDER_ID_MISMATCH", 403, messaging.SenderIdMismatchError),
        ("THIRD_PARTY_AUTH_ERROR", 401, messaging.ThirdPartyAuthError),
        ("QUOTA_EXCEEDED", 429, messaging.QuotaExceededError),
        ("INVALID_ARGUMENT", 400, None),
        ("UNAVAILABLE", 503, None),
        ("INTERNAL", 500, None),
    ],
)
def test_scripted_errors_have_the_bodies_firebase_admin_parses(
    fake, bearer, answer, status, exception
):
    fake.script("d", [answer])

    response = send(fake, {"message": {"token": "d"}}, bearer)

    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == status
    fcm_codes = [d["errorCode"] for d in error["details"] if d["@type"].endswith("FcmError")]
    assert fcm_codes == [ANSWERS[answer].error_code]
    assert messaging._MessagingService._build_fcm_error(error) is exception


def test_invalid_token_error_names_the_token_field(fake, bearer):
    fake.script("d", ["INVALID_ARGUMENT"])

    error = send(fake, {"message": {"token": "d"}}, bearer).json()["error"]

    assert error["details"] == [
        {
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": "INVALID_ARGUMENT",
        },
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [
                {
                    "field": "message.token",
                    "description": "The registration token is not a valid FCM registration token",
                }
            ],
        },
    ]


def test_unregistered_body_is_fcms(fake, bearer):
    fake.script("d", ["UNREGISTERED"])

    response = send(fake, {"message": {"token": "d"}}, bearer)

    assert response.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "UNREGISTERED",
                }
            ],
        }
    }


def test_scripts_are_consumed_in_order_then_succeed(fake, bearer):
    fake.script("d", ["UNAVAILABLE:retry_after=30", "HTTP_502", "OK"])

    first, second, third, fourth = (
        send(fake, {"message": {"token": "d"}}, bearer) for _ in range(4)
    )

    assert (first.status_code, first.headers["Retry-After"]) == (503, "30")
    assert second.status_code == 502
    assert second.headers["Content-Type"].startswith("text/html")
    assert third.status_code == fourth.status_code == 200
    assert fake.stats()["outcomes"] == {"UNAVAILABLE": 1, "HTTP_502": 1, "OK": 2}


def test_script_rejects_unknown_answers(fake):
    with pytest.raises(ValueError, match="unknown FCM answer"):
        fake.script("d", ["GONE"])


def test_unregistered_prefix_always_answers_unregistered(fake, bearer):
    for _ in range(2):
        response = send(fake, {"message": {"token": "unregistered-42"}}, bearer)
        assert response.status_code == 404


def test_fault_rates_are_seeded(fake, bearer):
    def run():
        fake.set_faults(unregistered_rate=0.3, quota_rate=0.3, seed=7)
        return [send(fake, {"message": {"token": "d"}}, bearer).status_code for _ in range(30)]

    first, second = run(), run()

    assert first == second
    assert {200, 404, 429} == set(first)


def test_quota_fault_carries_retry_after(fake, bearer):
    fake.set_faults(quota_rate=1.0, quota_retry_after=17)

    response = send(fake, {"message": {"token": "d"}}, bearer)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "17"
    assert response.json()["error"]["details"][0]["errorCode"] == "QUOTA_EXCEEDED"


def test_latency_delays_answers(fake, bearer):
    fake.set_faults(latency_ms=300)

    started = time.monotonic()
    send(fake, {"message": {"token": "d"}}, bearer)

    assert time.monotonic() - started >= 0.3


def test_control_endpoints_over_http(fake):
    control = f"{fake.url}/_control"
    info = http.post(f"{control}/service-accounts/new", json={"project_id": "proj-c"}).json()
    google_credential = credentials.Certificate(info).get_credential()
    google_credential.refresh(google.auth.transport.requests.Request())
    headers = {"Authorization": f"Bearer {google_credential.token}"}

    scripted = http.post(f"{control}/script", json={"token": "d", "answers": ["INTERNAL"]})
    faults = http.post(f"{control}/faults", json={"latency_ms": 1, "unregistered_rate": 0})
    first = send(fake, {"message": {"token": "d"}}, headers, project="proj-c")
    second = send(fake, {"message": {"token": "d"}}, headers, project="proj-c")
    stats = http.get(f"{control}/stats").json()
    messages = http.get(f"{control}/messages").json()["messages"]

    assert scripted.json() == {"ok": True}
    assert faults.json()["latency_ms"] == 1
    assert (first.status_code, second.status_code) == (500, 200)
    assert stats["tokens_issued"] == 1
    assert stats["outcomes"] == {"INTERNAL": 1, "OK": 1}
    assert [m["token"] for m in messages] == ["d"]

    assert http.post(f"{control}/reset").json() == {"ok": True}
    assert http.get(f"{control}/stats").json()["messages"] == 0
    assert http.post(f"{control}/expire-tokens").json() == {"ok": True}
    assert send(fake, {"message": {"token": "d"}}, headers, project="proj-c").status_code == 401
    assert http.post(f"{control}/script", json={"token": "d"}).status_code == 400
    assert (
        http.post(f"{control}/script", json={"token": "d", "answers": ["NOPE"]}).status_code == 400
    )
    assert http.get(f"{control}/nothing").status_code == 404


def test_control_registers_an_existing_service_account(fake):
    info = new_service_account("proj-d", f"{fake.url}/token")
    google_credential = credentials.Certificate(info).get_credential()
    before = grant(fake, assertion(info))

    registered = http.post(f"{fake.url}/_control/service-accounts/register", json=info)
    google_credential.refresh(google.auth.transport.requests.Request())

    assert before.status_code == 400
    assert registered.json() == {"ok": True}
    assert google_credential.valid


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_standalone_writes_and_reuses_its_service_account(tmp_path: Path):
    path = tmp_path / "sa.json"
    port = _free_port()
    root = Path(__file__).resolve().parents[2]

    def run_and_refresh():
        command = [
            sys.executable,
            "-m",
            "fakes.fcm",
            "--port",
            str(port),
            "--service-account",
            str(path),
        ]
        with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as process:
            try:
                assert "listening on" in process.stdout.readline()
                info = json.loads(path.read_text())
                google_credential = credentials.Certificate(info).get_credential()
                google_credential.refresh(google.auth.transport.requests.Request())
                return info
            finally:
                process.terminate()

    first = run_and_refresh()
    second = run_and_refresh()

    assert first == second
    assert first["token_uri"] == f"http://127.0.0.1:{port}/token"
    assert path.stat().st_mode & 0o077 == 0
