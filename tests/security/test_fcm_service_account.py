"""SSRF through an app's own FCM service account, and what a broken key may hold up.

The key's `token_uri` is a URL our workers POST to: it must be Google's token endpoint or an
allowlisted test host, at upload and at use; no outbound client follows a redirect; an
endpoint's answer never reaches a delivery's error, the app's `last_error` or the logs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fakes.fcm import new_service_account
from keymaster.errors import InvalidInput
from push.delivery.runtime import runtime_reset
from push.models import Delivery, PushConfig
from push.services.config import push_config_set_fcm_service_account
from tests.drain import drain
from tests.factories import (
    app_client,
    enable_push,
    enroll,
    fcm_token,
    make_app,
    make_user,
    register,
)
from tests.security.debuglogs import Collector, every_logger_at_debug
from tests.security.hostile_support import ConnectionCounter

pytestmark = pytest.mark.django_db

INTERNAL = "INTERNAL-ADMIN-PAGE db_password=hunter2"


class Scripted:
    """A loopback HTTP server answering every POST with one scripted status, headers and body."""

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.hits += 1
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="fake-server"
        )

    def __enter__(self) -> Scripted:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def listener() -> Iterator[ConnectionCounter]:
    with ConnectionCounter(("127.0.0.2",)) as counter:
        yield counter


def _store_unchecked(app, info: dict) -> None:
    # As a key stored before the upload check existed (or through a bug) would be.
    config = PushConfig.objects.get(app=app)
    config.fcm_service_account = json.dumps(info)
    config.save()


def _send_to(app, user) -> None:
    body = {"user_id": str(user.id), "title": "t", "body": "b"}
    assert app_client(app).post("/push/send", body, format="json").status_code == 202


def _app_with_device(user=None):
    app = make_app()[0]
    enable_push(app)
    user = user or make_user()
    enroll(app, user)
    register(user, app, fcm_token())
    return app, user


# --- upload -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token_uri",
    [
        "http://127.0.0.2/token",
        "https://169.254.169.254/computeMetadata/v1/",
        "https://internal.example.com/token",
        "https://oauth2.googleapis.com.evil.example/token",
        "https://oauth2.googleapis.com@127.0.0.1/token",
        "https://oauth2.googleapis.com/token/../../internal",
        "file:///etc/passwd",
        42,
    ],
)
def test_upload_refuses_a_token_uri_other_than_googles(providers, token_uri):
    app = make_app()[0]
    info = {**new_service_account("p", "x"), "token_uri": token_uri}
    with pytest.raises(InvalidInput, match="token_uri must be https://oauth2.googleapis.com/tok"):
        push_config_set_fcm_service_account(app=app, actor=None, service_account=json.dumps(info))
    assert PushConfig.objects.get(app=app).fcm_service_account == ""


def test_upload_accepts_google_and_the_allowlisted_test_origin(providers, settings):
    app = make_app()[0]
    google = new_service_account("p", "https://oauth2.googleapis.com/token")
    push_config_set_fcm_service_account(app=app, actor=None, service_account=json.dumps(google))
    test_origin = providers["fcm"].service_account("p")
    push_config_set_fcm_service_account(
        app=app, actor=None, service_account=json.dumps(test_origin)
    )
    settings.OUTBOUND_ALLOWED_HOSTS = ""
    with pytest.raises(InvalidInput):
        push_config_set_fcm_service_account(
            app=app, actor=None, service_account=json.dumps(test_origin)
        )


def _ec_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    ("private_key", "message"),
    [
        ("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n", "readable PEM"),
        ("not a key", "readable PEM"),
        (_ec_key_pem(), "must be an RSA key"),
    ],
)
def test_upload_refuses_a_key_that_cannot_sign(providers, private_key, message):
    app = make_app()[0]
    info = {**new_service_account("p", "https://oauth2.googleapis.com/token")}
    info["private_key"] = private_key
    with pytest.raises(InvalidInput, match=message):
        push_config_set_fcm_service_account(app=app, actor=None, service_account=json.dumps(info))


# --- use ----------------------------------------------------------------------------------------


def test_a_stored_key_aiming_inside_is_refused_at_use_without_a_connection(providers, listener):
    app, user = _app_with_device()
    internal = f"http://127.0.0.2:{listener.ports['127.0.0.2']}/token"
    _store_unchecked(app, providers["fcm"].service_account("p") | {"token_uri": internal})
    _send_to(app, user)
    drain()
    delivery = Delivery.objects.get()
    assert delivery.status == "failed" and delivery.error == "fcm_credential_invalid"
    assert "token_uri must be https://oauth2.googleapis.com/token" in delivery.error_detail
    assert "fcm_credential_invalid" in PushConfig.objects.get(app=app).last_error
    assert listener.connections == 0


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_the_token_endpoint_redirect_is_not_followed(providers, listener, settings, status):
    settings.OUTBOUND_ALLOWED_HOSTS = "127.0.0.1,127.0.0.2"  # only "no redirects" keeps it out
    location = f"http://127.0.0.2:{listener.ports['127.0.0.2']}/steal"
    with Scripted(status, INTERNAL.encode(), {"Location": location}) as token_endpoint:
        app, user = _app_with_device()
        info = providers["fcm"].service_account("p") | {"token_uri": f"{token_endpoint.url}/t"}
        push_config_set_fcm_service_account(app=app, actor=None, service_account=json.dumps(info))
        _send_to(app, user)
        drain()
    assert token_endpoint.hits >= 1 and listener.connections == 0
    delivery = Delivery.objects.get()
    assert delivery.status == "failed" and delivery.error == "auth_rejected"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, INTERNAL.encode()),
        (200, f"<html>{INTERNAL}</html>".encode()),
        (401, json.dumps({"error": "invalid_grant", "error_description": INTERNAL}).encode()),
        (403, json.dumps({"detail": INTERNAL}).encode()),
    ],
)
def test_the_token_endpoints_answer_is_never_shown_nor_logged(providers, settings, status, body):
    collector = Collector()
    with Scripted(status, body) as token_endpoint, every_logger_at_debug(collector):
        app, user = _app_with_device()
        info = providers["fcm"].service_account("p") | {"token_uri": f"{token_endpoint.url}/t"}
        push_config_set_fcm_service_account(app=app, actor=None, service_account=json.dumps(info))
        _send_to(app, user)
        drain()
    delivery = Delivery.objects.get()
    shown = " ".join(
        [delivery.error_detail, PushConfig.objects.get(app=app).last_error, *collector.lines]
    )
    assert token_endpoint.hits >= 1 and delivery.error_detail
    assert "hunter2" not in shown and "<html>" not in shown


def test_the_fcm_api_redirect_is_not_followed(providers, listener, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = "127.0.0.1,127.0.0.2"
    location = f"http://127.0.0.2:{listener.ports['127.0.0.2']}/steal"
    with Scripted(307, INTERNAL.encode(), {"Location": location}) as api:
        settings.FCM_API_URL = api.url
        runtime_reset()
        app, user = _app_with_device()
        _send_to(app, user)
        drain()
        runtime_reset()
    assert api.hits >= 1 and listener.connections == 0
    delivery = Delivery.objects.get()
    assert delivery.error == "http_307" and "hunter2" not in delivery.error_detail


# --- a broken key holds up nothing else -------------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    [
        {"private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"},
        {"token_uri": "http://10.0.0.1/token"},
    ],
)
def test_a_broken_key_fails_its_apps_fcm_alone(providers, broken):
    fcm, webpush = providers["fcm"], providers["webpush"]
    user = make_user()
    broken_app, _ = _app_with_device(user)
    config = PushConfig.objects.get(app=broken_app)
    register(user, broken_app, webpush.new_subscription(config.vapid_public_key), "web")
    _store_unchecked(broken_app, fcm.service_account("p") | broken)
    other_app, _ = _app_with_device(user)
    _send_to(broken_app, user)
    _send_to(other_app, user)
    drain()
    outcomes = {
        (d.app_id, d.device.platform): (d.status, d.error)
        for d in Delivery.objects.select_related("device")
    }
    assert outcomes == {
        (broken_app.pk, "android"): ("failed", "fcm_credential_invalid"),
        (broken_app.pk, "web"): ("delivered", ""),
        (other_app.pk, "android"): ("delivered", ""),
    }
    assert len(webpush.received()) == 1
    last_error = PushConfig.objects.get(app=broken_app).last_error
    assert last_error.startswith("fcm_credential_invalid: FCM service account unusable")
    assert PushConfig.objects.get(app=other_app).last_error == ""
