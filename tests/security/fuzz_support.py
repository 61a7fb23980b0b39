"""What the schemathesis fuzz run stands on: a real world in the database, tokens of each kind,
and the schemathesis configuration that points generated ids at real objects.

The fuzzer draws path parameters and body ids from the world's objects (an app with push
enabled, enrolled users, registered devices, a sent notification) part of the time, and random
values the rest, so both "the object exists" and "it does not" are explored.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from django.core.wsgi import get_wsgi_application
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts.models import App, User
from accounts.tokens import SCOPE_PUSH_SEND, client_token_issue, user_tokens_issue
from push.services.notifications import NotificationDraft, notifications_send
from tests.factories import (
    PASSWORD,
    enable_push,
    enroll,
    fcm_token,
    make_admin,
    make_app,
    make_user,
    register,
)
from tests.push.subscriptions import browser_subscription

DEFAULT_SEED = 20_260_317
# Random cases per operation and caller; the deterministic coverage cases come on top (for the
# caller that can succeed at the operation). 10 keeps the fuzz tests' share of `make test` small.
DEFAULT_MAX_EXAMPLES = 10

# The kinds of caller, and which of them each OpenAPI security scheme accepts.
ANONYMOUS = "anonymous"
USER = "user_jwt"
ADMIN = "admin_jwt"
STAFF = "staff_jwt"
USER_COOKIE = "user_cookie"
CLIENT_SEND = "client_push_send"
CLIENT_NO_SCOPE = "client_no_scope"
KINDS_BY_SCHEME = {
    "userJWT": (USER, ADMIN, STAFF),
    "accessTokenCookie": (USER_COOKIE,),
    "clientJWT": (CLIENT_SEND, CLIENT_NO_SCOPE),
    "userOrClientJWT": (USER, ADMIN, STAFF, CLIENT_SEND, CLIENT_NO_SCOPE),
}


def fuzz_seed() -> int:
    return int(os.environ.get("FUZZ_SEED") or DEFAULT_SEED)


def fuzz_max_examples() -> int:
    return int(os.environ.get("FUZZ_MAX_EXAMPLES") or DEFAULT_MAX_EXAMPLES)


def credential_kinds(security: list[dict[str, list[str]]] | None) -> list[str]:
    """The kinds of caller an operation's `security` accepts (anonymous when it has none)."""
    if not security:
        return [ANONYMOUS]
    kinds: list[str] = []
    for requirement in security:
        for scheme in requirement:
            kinds += [kind for kind in KINDS_BY_SCHEME[scheme] if kind not in kinds]
    return kinds


# The caller that can succeed at each operation: the enrolled user registers and removes devices,
# staff administer apps (new ones too), the app's backend sends.
_USER_OPERATIONS = {
    "POST /push/devices/register",
    "POST /push/subscribe",
    "GET /account/devices",
    "DELETE /push/devices/{id}",
}


def rightful_kind(label: str, security: list[dict[str, list[str]]] | None) -> str:
    """The kind of caller that can succeed at `label` (the one link-following scenarios use)."""
    kinds = credential_kinds(security)
    if ANONYMOUS in kinds:
        return ANONYMOUS
    if label in _USER_OPERATIONS:
        return USER
    return STAFF if STAFF in kinds else CLIENT_SEND


@dataclass
class Credential:
    """How one kind of caller authenticates: a header, or the cookie and its CSRF pair."""

    kind: str
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class FuzzWorld:
    """The objects the fuzzer's ids point at, and a token of every kind."""

    app: App
    other_app: App
    user: User
    other_user: User
    admin: User
    staff: User
    device_ids: list[str]
    other_device_id: str
    notification_id: str
    credentials: dict[str, Credential]

    def dictionaries(self) -> dict[str, dict[str, list[Any]]]:
        apps = [str(self.app.app_id), str(self.other_app.app_id)]
        users = [str(u.id) for u in (self.user, self.other_user, self.admin)]
        return {
            "app_ids": {"values": apps},
            "user_ids": {"values": users},
            "emails": {"values": [self.user.email, self.other_user.email, self.admin.email]},
            "app_and_device_ids": {"values": [*apps, *self.device_ids, self.other_device_id]},
            "notification_ids": {"values": [self.notification_id]},
            "passwords": {"values": [PASSWORD]},
            "refresh_tokens": {"values": [user_tokens_issue(self.user)["refresh"]]},
            "client_ids": {"values": [self.app.client_id]},
            "push_tokens": {
                "values": [fcm_token("fuzz"), json.dumps(browser_subscription())],
            },
        }


def _bearer(kind: str, token: str) -> Credential:
    return Credential(kind, headers={"Authorization": f"Bearer {token}"})


def world_build() -> FuzzWorld:
    """Create an app with push on, its admin, two enrolled users with devices, a notification."""
    staff = make_user(staff=True)
    app = make_app()[0]
    enable_push(app, daily_quota=2_000_000_000)
    admin = make_admin(app)
    user, other_user = make_user(), make_user()
    enroll(app, user, other_user)
    devices = [
        register(user, app),
        register(user, app, browser_subscription(), platform="web"),
        register(other_user, app, platform="ios"),
    ]
    other_app = make_app()[0]
    enable_push(other_app)
    enroll(other_app, user)
    other_device = register(user, other_app)
    draft = NotificationDraft(
        user_id=user.id,
        title="Fuzz",
        body="A notification the fuzzer can look up.",
        data={},
        ttl=3600,
        priority="normal",
        collapse_key="",
        urgency="",
    )
    (notification_id,), _ = notifications_send(app=app, drafts=[draft])
    csrf = secrets.token_hex(16)
    cookie_token = user_tokens_issue(user)["access"]
    credentials = {
        ANONYMOUS: Credential(ANONYMOUS),
        USER: _bearer(USER, user_tokens_issue(user)["access"]),
        ADMIN: _bearer(ADMIN, user_tokens_issue(admin)["access"]),
        STAFF: _bearer(STAFF, user_tokens_issue(staff)["access"]),
        USER_COOKIE: Credential(
            USER_COOKIE,
            headers={"X-CSRFToken": csrf},
            cookies={"access_token": cookie_token, "csrftoken": csrf},
        ),
        CLIENT_SEND: _bearer(
            CLIENT_SEND, client_token_issue(app, [SCOPE_PUSH_SEND])["access_token"]
        ),
        CLIENT_NO_SCOPE: _bearer(CLIENT_NO_SCOPE, client_token_issue(app, [])["access_token"]),
    }
    return FuzzWorld(
        app=app,
        other_app=other_app,
        user=user,
        other_user=other_user,
        admin=admin,
        staff=staff,
        device_ids=[str(d.id) for d in devices],
        other_device_id=str(other_device.id),
        notification_id=str(notification_id),
        credentials=credentials,
    )


# Refusals of schema-valid data that no JSON Schema can state, each said in the schema's
# description of its field: (the error's field, or its last part; the start of its message).
# A field ending in `.*` stands for any key of that object.
BEYOND_SCHEMA = (
    ("p256dh", "not a point on the P-256 curve"),
    ("data", "Must be at most 4096 bytes serialized"),
    # Too large for a provider the recipients use (payload_too_large): each send's 400 says so.
    ("title", "The notification is"),
    ("body", "The notification is"),
    ("data", "The notification is"),
    # A time relative to now: the field's description says 30 days.
    ("send_at", "Must be at most 30 days ahead"),
    # FCM's reserved keys of `data` include the prefixes google.* and gcm.*: a rule on property
    # names, which OpenAPI 3.0 has no keyword for (no propertyNames, no patternProperties).
    ("data.*", "Reserved by FCM"),
)


_ITEM_INDEX = re.compile(r"\[\d+\]$")  # `allowed_origins[3]`: an item of the field


def _names(name: str, field: str) -> bool:
    if field.endswith(".*"):
        return name.startswith(field[:-1]) or f".{field[:-1]}" in name
    return _ITEM_INDEX.sub("", name.rsplit(".", 1)[-1]) == field


def _beyond_schema(response: Any) -> bool:
    try:
        fields = response.json()["error"]["fields"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(fields) and all(
        any(
            _names(name, field) and all(m.startswith(start) for m in messages)
            for field, start in BEYOND_SCHEMA
        )
        for name, messages in fields.items()
    )


def _idempotency_key_reused(response: Any) -> bool:
    # An earlier request of the run used the same Idempotency-Key with another body: a refusal
    # by state (as a 409 is), not by the request's shape.
    try:
        return response.json()["error"]["code"] == "idempotency_key_reused"
    except (ValueError, KeyError, TypeError):
        return False


@schemathesis.check
def schema_valid_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' positive_data_acceptance, but for the refusals in BEYOND_SCHEMA and a
    reused Idempotency-Key."""
    if response.status_code == 400 and _beyond_schema(response):
        return None
    if response.status_code == 422 and _idempotency_key_reused(response):
        return None
    return positive_data_acceptance(ctx, response, case)


def _binding(dictionary: str, probability: float = 0.75) -> dict[str, Any]:
    return {"dictionary": dictionary, "probability": probability}


def schemathesis_config(
    world: FuzzWorld, *, seed: int, max_examples: int, coverage: bool = True
) -> schemathesis.Config:
    """Every check on, positive and negative data, ids drawn from the world part of the time.

    `coverage` adds schemathesis' deterministic boundary and negative cases (each bound, each
    missing field, each wrong type) before the random ones.
    """
    checks = (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
        # Valid-per-schema data must not be refused as invalid (400, 413, 415, 422): the schema
        # says exactly what validation does (BEYOND_SCHEMA lists what no schema can say).
        "schema_valid_data_accepted",
        "missing_required_header",
        "ignored_auth",
        # Link-following scenarios: a removed device stays gone, a created app is there.
        "use_after_free",
        "ensure_resource_availability",
    )
    return schemathesis.Config.from_dict(
        {
            "seed": seed,
            "dictionaries": world.dictionaries(),
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {
                "mode": "all",
                # NUL is refused anywhere in a body, keys included (StrictJSONParser; the
                # hostile-input tests prove it): OpenAPI 3.0 cannot say so for property names.
                "allow-x00": False,
                "max-examples": max_examples,
                # The credential of the kind under test is set explicitly, never generated.
                "with-security-parameters": False,
                "database": "none",
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in checks}},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": coverage},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True},
            },
            "parameters": {
                "path.app_id": _binding("app_ids"),
                "path.user_id": _binding("user_ids"),
                "path.notification_id": _binding("notification_ids"),
                # /push/devices/{id}: an app_id for GET (list), a device_id for DELETE.
                "path.id": _binding("app_and_device_ids"),
                "query.user_id": _binding("user_ids"),
                "body.app_id": _binding("app_ids"),
                "body.user_id": _binding("user_ids"),
                # Not body.user_ids[*]: drawing each item from three ids repeats them, which the
                # schema (uniqueItems) and the server refuse.
                "body.notifications[*].user_id": _binding("user_ids"),
                "body.email": _binding("emails"),
                "body.password": _binding("passwords"),
                "body.refresh": _binding("refresh_tokens"),
                "body.client_id": _binding("client_ids"),
                "body.push_token": _binding("push_tokens"),
            },
        }
    )


def schema_load(world: FuzzWorld, *, seed: int, max_examples: int, coverage: bool = True) -> Any:
    """The OpenAPI schema Keymaster serves, bound to the in-process WSGI app."""
    config = schemathesis_config(world, seed=seed, max_examples=max_examples, coverage=coverage)
    return schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=config)
