"""Hostile input: every case is a clear 4xx, makes no internal connection and stores nothing.

Table-driven through the real API (and the Console's forms) on the real database; run it on
PostgreSQL, where NUL and unpaired surrogates used to be 500s. Oversized bodies also go through
the production server (gunicorn) over a raw socket. Figures: artifacts/reliability/hostile.json.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import socket
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings
from django.test import Client
from rest_framework.test import APIClient

from accounts.tokens import client_token_issue, user_access_token_issue, user_tokens_issue
from keymaster.parsers import MAX_DEPTH, StrictJSONParser
from push import outbound
from push.models import Notification, PushConfig, Receipt
from tests.drain import drain
from tests.factories import (
    enroll,
    make_admin,
    make_app,
    make_push_app,
    make_user,
    register,
)
from tests.figures import figures_record
from tests.push.subscriptions import b64url, browser_subscription
from tests.security.hostile_support import (
    ConnectionCounter,
    gunicorn_serve,
    post_streaming,
    rows_added,
    rows_stored,
)

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
FORM = "application/x-www-form-urlencoded"


# --- the world, the counters and the figures ------------------------------------------------


@pytest.fixture(scope="module")
def tally():
    """Every refused case of the module, written to artifacts/reliability/hostile.json."""
    cases: list[dict[str, Any]] = []
    yield cases
    by_class: dict[str, int] = {}
    for case in cases:
        by_class[case["class"]] = by_class.get(case["class"], 0) + 1
    figures_record(
        "hostile",
        "input",
        {
            "database": django_settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "cases": len(cases),
            "cases_by_class": by_class,
            "answered_4xx": sum(400 <= c["status"] < 500 for c in cases),
            "answered_5xx": sum(c["status"] >= 500 for c in cases),
            "internal_connections": sum(c["connections"] for c in cases),
            "rows_stored": sum(c["rows"] for c in cases),
        },
    )


@pytest.fixture(scope="module")
def listener():
    with ConnectionCounter() as counter:
        yield counter


@pytest.fixture(autouse=True)
def quick_world(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.OUTBOUND_ALLOWED_HOSTS = ""


@pytest.fixture
def world(settings):
    app = make_push_app()
    user, admin = make_user(), make_admin(app)
    # Without a device: held to the field limits only, not to a provider's (test_payload_limits).
    deviceless = make_user()
    enroll(app, user, deviceless)
    settings.PUSH_DEFAULT_APP_ID = str(app.app_id)
    device = register(user, app)
    return {"app": app, "user": user, "admin": admin, "device": device, "deviceless": deviceless}


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _caller(world: dict, who: str) -> APIClient:
    if who == "app":
        return _bearer(client_token_issue(world["app"], ["push:send"])["access_token"])
    return _bearer(user_tokens_issue(world[who])["access"])


class Refusal:
    """Run one hostile request; check the 4xx, the error format, the rows and connections."""

    def __init__(self, tally: list, listener: ConnectionCounter, kind: str) -> None:
        self.tally, self.listener, self.kind = tally, listener, kind

    def __call__(
        self,
        name: str,
        request,
        *,
        status: int | tuple[int, ...] | None = None,
        field: str | None = None,
        code: str | None = None,
        counters_may_grow: bool = False,
        page_text: str | None = None,
        then_get=None,
    ) -> dict:
        before, connections = rows_stored(), self.listener.connections
        response = request()
        if then_get is not None:
            # A Console form answers a refused POST with a redirect to the form (Post/Redirect/
            # Get); the page it leads to shows the errors and must be a success.
            assert response.status_code == 302, (name, response.status_code, response.content)
            shown = then_get(response.url)
            assert shown.status_code == 200 and "data-form-error" in shown.content.decode()
            response = shown
            response.status_code = 400  # the refusal, as the person sees it
        after = rows_stored()
        if counters_may_grow:  # a failed password or secret is counted, by design
            after["Counter"] = before["Counter"]
        case = {
            "class": self.kind,
            "case": name,
            "status": response.status_code,
            "connections": self.listener.connections - connections,
            "rows": rows_added(before, after),
        }
        self.tally.append(case)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.content)
        if status is not None:
            expected = status if isinstance(status, tuple) else (status,)
            assert response.status_code in expected, (name, response.content)
        assert case["rows"] == 0, (name, before, after)
        assert case["connections"] == 0, name
        if page_text is not None:  # an HTML form, answered with its errors
            assert page_text in response.content.decode(), name
            return {}
        answer = response.json()
        if isinstance(answer["error"], str):  # /oauth/token answers in RFC 6749's own format
            assert answer["error_description"] and (code is None or answer["error"] == code)
            return answer
        error = answer["error"]
        assert error["code"] and error["message"], answer
        if code is not None:
            assert error["code"] == code, (name, error)
        if field is not None:
            assert field in error.get("fields", {}), (name, error)
        return error


@pytest.fixture
def refused(tally, listener, request):
    kind = request.node.originalname.removeprefix("test_")
    return Refusal(tally, listener, kind)


def _post(client: APIClient, path: str, body: bytes, content_type="application/json", **extra):
    return lambda: client.generic("POST", path, body, content_type=content_type, **extra)


def _json(document: Any) -> bytes:
    # ensure_ascii: the only way to put an unpaired surrogate on the wire is its \u escape.
    return json.dumps(document).encode()


def _message(world: dict, **change: Any) -> dict:
    return {"user_id": str(world["user"].id), "title": "Shift", "body": "Starts soon", **change}


# --- malformed bodies -------------------------------------------------------------------------


def _nested(levels: int, inner: str = "1") -> bytes:
    return ("[" * levels + inner + "]" * levels).encode()


BODIES = [
    ("deep_arrays_100000", _nested(100_000), "parse_error"),
    ("deep_objects_100000", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "parse_error"),
    ("deep_arrays_900", _nested(900), "parse_error"),
    ("deep_arrays_past_the_limit", _nested(MAX_DEPTH + 1), "parse_error"),
    ("invalid_utf8", b'{"title": "\xff\xfe", "body": "b"}', "parse_error"),
    ("utf8_encoded_surrogate", b'{"title": "\xed\xa0\x80", "body": "b"}', "parse_error"),
    ("overlong_utf8", b'{"title": "\xc0\xaf", "body": "b"}', "parse_error"),
    ("truncated_utf8", b'{"title": "\xe2\x82', "parse_error"),
    ("byte_order_mark", b'\xef\xbb\xbf{"title": "t"}', "parse_error"),
    ("nan", b'{"title": "t", "body": "b", "ttl": NaN}', "parse_error"),
    ("infinity", b'{"title": "t", "body": "b", "ttl": -Infinity}', "parse_error"),
    ("integer_of_5000_digits", b'{"ttl": ' + b"9" * 5000 + b"}", "parse_error"),
    ("not_json", b"{title: 't'}", "parse_error"),
    ("data_nested_past_the_limit", b'{"data": {"k": ' + _nested(MAX_DEPTH) + b"}}", "parse_error"),
    ("ttl_1e999_is_infinite", b'{"title": "t", "body": "b", "ttl": 1e999}', "validation_error"),
    ("top_level_array", b'[{"title": "t"}]', "validation_error"),
    ("top_level_nul_string", b'"\\u0000"', "validation_error"),
    ("empty_body", b"", "validation_error"),
]


def test_malformed_json_body(world, refused):
    app = _caller(world, "app")
    for name, body, code in BODIES:
        refused(name, _post(app, "/push/send", body), status=400, code=code)


def test_malformed_json_body_on_every_parser_user(world, refused):
    """The same parser guards the token endpoints and the user endpoints, not only sends."""
    deep, bad = _nested(100_000), b'{"email": "\xff"}'
    staff = _bearer(user_tokens_issue(make_user(staff=True))["access"])
    for path, client, code in (
        ("/oauth/token", APIClient(), "invalid_request"),  # RFC 6749 section 5.2's format
        ("/auth/token", APIClient(), "parse_error"),
        ("/auth/token/refresh", APIClient(), "parse_error"),
        ("/push/devices/register", _caller(world, "user"), "parse_error"),
        ("/push/subscribe", _caller(world, "user"), "parse_error"),
        ("/api/apps", staff, "parse_error"),
    ):
        refused(f"deep:{path}", _post(client, path, deep), status=400, code=code)
        refused(f"utf8:{path}", _post(client, path, bad), status=400, code=code)
    patch = _caller(world, "admin")
    refused(
        "deep:PATCH /push/config",
        lambda: patch.generic(
            "PATCH", f"/push/config/{world['app'].app_id}", deep, content_type="application/json"
        ),
        status=400,
        code="parse_error",
    )


CONTENT_TYPES = [
    ("text_plain", "text/plain"),
    ("form_urlencoded", "application/x-www-form-urlencoded"),
    ("multipart", "multipart/form-data; boundary=x"),
    ("xml", "application/xml"),
    ("no_content_type", ""),
]


def test_wrong_content_type(world, refused):
    app, body = _caller(world, "app"), _json(_message(world))
    for name, content_type in CONTENT_TYPES:
        refused(name, _post(app, "/push/send", body, content_type), status=415)


def test_charset_label_is_ignored_because_json_is_utf8(world):
    """RFC 8259: JSON is UTF-8 and `charset` means nothing (DRF's parser 500ed on unknown ones)."""
    body = _json(_message(world, title="é", dry_run=True))
    for content_type in ("application/json; charset=x-unknown", "application/json; charset=utf-16"):
        response = _post(_caller(world, "app"), "/push/send", body, content_type)()
        assert response.status_code == 200, response.content


# --- what the fields hold ---------------------------------------------------------------------

NUL, SURROGATE, LOW_SURROGATE = "\u0000", "\ud800", "\udfff"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one glyph, 5 code points

SEND_FIELDS = [
    ("title_nul", {"title": f"a{NUL}b"}, "title"),
    ("body_nul", {"body": NUL}, "body"),
    ("title_lone_surrogate", {"title": f"x{SURROGATE}"}, "title"),
    ("body_lone_low_surrogate", {"body": LOW_SURROGATE}, "body"),
    ("data_value_nul", {"data": {"k": NUL}}, "data.k"),
    ("data_value_surrogate", {"data": {"k": SURROGATE}}, "data.k"),
    ("data_key_nul", {"data": {f"k{NUL}": "v"}}, "data"),
    ("data_key_surrogate", {"data": {SURROGATE: "v"}}, "data"),
    ("collapse_key_nul", {"collapse_key": NUL}, "collapse_key"),
    ("priority_surrogate", {"priority": SURROGATE}, "priority"),
    ("user_id_nul", {"user_id": NUL}, "user_id"),
    ("data_value_over_4kb", {"data": {"k": "x" * 4100}}, "data.k"),
    ("data_over_4kb_in_total", {"data": {"a": "x" * 3000, "b": "x" * 1100}}, "data"),
    ("data_over_4kb_in_multibyte", {"data": {"k": "€" * 1366}}, "data"),
    ("data_5000_keys", {"data": {f"k{i}": "" for i in range(5000)}}, "data"),
    # data values may be any JSON (issue 20): nested objects and numbers are accepted, but not
    # a NUL or an unpaired surrogate at any depth.
    ("data_nested_value_nul", {"data": {"a": {"b": [NUL]}}}, "data.a.b[0]"),
    ("data_nested_value_surrogate", {"data": {"a": [{"b": SURROGATE}]}}, "data.a[0].b"),
    ("data_not_an_object", {"data": "route=/x"}, "data"),
    ("title_257_emoji", {"title": "😀" * 257}, "title"),
    ("title_257_zero_width_spaces", {"title": "\u200b" * 257}, "title"),
    ("title_129_combining_pairs", {"title": "e\u0301" * 129}, "title"),
    ("title_52_zwj_families", {"title": FAMILY * 52}, "title"),
    ("body_4097_rtl_overrides", {"body": "\u202e" * 4097}, "body"),
    ("body_4097_emoji", {"body": "😀" * 4097}, "body"),
    ("ttl_huge", {"ttl": 2**70}, "ttl"),
    ("title_object", {"title": {"$gt": ""}}, "title"),
    ("title_list", {"title": ["a"]}, "title"),
]


def test_hostile_send_fields(world, refused):
    app = _caller(world, "app")
    for name, change, field in SEND_FIELDS:
        body = _json(_message(world, **change))
        refused(name, _post(app, "/push/send", body), status=400, field=field)


def test_hostile_items_are_named_by_index_in_bulk_and_batch(world, refused):
    app = _caller(world, "app")
    uid = str(world["user"].id)
    batch = [{"user_id": uid, "title": "t", "body": "b"} for _ in range(4)]
    batch[3]["title"] = NUL
    batch[1]["data"] = {SURROGATE: "x"}
    error = refused(
        "batch_items",
        _post(app, "/push/send/batch", _json({"notifications": batch})),
        status=400,
        field="notifications[3].title",
    )
    assert "notifications[1].data" in error["fields"]
    bulk = {"user_ids": [uid, uid + NUL], "title": "t", "body": "b"}
    refused("bulk_user_id", _post(app, "/push/send/bulk", _json(bulk)), field="user_ids[1]")


def test_hostile_idempotency_key(world, refused):
    app, body = _caller(world, "app"), _json(_message(world))
    # Header bytes reach Django decoded as latin-1, so UTF-8 "ключ" arrives as mojibake.
    for key in ["a\x00b", "line\nbreak", "tab\there", "ключ".encode().decode("latin-1"), "\x7f"]:
        request = _post(app, "/push/send", body, HTTP_IDEMPOTENCY_KEY=key)
        refused(f"idempotency_key:{key!r}", request, status=400, field="Idempotency-Key")


ACCEPTED_UNICODE = [
    {"title": "😀" * 256},
    {"title": "\u200b" * 256},
    {"title": "e\u0301" * 128},
    {"title": FAMILY * 51},
    {"title": "\u202e\u05e9\u05dc\u05d5\u05dd", "body": "\u0645\u0631\u062d\u0628\u0627"},
    {"body": "😀" * 4096},
    {"data": {"k": "€" * 1362}},  # {"k":"…"} is 4094 bytes of UTF-8
]


def test_limits_count_code_points_and_text_is_stored_as_sent(world):
    """256/4096 count code points everywhere (DRF, forms, PostgreSQL varchar); data counts bytes.

    To a user without a device: these are the field limits; a device's provider may take less.
    """
    app = _caller(world, "app")
    for change in ACCEPTED_UNICODE:
        body = {**_message(world, **change), "user_id": str(world["deviceless"].id)}
        response = _post(app, "/push/send", _json(body))()
        assert response.status_code == 202, response.content
        notification = Notification.objects.get(pk=response.json()["notification_id"])
        for name, value in change.items():
            assert getattr(notification, name) == value


# --- device tokens and Web Push subscriptions ---------------------------------------------------


def _point(x: int, y: int) -> str:
    return b64url(b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big"))


def _keys(**change: Any):
    def mutate(subscription: dict) -> None:
        subscription["keys"].update(change)

    return mutate


def _set(**change: Any):
    return lambda subscription: subscription.update(change)


SUBSCRIPTIONS = [
    ("p256dh_not_on_the_curve", _keys(p256dh=_point(1, 1)), "keys.p256dh"),
    ("p256dh_all_zero", _keys(p256dh=_point(0, 0)), "keys.p256dh"),
    ("p256dh_compressed_33_bytes", _keys(p256dh=b64url(b"\x02" + b"\x11" * 32)), "keys.p256dh"),
    ("p256dh_64_bytes", _keys(p256dh=b64url(b"\x11" * 64)), "keys.p256dh"),
    ("p256dh_not_base64url", _keys(p256dh="!!!!not*base64"), "keys.p256dh"),
    ("p256dh_with_spaces", _keys(p256dh="BCde fGhi jKlm"), "keys.p256dh"),
    ("p256dh_empty", _keys(p256dh=""), "keys.p256dh"),
    ("auth_15_bytes", _keys(auth=b64url(b"a" * 15)), "keys.auth"),
    ("auth_17_bytes", _keys(auth=b64url(b"a" * 17)), "keys.auth"),
    ("auth_not_base64url", _keys(auth="%%%%%%%%%%%%%%%%%%%%%%"), "keys.auth"),
    ("endpoint_http", _set(endpoint="http://push.example.net/x"), "endpoint"),
    ("endpoint_file", _set(endpoint="file:///etc/passwd"), "endpoint"),
    ("endpoint_gopher", _set(endpoint="gopher://push.example.net:70/_x"), "endpoint"),
    ("endpoint_loopback", _set(endpoint="https://127.0.0.1/push"), "endpoint"),
    ("endpoint_loopback_decimal", _set(endpoint="https://2130706433/push"), "endpoint"),
    ("endpoint_loopback_v6", _set(endpoint="https://[::1]/push"), "endpoint"),
    ("endpoint_metadata", _set(endpoint="https://169.254.169.254/latest"), "endpoint"),
    ("endpoint_private", _set(endpoint="https://10.0.0.1/push"), "endpoint"),
    ("endpoint_localhost", _set(endpoint="https://localhost/push"), "endpoint"),
    ("endpoint_credentials", _set(endpoint="https://u:p@push.example.net/x"), "endpoint"),
    ("endpoint_3000_chars", _set(endpoint="https://push.example.net/" + "a" * 3000), "endpoint"),
    ("endpoint_control_character", _set(endpoint="https://push.example.net/\x01"), "endpoint"),
    ("endpoint_nul", _set(endpoint=f"https://push.example.net/{NUL}"), "endpoint"),
    ("endpoint_surrogate", _set(endpoint=f"https://push.{SURROGATE}.net/"), "endpoint"),
]


def test_malformed_subscription(world, refused):
    register_body = {"app_id": str(world["app"].app_id), "platform": "web"}
    user = _caller(world, "user")
    for name, mutate, field in SUBSCRIPTIONS:
        _refuse_subscription(refused, user, register_body, name, mutate, field)


def _refuse_subscription(refused, user, register_body, name, mutate, field):
    subscription = browser_subscription()
    mutate(subscription)
    refused(
        f"register:{name}",
        _post(user, "/push/devices/register", _json({**register_body, "push_token": subscription})),
        status=400,
        field=f"push_token.{field}",
    )
    refused(
        f"register_as_json_string:{name}",
        _post(
            user,
            "/push/devices/register",
            _json({**register_body, "push_token": json.dumps(subscription)}),
        ),
        status=400,
        field=f"push_token.{field}",
    )
    refused(
        f"subscribe:{name}",
        _post(user, "/push/subscribe", _json(subscription)),
        status=400,
        field=field,
    )


PUSH_TOKENS = [
    ("empty", ""),
    ("whitespace", "   "),
    ("tabs_and_newlines", "\t\n\r"),
    ("too_long", "x" * 4097),
    ("control_characters", "fcm-token-\x01\x02-" + "x" * 30),
    ("inner_spaces", "fcm token with spaces " + "x" * 30),
    ("nul", "fcm-token-" + NUL + "x" * 30),
    ("surrogate", "fcm-token-" + SURROGATE + "x" * 30),
    ("number", 12345678901234567890),
    ("boolean", True),
    ("null", None),
    ("list", ["fcm-token-" + "x" * 30]),
    ("float", 1.5),
    ("subscription_on_android", browser_subscription()),
]


def test_hostile_push_token(world, refused):
    user = _caller(world, "user")
    for name, token in PUSH_TOKENS:
        body = {"app_id": str(world["app"].app_id), "platform": "android", "push_token": token}
        request = _post(user, "/push/devices/register", _json(body))
        refused(name, request, status=400, field="push_token")


BEARERS = [
    ("no_token", "Bearer"),
    ("empty_token", "Bearer "),
    ("whitespace_token", "Bearer      "),
    ("three_parts", "Bearer a b"),
    ("control_characters", "Bearer a\x01b.c\x7f.d"),
    # What UTF-8 bytes in a header become: WSGI decodes header bytes as latin-1.
    ("non_ascii", "Bearer " + "jéton.ñ.☃".encode().decode("latin-1")),
    ("100kb_token", "Bearer " + "a" * 100_000),
    ("garbage_jwt", "Bearer eyJ.eyJ.sig"),
    ("basic_scheme", "Basic Zm9vOmJhcg=="),
]


def test_hostile_bearer_token(world, refused):
    device = world["device"].id
    body = _json(_message(world))
    for name, header in BEARERS:
        for label, method, path in (
            ("client", "POST", "/push/send"),
            ("user", "POST", "/push/devices/register"),
            ("any", "DELETE", f"/push/devices/{device}"),
        ):

            def request(method=method, path=path, header=header):
                return APIClient().generic(
                    method, path, body, content_type="application/json", HTTP_AUTHORIZATION=header
                )

            refused(f"{label}:{name}", request, status=401)


# --- forged and replayed tokens of the kinds tests/accounts/test_user_tokens.py leaves out -----


def _claims(sub: str, kind: str, token_type: str = "access", **change: Any) -> dict:
    now = int(time.time())
    claims = {
        "token_type": token_type,
        "exp": now + 300,
        "iat": now,
        "jti": os.urandom(16).hex(),
        "sub": sub,
        "kind": kind,
        "iss": django_settings.SIMPLE_JWT["ISSUER"],
        "scope": "push:send",
    }
    claims.update(change)
    return {k: v for k, v in claims.items() if v is not None}


@functools.cache
def _rsa_pem() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _tampered(token: str, **change: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(change)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _forge(how: str, sub: str, kind: str, genuine: str, token_type: str = "access") -> str:
    """A token of `kind` forged `how`; `genuine` is a real one of the same kind to tamper with."""
    key = django_settings.SIMPLE_JWT["SIGNING_KEY"]
    claims = _claims(sub, kind, token_type)
    if how == "alg_none":
        return jwt.encode(claims, None, algorithm="none")
    if how == "rs256_own_key":
        return jwt.encode(claims, _rsa_pem(), algorithm="RS256")
    if how == "hs512_right_secret":
        return jwt.encode(claims, key, algorithm="HS512")
    if how == "wrong_secret":
        return jwt.encode(claims, "not-the-key-" * 4, algorithm="HS256")
    if how == "expired":
        return jwt.encode({**claims, "exp": int(time.time()) - 1}, key, algorithm="HS256")
    if how == "wrong_issuer":
        return jwt.encode({**claims, "iss": "someone-else"}, key, algorithm="HS256")
    if how == "no_issuer":
        del claims["iss"]
        return jwt.encode(claims, key, algorithm="HS256")
    if how == "tampered_payload":
        return _tampered(genuine, scope="push:send admin", exp=int(time.time()) + 10**6)
    raise AssertionError(how)


FORGERIES = [
    "alg_none",
    "rs256_own_key",
    "hs512_right_secret",
    "wrong_secret",
    "expired",
    "wrong_issuer",
    "no_issuer",
    "tampered_payload",
]


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 forgery
def test_forged_tokens_of_every_kind(world, refused):
    for how in FORGERIES:
        _refuse_forgery(world, refused, how)


def _refuse_forgery(world, refused, how):
    app, user = world["app"], world["user"]
    client_token = _forge(
        how, app.client_id, "client", client_token_issue(app, ["push:send"])["access_token"]
    )
    user_token = _forge(how, str(user.id), "user", user_tokens_issue(user)["access"])
    refresh = _forge(how, str(user.id), "user", user_tokens_issue(user)["refresh"], "refresh")
    body = _json(_message(world))
    send = _bearer(client_token)
    refused(f"client:{how}", _post(send, "/push/send", body), status=401)
    removal = _bearer(client_token)
    refused(
        f"any_as_client:{how}",
        lambda: removal.delete(f"/push/devices/{world['device'].id}"),
        status=401,
    )
    owner = _bearer(user_token)
    refused(
        f"any_as_user:{how}",
        lambda: owner.delete(f"/push/devices/{world['device'].id}"),
        status=401,
    )
    cookie = APIClient(enforce_csrf_checks=True)
    cookie.cookies["access_token"] = user_token
    cookie.cookies["csrftoken"] = "a" * 32
    subscription = _json(browser_subscription())
    refused(
        f"cookie:{how}",
        _post(cookie, "/push/subscribe", subscription, HTTP_X_CSRFTOKEN="a" * 32),
        status=401,
    )
    refresh_body = _json({"refresh": refresh})
    refused(
        f"refresh_endpoint:{how}",
        _post(APIClient(), "/auth/token/refresh", refresh_body),
        status=401,
    )


def test_replayed_tokens_of_the_wrong_kind(world, refused):
    """A refresh token as access, an access token as refresh, a person's token as an app's."""
    app, user = world["app"], world["user"]
    tokens = user_tokens_issue(user)
    body = _json(_message(world))
    device = world["device"].id
    cases = [
        ("refresh_as_client", "POST", "/push/send", tokens["refresh"]),
        ("refresh_on_device_removal", "DELETE", f"/push/devices/{device}", tokens["refresh"]),
        ("user_access_as_client", "POST", "/push/send", tokens["access"]),
        (
            "client_as_user",
            "POST",
            "/push/devices/register",
            client_token_issue(app, ["push:send"])["access_token"],
        ),
    ]
    for name, method, path, token in cases:
        client = _bearer(token)
        refused(
            name,
            lambda c=client, m=method, p=path: c.generic(
                m, p, body, content_type="application/json"
            ),
            status=401,
        )
    refused(
        "access_as_refresh",
        _post(APIClient(), "/auth/token/refresh", _json({"refresh": tokens["access"]})),
        status=401,
    )
    cookie = APIClient(enforce_csrf_checks=True)
    cookie.cookies["access_token"] = tokens["refresh"]
    cookie.cookies["csrftoken"] = "a" * 32
    refused(
        "refresh_in_cookie",
        _post(cookie, "/push/subscribe", _json(browser_subscription()), HTTP_X_CSRFTOKEN="a" * 32),
        status=401,
    )


# --- what people type into the sign-in throttles and the Console's forms -------------------------

LONG_EMAIL = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".example"  # 256 characters, valid


def test_guess_throttle_takes_subjects_of_any_shape(world, refused):
    """The failed-attempt counter is keyed by a hash: a 256-character email or a client_id with
    a NUL used to overflow PostgreSQL's 200-character key column (a 500)."""
    wrong = {"email": LONG_EMAIL, "password": "wrong"}
    refused(
        "user_token_long_email",
        _post(APIClient(), "/auth/token", _json(wrong)),
        status=401,
        counters_may_grow=True,
    )
    for name, form in (
        ("client_id_500_chars", {"client_id": "a" * 500}),
        ("client_id_nul", {"client_id": "a\x00b"}),
    ):
        body = {"grant_type": "client_credentials", "client_secret": "x", **form}
        refused(
            f"oauth_{name}",
            lambda body=body: Client().post("/oauth/token", urlencode(body), content_type=FORM),
            status=401,
            code="invalid_client",
            counters_may_grow=True,
        )
    basic = base64.b64encode(("c" * 300 + ":secret").encode()).decode()
    refused(
        "oauth_basic_300_chars",
        lambda: Client().post(
            "/oauth/token",
            "grant_type=client_credentials",
            content_type=FORM,
            HTTP_AUTHORIZATION=f"Basic {basic}",
        ),
        status=401,
        code="invalid_client",
        counters_may_grow=True,
    )
    page = Client().post("/login", {"username": LONG_EMAIL, "password": "wrong"})
    assert page.status_code == 200 and "correct email" in page.content.decode().lower()


def test_console_forms_refuse_what_the_database_cannot_hold(world, refused):
    app, member = world["app"], world["user"]
    browser = Client()
    browser.force_login(world["admin"])
    tab = f"/console/apps/{app.app_id}/notifications/"
    settings_tab = f"/console/apps/{app.app_id}/settings/"
    good = {"email": member.email, "title": "Test", "body": "Hello"}
    for name, change, text in (
        ("title_nul", {"title": "a\x00b"}, "Null characters are not allowed"),
        ("body_nul", {"body": "\x00"}, "Null characters are not allowed"),
        ("email_nul", {"email": member.email + "\x00"}, "Null characters are not allowed"),
        ("title_257_emoji", {"title": "😀" * 257}, "at most 256 characters"),
        ("body_4097_combining", {"body": "\u0301" * 4097}, "at most 4096 characters"),
    ):
        form = {**good, **change}
        refused(
            f"test_send_{name}",
            lambda form=form: browser.post(tab + "test", form),
            status=400,
            page_text=text,
            then_get=browser.get,
        )
    for name, form, text in (
        ("webhook_url_nul", {"webhook_url": "https://a.example/\x00", "daily_quota": "5"}, "Null"),
        ("quota_nul", {"webhook_url": "", "daily_quota": "5\x00"}, "whole number"),
    ):
        refused(
            f"settings_{name}",
            lambda form=form: browser.post(settings_tab + "save", form),
            status=400,
            page_text=text,
            then_get=browser.get,
        )
    # A form body is bytes: an encoded surrogate or invalid UTF-8 arrives as U+FFFD, never as a
    # surrogate, and the same code-point limit applies (256 emoji fit, as in the API).
    raw = f"email={member.email}&title=%ED%A0%80%FF&body=".encode() + "😀".encode() * 1
    sent = browser.generic("POST", tab + "test", raw, content_type=FORM)
    assert sent.status_code == 302, sent.content[:300]
    assert Notification.objects.get().title == "\ufffd" * 4
    assert browser.post(tab + "test", {**good, "title": "😀" * 256}).status_code == 302


# --- cookies without CSRF -----------------------------------------------------------------------


def test_cookie_is_accepted_only_by_subscribe_and_only_with_csrf(world, refused):
    user = world["user"]
    cookie = APIClient(enforce_csrf_checks=True)
    cookie.cookies["access_token"] = user_access_token_issue(user)
    subscription = _json(browser_subscription())
    refused("subscribe_without_csrf", _post(cookie, "/push/subscribe", subscription), status=403)
    cookie.cookies["csrftoken"] = "a" * 32
    refused(
        "subscribe_with_mismatched_csrf",
        _post(cookie, "/push/subscribe", subscription, HTTP_X_CSRFTOKEN="b" * 32),
        status=403,
    )
    register_body = {"app_id": str(world["app"].app_id), "platform": "android"}
    register_body["push_token"] = "fcm-token-cookie-" + "x" * 30
    for name, method, path, body in (
        ("register_by_cookie", "POST", "/push/devices/register", _json(register_body)),
        ("remove_by_cookie", "DELETE", f"/push/devices/{world['device'].id}", b""),
        ("account_devices_by_cookie", "GET", "/account/devices", b""),
    ):
        refused(
            name,
            lambda m=method, p=path, b=body: cookie.generic(
                m, p, b, content_type="application/json", HTTP_X_CSRFTOKEN="a" * 32
            ),
            status=401,
        )


def test_console_posts_without_csrf_are_refused(world, refused):
    """Every state-changing Console and Account page refuses a session-cookie POST without the
    CSRF token (a cross-site form), before it changes anything."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(world["admin"])
    tab = f"/console/apps/{world['app'].app_id}/"
    device, user = world["device"].id, world["user"]
    for suffix, form in (
        ("rename", {"name": "Renamed"}),
        ("client-secret/rotate", {}),
        ("settings/enabled", {"enabled": "off"}),
        ("settings/save", {"webhook_url": "https://hooks.example.com/x", "daily_quota": "1"}),
        ("settings/webhook-secret/reveal", {}),
        ("settings/webhook-secret/rotate", {}),
        ("settings/fcm", {}),
        ("notifications/test", {"email": user.email, "title": "t", "body": "b"}),
        (f"devices/{device}/remove", {}),
        ("receipts/1/redeliver", {}),
        ("users/enroll", {"emails": "someone@example.com"}),
        (f"users/{user.id}/unenroll", {}),
        ("users/admins/add", {"email": user.email}),
        (f"users/admins/{world['admin'].id}/remove", {}),
    ):
        refused(
            f"console:{suffix}",
            lambda suffix=suffix, form=form: browser.post(tab + suffix, form),
            status=403,
            page_text="CSRF",
        )
    owner = Client(enforce_csrf_checks=True)
    owner.force_login(world["user"])
    refused(
        "account:revoke",
        lambda: owner.post(f"/account/revoke/{device}"),
        status=403,
        page_text="CSRF",
    )
    refused(
        "account:password",
        lambda: owner.post("/account/password", {"old_password": "x"}),
        status=403,
        page_text="CSRF",
    )
    assert PushConfig.objects.get(app=world["app"]).enabled


# --- SSRF through the config API ------------------------------------------------------------------


def _ssrf_urls(ports: dict[str, int]) -> list[tuple[str, str]]:
    v4, v4b = ports["127.0.0.1"], ports["127.0.0.2"]
    v6 = ports.get("::1", v4)
    return [
        ("loopback", f"https://127.0.0.1:{v4}/hook"),
        ("loopback_other", f"https://127.0.0.2:{v4b}/hook"),
        ("unspecified", f"https://0.0.0.0:{v4}/hook"),
        ("loopback_v6", f"https://[::1]:{v6}/hook"),
        ("v4_mapped_loopback", f"https://[::ffff:127.0.0.1]:{v4}/hook"),
        ("metadata", "https://169.254.169.254/latest/meta-data/"),
        ("carrier_grade_nat", "https://100.64.0.1/hook"),
        ("unique_local_v6", "https://[fd00::1]/hook"),
        ("nat64_loopback", "https://[64:ff9b::7f00:1]/hook"),
        ("decimal_loopback", f"https://2130706433:{v4}/hook"),
        ("octal_loopback", f"https://0177.0.0.1:{v4}/hook"),
        ("hex_loopback", f"https://0x7f.1:{v4}/hook"),
        ("short_loopback", f"https://127.1:{v4}/hook"),
        ("localhost", f"https://localhost:{v4}/hook"),
        ("localhost_subdomain", f"https://api.localhost:{v4}/hook"),
        ("name_resolving_to_loopback", f"https://hooks.attacker.example:{v4}/hook"),
        ("file_scheme", "file:///etc/passwd"),
        ("gopher_scheme", f"gopher://127.0.0.1:{v4}/_POST%20/"),
        ("plain_http", f"http://127.0.0.1:{v4}/hook"),
        ("credentials", "https://user:secret@hooks.example.com/"),
        ("nul", f"https://hooks.example.com/{NUL}"),
        ("surrogate", f"https://hooks.example.com/{SURROGATE}"),
    ]


@pytest.fixture
def attacker_dns(monkeypatch):
    """The one seam: a name that resolves to loopback, as an attacker's DNS would answer."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "hooks.attacker.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(outbound.socket, "getaddrinfo", getaddrinfo)


def test_ssrf_webhook_urls_through_the_config_api(world, refused, listener, attacker_dns):
    app = world["app"]
    admin = _caller(world, "admin")
    before = PushConfig.objects.get(app=app).webhook_url
    for name, url in _ssrf_urls(listener.ports):
        body = _json({"webhook_url": url})
        refused(
            name,
            lambda body=body: admin.generic(
                "PATCH", f"/push/config/{app.app_id}", body, content_type="application/json"
            ),
            status=400,
            field="webhook_url",
        )
    assert PushConfig.objects.get(app=app).webhook_url == before


def test_ssrf_webhook_urls_through_the_console_form(world, refused, listener, attacker_dns):
    app = world["app"]
    browser = Client()
    browser.force_login(world["admin"])
    path = f"/console/apps/{app.app_id}/settings/save"
    before = PushConfig.objects.get(app=app).webhook_url
    for name, url in _ssrf_urls(listener.ports):
        if SURROGATE in url:
            continue  # a form body is bytes: a surrogate cannot be sent (it arrives as U+FFFD)
        refused(
            name,
            lambda url=url: browser.post(path, {"webhook_url": url, "daily_quota": "100"}),
            status=400,
            page_text="Null characters" if NUL in url else "Not allowed",
            then_get=browser.get,
        )
    assert PushConfig.objects.get(app=app).webhook_url == before


@pytest.mark.parametrize(
    "target", ["counting_listener", "metadata"], ids=["to_loopback", "to_metadata"]
)
def test_webhook_redirect_to_an_internal_address_is_not_followed(
    providers, fake_webhook, listener, settings, target
):
    app = make_app()[0]
    admin, user = _bearer(user_tokens_issue(make_admin(app))["access"]), make_user()
    enroll(app, user)
    # The target is allowlisted too, so only "redirects are never followed" keeps it unreached.
    settings.OUTBOUND_ALLOWED_HOSTS = "127.0.0.1,127.0.0.2,169.254.169.254"
    url = f"{fake_webhook.url}/hooks/receipts"
    config = {"enabled": True, "webhook_url": url}
    assert admin.patch(f"/push/config/{app.app_id}", config, format="json").status_code == 200
    location = (
        f"http://127.0.0.2:{listener.ports['127.0.0.2']}/steal"
        if target == "counting_listener"
        else "http://169.254.169.254/latest/meta-data/"
    )
    fake_webhook.set_mode("redirect", location=location)
    register(user, app)
    send = _bearer(client_token_issue(app, ["push:send"])["access_token"])
    connections = listener.connections
    body = {"user_id": str(user.id), "title": "t", "body": "b"}
    assert send.post("/push/send", body, format="json").status_code == 202
    drain()
    [hit] = fake_webhook.received()
    assert hit.status == 302
    receipt = Receipt.objects.get()
    assert receipt.last_status_code == 302 and receipt.status == "pending"
    if target == "counting_listener":
        reached = listener.connections - connections
        figures_record("hostile", "webhook_redirect", {"redirects": 1, "connections": reached})
    assert listener.connections == connections


# --- oversized bodies ---------------------------------------------------------------------------


def test_oversize_body_is_413_before_the_parser_runs(world, refused, settings, monkeypatch):
    calls = []
    parse = StrictJSONParser.parse
    monkeypatch.setattr(
        StrictJSONParser, "parse", lambda *a, **k: calls.append(1) or parse(*a, **k)
    )
    settings.REQUEST_MAX_BYTES = 1000
    app, body = _caller(world, "app"), _json(_message(world, body="x" * 2000))
    error = refused("content_length_past_the_limit", _post(app, "/push/send", body), status=413)
    assert error["code"] == "payload_too_large"
    refused(
        "content_length_not_a_number",
        _post(app, "/push/send", b"{}", CONTENT_LENGTH="12abc"),
        status=400,
    )
    refused(
        "chunked_without_length",
        _post(app, "/push/send", b"", CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"),
        status=411,
    )
    assert calls == []
    # The same request within the limit is parsed: the spy is wired where it matters.
    settings.REQUEST_MAX_BYTES = 1_000_000
    assert _post(app, "/push/send", _json(_message(world, dry_run=True)))().status_code == 200
    assert calls == [1]


def test_the_largest_valid_request_fits_under_the_default_limit(world):
    """A batch of 500 notifications at every field limit, with 4-byte characters, is accepted
    (by a user without a device: no provider takes messages this large)."""
    item = {
        "user_id": str(world["deviceless"].id),
        "title": "😀" * 256,
        "body": "😀" * 4096,
        "data": {"k": "😀" * 1022},
        "ttl": 2_419_200,
        "priority": "normal",
        "collapse_key": "c" * 100,
        "urgency": "very-low",
    }
    body = json.dumps({"notifications": [item] * 500, "dry_run": True}, ensure_ascii=False)
    raw = body.encode()
    assert 10 * MB < len(raw) < django_settings.REQUEST_MAX_BYTES
    response = _post(_caller(world, "app"), "/push/send/batch", raw)()
    assert response.status_code == 200, response.content[:500]


def _head(path: str, *lines: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


def test_oversize_bodies_over_real_http_are_refused_unread(tmp_path, tally):
    """Through gunicorn: the answer comes while most of a 20 MB body is still unsent."""
    body = b"[" * (20 * MB)
    cases = [
        (
            "content_length_20mb",
            _head("/push/send", "Content-Type: application/json", f"Content-Length: {len(body)}"),
            False,
            413,
        ),
        (
            "chunked_20mb",
            _head("/push/send", "Content-Type: application/json", "Transfer-Encoding: chunked"),
            True,
            411,
        ),
        # Declares 100 bytes and sends 20 MB: only the 100 are read (Django's LimitedStream),
        # parsed and refused; /oauth/token parses before any authentication or query.
        (
            "lying_content_length",
            _head("/oauth/token", "Content-Type: application/json", "Content-Length: 100"),
            False,
            400,
        ),
    ]
    with gunicorn_serve(tmp_path) as address:
        for name, head, chunked, status in cases:
            answer = post_streaming(address, head, body, chunked=chunked)
            tally.append(
                {
                    "class": "oversize_over_http",
                    "case": name,
                    "status": answer.status,
                    "connections": 0,
                    "rows": 0,
                }
            )
            assert answer.status == status, (name, answer.body)
            assert b'"error"' in answer.body
            assert answer.sent_before_answer < answer.total // 2, (name, answer)
