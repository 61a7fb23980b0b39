"""The `keymaster` command against the stub: arguments, output (text and --json), exit codes."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook
from stub_server import Reply, StubServer, api_error

import keymaster_client
from keymaster_client.cli import (
    EXIT_AUTH,
    EXIT_BAD_SIGNATURE,
    EXIT_FORBIDDEN,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_RATE_LIMITED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    _time,
    main,
)

NOTIFICATION = {
    "notification_id": "n-1",
    "app_id": "app-1",
    "user_id": "u1",
    "title": "Hi",
    "body": "There",
    "data": None,
    "ttl": None,
    "status": "scheduled",
    "created_at": "2026-12-23T10:00:00Z",
    "send_at": "2026-12-24T08:00:00+01:00",
    "deliveries": [],
}


class Run:
    """One run of the command: its exit code and what it printed."""

    def __init__(self, stub: StubServer, *argv: str, stdin: bytes = b"", **env: str) -> None:
        environ = {
            "KEYMASTER_URL": stub.url,
            "KEYMASTER_CLIENT_ID": stub.client_id,
            "KEYMASTER_CLIENT_SECRET": stub.client_secret,
            **env,
        }
        out, err = io.StringIO(), io.StringIO()
        argv_list = [*argv, "--retries", "0"] if argv and not argv[0].startswith("-") else argv
        self.code = main(
            list(argv_list), env=environ, stdin=io.BytesIO(stdin), stdout=out, stderr=err
        )
        self.out = out.getvalue()
        self.err = err.getvalue()

    @property
    def json(self) -> object:
        return json.loads(self.out)


def test_send_posts_the_notification_and_prints_its_id(stub: StubServer) -> None:
    stub.install("POST", "/push/send", Reply(202, {"notification_id": "n-1"}))

    run = Run(
        stub,
        "send",
        "--user", "u1",
        "--title", "Hi",
        "--body", "There",
        "--data", "route=/x",
        "--data", "k=a=b",
        "--at", "2026-12-24T08:00:00+01:00",
    )  # fmt: skip

    assert (run.code, run.out, run.err) == (EXIT_OK, "n-1\n", "")
    (request,) = stub.to("/push/send")
    assert request.json == {
        "user_id": "u1",
        "title": "Hi",
        "body": "There",
        "data": {"route": "/x", "k": "a=b"},
        "send_at": "2026-12-24T08:00:00+01:00",
    }
    assert request.headers["idempotency-key"]


def test_status_prints_json_with_typed_fields(stub: StubServer) -> None:
    stub.install("GET", "/push/notifications/n-1", Reply(200, NOTIFICATION))

    run = Run(stub, "status", "n-1", "--json")

    assert run.code == EXIT_OK
    assert run.json == {
        **NOTIFICATION,
        "created_at": "2026-12-23T10:00:00+00:00",
        "priority": None,
        "collapse_key": None,
        "completed_at": None,
        "broadcast_id": None,
    }


def test_status_text_names_status_and_send_time(stub: StubServer) -> None:
    stub.install("GET", "/push/notifications/n-1", Reply(200, NOTIFICATION))

    run = Run(stub, "status", "n-1")

    assert run.out == "n-1 scheduled (to u1, send_at 2026-12-24T08:00:00+01:00)\n"


def test_cancel_prints_the_canceled_status(stub: StubServer) -> None:
    stub.install(
        "POST",
        "/push/notifications/n-1/cancel",
        Reply(200, {"notification_id": "n-1", "status": "canceled"}),
    )

    run = Run(stub, "cancel", "n-1", "--json")

    assert run.code == EXIT_OK
    assert run.json == {"notification_id": "n-1", "status": "canceled"}


def test_devices_lists_every_page(stub: StubServer) -> None:
    def page(request):  # noqa: ANN001, ANN202
        offset = int(request.query["offset"])
        devices = [
            {
                "device_id": f"d{i}",
                "user_id": "u1",
                "platform": "android",
                "label": "Pixel",
                "created_at": "2026-12-01T09:00:00Z",
                "last_seen_at": "2026-12-02T09:00:00Z",
            }
            for i in range(offset, min(offset + 100, 150))
        ]
        return Reply(200, {"devices": devices, "total": 150, "limit": 100, "offset": offset})

    stub.install("GET", "/push/devices/app-uuid", page)

    run = Run(stub, "devices", "--app-id", "app-uuid")

    assert run.code == EXIT_OK
    lines = run.out.splitlines()
    assert len(lines) == 150
    assert lines[0] == "d0  android  u1  Pixel  2026-12-02T09:00:00+00:00"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (api_error(403, "not_enrolled", user_ids=["u1"]), EXIT_FORBIDDEN),
        (api_error(404, "not_found"), EXIT_NOT_FOUND),
        (api_error(400, "validation_error", fields={"title": ["Required."]}), EXIT_INVALID),
        (Reply(409, {"error": {"code": "not_cancelable", "status": "sent"}}), EXIT_INVALID),
        (api_error(429, "quota_exceeded"), EXIT_RATE_LIMITED),
        (api_error(503, "unavailable"), EXIT_UNAVAILABLE),
    ],
)
def test_errors_exit_with_their_kinds_code_and_a_json_error(
    stub: StubServer, reply: Reply, code: int
) -> None:
    stub.install("POST", "/push/notifications/n-1/cancel", reply)

    run = Run(stub, "cancel", "n-1", "--json")

    assert run.code == code
    assert run.out == ""
    error = json.loads(run.err)["error"]
    assert error["status"] == reply.status
    assert error["code"] == reply.body["error"]["code"]
    # A validation error carries its field messages; the others have none.
    assert error.get("fields") == reply.body["error"].get("fields")


def test_wrong_secret_exits_with_the_authentication_code(stub: StubServer) -> None:
    run = Run(stub, "status", "n-1", KEYMASTER_CLIENT_SECRET="wrong")

    assert run.code == EXIT_AUTH
    assert run.err == "keymaster: invalid_client (HTTP 401): bad credentials\n"


def test_missing_credentials_are_a_usage_error_naming_them(stub: StubServer) -> None:
    run = Run(stub, "status", "n-1", KEYMASTER_URL="", KEYMASTER_CLIENT_SECRET="")

    assert run.code == EXIT_USAGE
    assert "KEYMASTER_URL, KEYMASTER_CLIENT_SECRET" in run.err
    assert stub.requests == []


@pytest.mark.parametrize("at", ["tomorrow", "2026-12-24T08:00:00", "+5x"])
def test_send_time_without_an_offset_is_a_usage_error(stub: StubServer, at: str) -> None:
    run = Run(stub, "send", "--user", "u1", "--title", "T", "--body", "B", "--at", at)

    assert run.code == EXIT_USAGE
    assert stub.requests == []


def test_relative_send_time_counts_from_now() -> None:
    now = datetime(2026, 12, 24, 7, 0, tzinfo=timezone.utc)

    assert _time("+90m", lambda: now) == "2026-12-24T08:30:00+00:00"
    assert _time("2026-12-24T08:00:00Z") == "2026-12-24T08:00:00Z"


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RECEIPT = {
    "notification_id": "n-1",
    "user_id": "u1",
    "device_id": "d1",
    "app_id": "app-1",
    "status": "delivered",
    "error": None,
    "timestamp": "2026-12-24T07:00:01Z",
}


def signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_verify_webhook_reads_the_body_from_stdin_and_headers_from_options(
    stub: StubServer,
) -> None:
    body = json.dumps(RECEIPT).encode()

    signed_at = datetime.now(timezone.utc)
    standard = Webhook(SECRET).sign("msg_1", signed_at, body.decode())
    run = Run(
        stub,
        "verify-webhook",
        "--secret",
        SECRET,
        "-H",
        "webhook-id: msg_1",
        "-H",
        f"webhook-timestamp: {int(signed_at.timestamp())}",
        "-H",
        f"webhook-signature: {standard}",
        "--json",
        stdin=body,
    )

    assert run.code == EXIT_OK
    assert run.json == RECEIPT


def test_verify_webhook_takes_the_guides_header_alone_only_when_asked(stub: StubServer) -> None:
    body = json.dumps(RECEIPT).encode()
    header = f"X-Keymaster-Signature: {signature(body)}"

    refused = Run(stub, "verify-webhook", "--secret", SECRET, "-H", header, stdin=body)
    accepted = Run(
        stub,
        "verify-webhook",
        "--secret",
        SECRET,
        "-H",
        header,
        "--accept-keymaster-signature-alone",
        "--json",
        stdin=body,
    )

    assert refused.code == 9
    assert accepted.code == EXIT_OK
    assert accepted.json == RECEIPT


def test_verify_webhook_with_a_wrong_signature_exits_9(stub: StubServer) -> None:
    body = json.dumps(RECEIPT).encode()

    run = Run(
        stub,
        "verify-webhook",
        "-H",
        f"X-Keymaster-Signature: {signature(b'other')}",
        stdin=body,
        KEYMASTER_WEBHOOK_SECRET=SECRET,
    )

    assert run.code == EXIT_BAD_SIGNATURE
    assert run.err.startswith("keymaster: ")


def test_the_module_runs_as_the_keymaster_command(stub: StubServer) -> None:
    # The code this test imported (the source tree, or an installed wheel), not another copy.
    imported_from = Path(keymaster_client.__file__).resolve().parents[1]
    environment = {**os.environ, "PYTHONPATH": str(imported_from), "KEYMASTER_URL": ""}

    finished = subprocess.run(
        [sys.executable, "-m", "keymaster_client", "status", "n-1"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == EXIT_USAGE
    assert "KEYMASTER_URL" in finished.stderr
