"""The authorization matrix: every routed endpoint × every kind of caller, one cell at a time.

One world (apps X and Y, their users, admins, devices, notifications and receipts) is built once;
each caller holds a real credential from the real code paths (`/auth/token`, `/oauth/token`,
`/login`). Every cell is sent through the Django test client in its own savepoint, rolled back
afterwards, so a cell that deletes a device or rotates a secret does not disturb the next one.
Each refused non-GET cell must also leave the database as it found it.

The table below is the README's "Authorization matrix"; regenerate that section with
`UPDATE_AUTHZ_TABLE=1 .venv/bin/pytest tests/security/test_authz_matrix.py`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from django.views import View

from accounts.models import App, AppAdmin, Enrollment, Invitation, User
from accounts.tokens import client_token_issue, user_tokens_issue
from push.delivery.receipts import receipts_create
from push.models import (
    AuditEvent,
    Delivery,
    Device,
    Notification,
    PushConfig,
    Receipt,
    WorkerHeartbeat,
)
from push.services.broadcasts import BroadcastDraft, broadcast_send
from push.services.notifications import NotificationDraft, notifications_send
from push.services.topics import topic_members_change
from tests.factories import PASSWORD, enable_push, enroll, make_app, make_user, register
from tests.push.subscriptions import browser_subscription

ROOT = Path(settings.BASE_DIR)
README = ROOT / "README.md"
FIGURES = ROOT / "artifacts" / "reliability" / "authz.json"
START, END = "<!-- authz-matrix:start -->", "<!-- authz-matrix:end -->"
# A public address literal: the webhook check needs no DNS for it, and nothing is sent to it.
WEBHOOK_URL = "https://93.184.215.14/hooks/push"

# --- the callers -----------------------------------------------------------------------------

# (key, who). A bare key sends a bearer token; a `*` key is that person's signed-in browser
# (session cookie, `access_token` cookie and CSRF token, no bearer token).
CALLERS = [
    ("anon", "anonymous: no credentials"),
    ("A", "user A: enrolled in app X, owns device dA"),
    ("B", "user B: enrolled in app X, owns device dB"),
    ("C", "user C: enrolled in app Y only, owns device dC"),
    ("X+", "app X's client token with `push:send`"),
    ("X-", "app X's client token without `push:send`"),
    ("Y+", "app Y's client token with `push:send`"),
    ("aX", "admin of app X (user JWT)"),
    ("aY", "admin of app Y (user JWT)"),
    ("st", "Keymaster staff (user JWT)"),
    ("A*", "user A's browser"),
    ("B*", "user B's browser"),
    ("C*", "user C's browser"),
    ("aX*", "app X admin's browser"),
    ("aY*", "app Y admin's browser"),
    ("st*", "staff's browser"),
]
KEYS = [key for key, _ in CALLERS]
# Which tenant's resources each caller may act on (staff: every app).
TENANTS = {"anon": set(), "A": {"X"}, "B": {"X"}, "C": {"Y"}, "X+": {"X"}, "X-": {"X"}}
TENANTS |= {"Y+": {"Y"}, "aX": {"X"}, "aY": {"Y"}, "st": {"X", "Y"}}
TENANTS |= {f"{key}*": TENANTS[key] for key in ("A", "B", "C", "aX", "aY", "st")}

# --- the rows --------------------------------------------------------------------------------

# Outcomes: a status code, or 302L (redirect to /login), 302A (redirect to the Django
# admin's login) and 302 (any other redirect: a form done, a person sent to their home page).
Body = Callable[["World"], dict[str, Any]]


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # {X} {Y} {dA} {dB} {dC} {nX} {nY} {rX} {rY} {B} {none} ... filled from the world
    expect: str  # one outcome per caller, in CALLERS order ("|" is only for the eye)
    body: Body | None = None
    form: bool = False  # a page's form post rather than a JSON body
    tenant: str | None = None  # "X"/"Y": the row acts on that app's resources
    public: bool = False  # anonymous callers may succeed here
    others_device: tuple[str, ...] = ()  # callers for whom the row targets someone else's device
    note: str = ""  # what tells two rows of one path apart
    group: str = ""  # README: the rows of one group (with one outcome line) show as one line

    def outcomes(self) -> dict[str, str]:
        return _cells(self.expect, f"{self.method} {self.path}")


def _cells(expect: str, where: str) -> dict[str, str]:
    cells = expect.replace("|", " ").split()
    assert len(cells) == len(KEYS), f"{where}: {len(cells)} cells for {len(KEYS)} callers"
    return dict(zip(KEYS, cells, strict=True))


def _register(app: str) -> Body:
    return lambda w: {"app_id": w.ids[app], "platform": "android", "push_token": "fcm-" + "n" * 40}


def _subscribe(w: World) -> dict[str, Any]:
    return {**w.subscription, "app_id": w.ids["X"]}


def _send_one(user: str) -> Body:
    return lambda w: {"user_id": w.ids[user], "title": "Shift", "body": "Starts in 30 min"}


def _config(w: World) -> dict[str, Any]:
    return {"enabled": True, "webhook_url": WEBHOOK_URL + "/new", "daily_quota": 4321}


def _settings_form(w: World) -> dict[str, Any]:
    return {"webhook_url": WEBHOOK_URL + "/new", "daily_quota": "4321"}


def _login(w: World) -> dict[str, Any]:
    return {"username": w.emails["A"], "password": PASSWORD}


EVERYONE_200 = "200 200 200 200 200 200 200 200 200 200 | 200 200 200 200 200 200"
EVERYONE_204 = EVERYONE_200.replace("200", "204")
EVERYONE_503 = "503 503 503 503 503 503 503 503 503 503 | 503 503 503 503 503 503"
NOBODY_405 = "405 405 405 405 405 405 405 405 405 405 | 405 405 405 405 405 405"
BROWSERS_401 = "401 401 401 401 401 401"
ALL_404 = "404 404 404 404 404 404"
PAGE_ANON = "302L 302L 302L 302L 302L 302L 302L 302L 302L 302L"
ADMIN_ANON = "302A 302A 302A 302A 302A 302A 302A 302A 302A 302A"
STAFF_ONLY_PAGE = f"{ADMIN_ANON} | 302A 302A 302A 302A 302A"


def _admin_x(ok: str) -> str:
    """An admin-JWT endpoint on app X: its admins and staff succeed, everyone else 401/404."""
    return f"401 404 404 404 401 401 401 {ok} 404 {ok} | {BROWSERS_401}"


def _admin_y(ok: str) -> str:
    return f"401 404 404 404 401 401 401 404 {ok} {ok} | {BROWSERS_401}"


def _console_x(ok: str) -> str:
    """A Console page of app X: bearer tokens are no session; people who administer nothing 403."""
    return f"{PAGE_ANON} | 403 403 403 {ok} 404 {ok}"


def _console_x_other(missing: str = "404") -> str:
    """A Console page of app X naming a row that is not app X's: 404 even for staff."""
    return f"{PAGE_ANON} | 403 403 403 {missing} 404 {missing}"


def _fresh_refresh(world: World) -> str:
    return user_tokens_issue(User.objects.get(email=world.emails["A"]))["refresh"]


API_ROWS = [
    Row("GET", "/healthz", EVERYONE_200, public=True),
    # No qcluster worker runs beside this test: not ready, whoever asks.
    Row("GET", "/readyz", EVERYONE_503, public=True),
    # Without METRICS_TOKEN, /metrics answers loopback (every caller here) and nobody else.
    Row("GET", "/metrics", EVERYONE_200, public=True),
    Row(
        "POST",
        "/oauth/token",
        EVERYONE_200,
        body=lambda w: {"grant_type": "client_credentials", **w.client_credentials},
        public=True,
    ),
    Row(
        "POST",
        "/auth/token",
        EVERYONE_200,
        body=lambda w: {"email": w.emails["A"], "password": PASSWORD},
        public=True,
    ),
    Row(
        "POST",
        "/auth/token/refresh",
        EVERYONE_200,
        body=lambda w: {"refresh": _fresh_refresh(w)},  # single-use: one per caller
        public=True,
    ),
    Row(
        "POST",
        "/auth/token/revoke",
        EVERYONE_204,
        body=lambda w: {"refresh": _fresh_refresh(w)},
        public=True,
    ),
    Row("GET", "/api/schema/", EVERYONE_200, public=True),
    Row("GET", "/api/docs/", EVERYONE_200, public=True),
    Row("GET", "/api/apps", f"401 200 200 200 401 401 401 200 200 200 | {BROWSERS_401}"),
    Row(
        "POST",
        "/api/apps",
        f"401 403 403 403 401 401 401 403 403 201 | {BROWSERS_401}",
        body=lambda w: {"name": "Another app"},
    ),
    Row("GET", "/api/apps/{X}", _admin_x("200"), tenant="X"),
    Row("GET", "/api/apps/{Y}", _admin_y("200"), tenant="Y"),
    Row("GET", "/api/apps/{none}", f"401 404 404 404 401 401 401 404 404 404 | {BROWSERS_401}"),
    Row("POST", "/api/apps/{X}/rotate-secret", _admin_x("200"), tenant="X"),
    Row("POST", "/api/apps/{Y}/rotate-secret", _admin_y("200"), tenant="Y"),
    Row(
        "POST",
        "/api/apps/{X}/enrollments",
        _admin_x("202"),
        body=lambda w: {"email": w.emails["D"]},
        tenant="X",
    ),
    Row("DELETE", "/api/apps/{X}/enrollments/{B}", _admin_x("204"), tenant="X"),
    Row("DELETE", "/api/apps/{Y}/enrollments/{C}", _admin_y("204"), tenant="Y"),
    Row(
        "POST",
        "/api/apps/{X}/admins",
        _admin_x("202"),
        body=lambda w: {"email": w.emails["D"]},
        tenant="X",
    ),
    # Invitations are the caller's own (found by their email): nobody here has one to take.
    Row("GET", "/api/invitations", f"401 200 200 200 401 401 401 200 200 200 | {BROWSERS_401}"),
    Row(
        "POST",
        "/api/invitations/{X}/accept",
        f"401 404 404 404 401 401 401 404 404 404 | {BROWSERS_401}",
    ),
    Row(
        "DELETE",
        "/api/invitations/{X}",
        f"401 404 404 404 401 401 401 404 404 404 | {BROWSERS_401}",
    ),
    Row("GET", "/push/config/{X}", _admin_x("200"), tenant="X"),
    Row("PATCH", "/push/config/{X}", _admin_x("200"), body=_config, tenant="X"),
    Row("GET", "/push/config/{Y}", _admin_y("200"), tenant="Y"),
    Row("PATCH", "/push/config/{Y}", _admin_y("200"), body=_config, tenant="Y"),
    Row("POST", "/push/config/{X}/rotate-webhook-secret", _admin_x("200"), tenant="X"),
    Row(
        "POST",
        "/push/devices/register",
        f"401 201 201 403 401 401 401 403 403 403 | {BROWSERS_401}",
        body=_register("X"),
        tenant="X",
    ),
    Row(
        "POST",
        "/push/devices/register",
        f"401 403 403 201 401 401 401 403 403 403 | {BROWSERS_401}",
        note="app Y",
        body=_register("Y"),
        tenant="Y",
    ),
    Row(
        "POST",
        "/push/subscribe",
        "401 200 200 403 401 401 401 403 403 403 | 200 200 403 403 403 403",
        body=_subscribe,
        tenant="X",
    ),
    Row(
        "GET",
        "/push/devices/{X}",
        f"401 404 404 404 200 403 404 200 404 200 | {BROWSERS_401}",
        tenant="X",
    ),
    Row(
        "GET",
        "/push/devices/{Y}",
        f"401 404 404 404 404 403 200 404 200 200 | {BROWSERS_401}",
        tenant="Y",
    ),
    Row(
        "DELETE",
        "/push/devices/{dA}",
        f"401 204 404 404 204 403 404 404 404 404 | {BROWSERS_401}",
        tenant="X",
        others_device=("B", "C", "Y+", "aX", "aY", "st"),
    ),
    Row(
        "DELETE",
        "/push/devices/{dC}",
        f"401 404 404 204 404 403 204 404 404 404 | {BROWSERS_401}",
        tenant="Y",
        others_device=("A", "B", "X+", "aX", "aY", "st"),
    ),
    Row(
        "DELETE",
        "/push/devices/{none}",
        f"401 404 404 404 404 403 404 404 404 404 | {BROWSERS_401}",
    ),
    Row(
        "POST",
        "/push/send",
        f"401 401 401 401 202 403 403 401 401 401 | {BROWSERS_401}",
        body=_send_one("A"),
        tenant="X",
    ),
    Row(
        "POST",
        "/push/send",
        f"401 401 401 401 403 403 202 401 401 401 | {BROWSERS_401}",
        note="to user C of app Y",
        body=_send_one("C"),
        tenant="Y",
    ),
    Row(
        "POST",
        "/push/send/bulk",
        f"401 401 401 401 202 403 403 401 401 401 | {BROWSERS_401}",
        body=lambda w: {"user_ids": [w.ids["A"], w.ids["B"]], "title": "Closing", "body": "At 6pm"},
        tenant="X",
    ),
    Row(
        "POST",
        "/push/send/batch",
        f"401 401 401 401 202 403 403 401 401 401 | {BROWSERS_401}",
        body=lambda w: {
            "notifications": [
                {"user_id": w.ids["A"], "title": "Approved", "body": "Shift approved"},
                {"user_id": w.ids["B"], "title": "Denied", "body": "Time off denied"},
            ]
        },
        tenant="X",
    ),
    Row(
        "GET",
        "/push/notifications/{nX}",
        f"401 401 401 401 200 403 404 401 401 401 | {BROWSERS_401}",
        tenant="X",
    ),
    Row(
        "GET",
        "/push/notifications/{nY}",
        f"401 401 401 401 404 403 200 401 401 401 | {BROWSERS_401}",
        tenant="Y",
    ),
    Row(
        "POST",
        "/push/notifications/{sX}/cancel",
        f"401 401 401 401 200 403 404 401 401 401 | {BROWSERS_401}",
        tenant="X",
    ),
    Row(
        "POST",
        "/push/notifications/{sY}/cancel",
        f"401 401 401 401 404 403 200 401 401 401 | {BROWSERS_401}",
        tenant="Y",
    ),
    Row(
        "POST",
        "/push/send/broadcast",
        f"401 401 401 401 202 403 202 401 401 401 | {BROWSERS_401}",
        note="each app to its own users",
        body=lambda w: {"title": "Gym", "body": "Closes early today"},
    ),
    Row(
        "GET",
        "/push/broadcasts/{bX}",
        f"401 401 401 401 200 403 404 401 401 401 | {BROWSERS_401}",
        tenant="X",
    ),
    Row(
        "POST",
        "/push/broadcasts/{bX}/cancel",
        f"401 401 401 401 200 403 404 401 401 401 | {BROWSERS_401}",
        tenant="X",
    ),
    Row(
        "GET",
        "/push/topics",
        f"401 401 401 401 200 403 200 401 401 401 | {BROWSERS_401}",
        note="each app its own topics",
    ),
    Row(
        "POST",
        "/push/topics/shift-a/members",
        f"401 401 401 401 200 403 403 401 401 401 | {BROWSERS_401}",
        body=lambda w: {"add": [w.ids["B"]]},
        tenant="X",
    ),
    Row(
        "GET",
        "/push/topics/shift-a/members",
        f"401 401 401 401 200 403 404 401 401 401 | {BROWSERS_401}",
        tenant="X",
    ),
    Row(
        "DELETE",
        "/push/topics/shift-a",
        f"401 401 401 401 204 403 404 401 401 401 | {BROWSERS_401}",
        tenant="X",
    ),
    Row("GET", "/account/devices", f"401 200 200 200 401 401 401 200 200 200 | {BROWSERS_401}"),
    Row(
        "PATCH",
        "/account/apps/{X}",
        f"401 200 200 404 401 401 401 404 404 404 | {BROWSERS_401}",
        body=lambda w: {"muted": True},
        tenant="X",
    ),
    Row(
        "POST",
        "/push/opened",
        # App X does not track opens: its user is told so; nobody else learns the id exists.
        f"401 403 404 404 401 401 401 404 404 404 | {BROWSERS_401}",
        body=lambda w: {"notification_id": w.ids["nX"]},
        tenant="X",
        note="by notification_id, user JWT",
    ),
    Row(
        "POST",
        "/push/opened",
        "404 404 404 404 401 401 401 404 404 404 | 404 404 404 404 404 404",
        body=lambda w: {"token": "A" * 32},
        public=True,
        note="by open token, no other auth",
    ),
]

_TAB = "/console/apps/{X}/notifications/"
_SETTINGS = "/console/apps/{X}/settings/"
_USERS = "/console/apps/{X}/users/"
_BROADCASTS = "/console/apps/{X}/broadcasts/"
PAGE_ROWS = [
    Row("GET", "/", f"{PAGE_ANON} | 302 302 302 302 302 302"),
    Row(
        "GET",
        "/login",
        "200 200 200 200 200 200 200 200 200 200 | 302 302 302 302 302 302",
        public=True,
    ),
    Row(
        "POST",
        "/login",
        "302 302 302 302 302 302 302 302 302 302 | 302 302 302 302 302 302",
        body=_login,
        form=True,
        public=True,
    ),
    Row(
        "PUT",
        "/login",
        "200 200 200 200 200 200 200 200 200 200 | 302 302 302 302 302 302",
        body=_login,
        form=True,
        public=True,
    ),
    Row("GET", "/logout", NOBODY_405),
    Row(
        "POST",
        "/logout",
        f"{PAGE_ANON} | 302L 302L 302L 302L 302L 302L",
        form=True,
        public=True,
    ),
    Row("GET", "/sw.js", EVERYONE_200, public=True),
    Row("GET", "/account", f"{PAGE_ANON} | 200 200 200 200 200 200"),
    Row(
        "POST",
        "/account/password",
        f"{PAGE_ANON} | 302 302 302 302 302 302",
        body=lambda w: {"old_password": "wrong", "new_password1": "x", "new_password2": "y"},
        form=True,
    ),
    Row(
        "POST",
        "/account/revoke/{dA}",
        f"{PAGE_ANON} | 302 404 404 404 404 404",
        form=True,
        tenant="X",
        others_device=("B*", "C*", "aX*", "aY*", "st*"),
    ),
    Row(
        "POST",
        "/account/revoke/{dC}",
        f"{PAGE_ANON} | 404 404 302 404 404 404",
        form=True,
        tenant="Y",
        others_device=("A*", "B*", "aX*", "aY*", "st*"),
    ),
    Row("POST", "/account/revoke/{none}", f"{PAGE_ANON} | 404 404 404 404 404 404", form=True),
    Row(
        "POST",
        "/account/mute/{X}",
        f"{PAGE_ANON} | 302 302 404 404 404 404",
        form=True,
        body=lambda w: {"muted": "1"},
        tenant="X",
    ),
    # Invitations are the person's own (found by their email): none of these callers has one.
    *(
        Row("POST", f"/account/invitations/{{X}}/{answer}", f"{PAGE_ANON} | {ALL_404}", form=True)
        for answer in ("accept", "decline")
    ),
    Row("GET", "/console/", f"{PAGE_ANON} | 403 403 403 200 200 200"),
    Row(
        "POST",
        "/console/apps/new",
        f"{PAGE_ANON} | 403 403 403 403 403 302",
        body=lambda w: {"name": "New app"},
        form=True,
    ),
    Row("GET", "/console/apps/{X}/", _console_x("200"), tenant="X"),
    Row("GET", "/console/apps/{Y}/", f"{PAGE_ANON} | 403 403 403 404 200 200", tenant="Y"),
    Row(
        "POST",
        "/console/apps/{X}/rename",
        _console_x("302"),
        body=lambda w: {"name": "App X2"},
        form=True,
        tenant="X",
    ),
    Row("POST", "/console/apps/{X}/client-secret/rotate", _console_x("302"), form=True, tenant="X"),
    *(
        Row("GET", f"/console/apps/{{X}}/{section}/", _console_x("200"), tenant="X")
        for section in (
            "settings",
            "devices",
            "notifications",
            "scheduled",
            "receipts",
            "users",
            "audit",
        )
    ),
    Row(
        "GET",
        "/console/apps/{Y}/notifications/",
        f"{PAGE_ANON} | 403 403 403 404 200 200",
        tenant="Y",
    ),
    Row(
        "POST",
        _SETTINGS + "enabled",
        _console_x("302"),
        body=lambda w: {"enabled": "0"},
        form=True,
        tenant="X",
    ),
    Row("POST", _SETTINGS + "save", _console_x("302"), body=_settings_form, form=True, tenant="X"),
    Row("POST", _SETTINGS + "webhook-secret/reveal", _console_x("302"), form=True, tenant="X"),
    Row("POST", _SETTINGS + "webhook-secret/rotate", _console_x("302"), form=True, tenant="X"),
    Row(
        "POST",
        _SETTINGS + "fcm",
        _console_x("302"),
        body=lambda w: {"clear": "1"},
        form=True,
        tenant="X",
    ),
    Row(
        "POST",
        _TAB + "test",
        _console_x("302"),
        body=lambda w: {"email": w.emails["A"], "title": "Test", "body": "From the Console"},
        form=True,
        tenant="X",
    ),
    Row("GET", _TAB + "{nX}/", _console_x("200"), tenant="X"),
    Row("GET", _TAB + "{nY}/", _console_x_other(), tenant="Y"),
    Row("GET", _TAB + "{nX}/status", _console_x("200"), tenant="X"),
    Row("POST", _TAB + "{sX}/cancel", _console_x("302"), form=True, tenant="X"),
    Row("POST", _TAB + "{sY}/cancel", _console_x_other(), form=True, tenant="Y"),
    Row("GET", _TAB + "{nY}/status", _console_x_other(), tenant="Y"),
    Row("GET", _BROADCASTS + "{bX}/counts", _console_x("200"), tenant="X"),
    Row("GET", _BROADCASTS + "{bY}/counts", _console_x_other(), tenant="Y"),
    Row("POST", _BROADCASTS + "{bX}/cancel", _console_x("302"), form=True, tenant="X"),
    Row("POST", _BROADCASTS + "{bY}/cancel", _console_x_other(), form=True, tenant="Y"),
    Row(
        "POST",
        "/console/apps/{X}/devices/{dA}/remove",
        _console_x("302"),
        form=True,
        tenant="X",
        others_device=("aY*",),
    ),
    Row(
        "POST",
        "/console/apps/{X}/devices/{dC}/remove",
        _console_x_other(),
        form=True,
        tenant="Y",
        others_device=("aX*", "st*"),
    ),
    Row("POST", "/console/apps/{X}/devices/{none}/remove", _console_x_other(), form=True),
    Row(
        "POST",
        "/console/apps/{X}/receipts/{rX}/redeliver",
        _console_x("302"),
        form=True,
        tenant="X",
    ),
    Row(
        "POST",
        "/console/apps/{X}/receipts/{rY}/redeliver",
        _console_x_other(),
        form=True,
        tenant="Y",
    ),
    Row(
        "POST",
        _USERS + "enroll",
        _console_x("302"),
        body=lambda w: {"emails": w.emails["D"]},
        form=True,
        tenant="X",
    ),
    Row("POST", _USERS + "{A}/unenroll", _console_x("302"), form=True, tenant="X"),
    Row("POST", _USERS + "{C}/unenroll", _console_x_other(), form=True, tenant="Y"),
    Row(
        "POST",
        _USERS + "admins/add",
        _console_x("302"),
        body=lambda w: {"email": w.emails["D"]},
        form=True,
        tenant="X",
    ),
    Row("POST", _USERS + "invitations/{iX}/revoke", _console_x("302"), form=True, tenant="X"),
    Row("POST", _USERS + "invitations/{iY}/revoke", _console_x_other(), form=True, tenant="Y"),
    Row("POST", _USERS + "admins/{aX}/remove", _console_x("302"), form=True, tenant="X"),
    Row("POST", _USERS + "admins/{aY}/remove", _console_x_other(), form=True, tenant="Y"),
]

# The Django admin: Django's own permission system behind `is_staff`. Keymaster staff are not
# superusers and hold no model permissions, so they see the index and nothing else.
ADMIN_MODELS = [
    ("auth/group", "group"),
    ("django_q/schedule", "schedule"),
    ("django_q/success", "success"),
    ("django_q/failure", "failure"),
    ("django_q/ormq", "ormq"),
    ("accounts/user", "A"),
    ("accounts/app", "X"),
    ("accounts/appadmin", "appadmin"),
    ("accounts/enrollment", "enrollment"),
    ("push/pushconfig", "X"),
    ("push/device", "dA"),
    ("push/notification", "nX"),
    ("push/delivery", "delivery"),
    ("push/receipt", "rX"),
    ("push/auditevent", "audit"),
    ("push/workerheartbeat", "beat"),
]
ADMIN_STAFF_403 = f"{STAFF_ONLY_PAGE} 403"
ADMIN_PAGES = (
    "`GET /admin/<app>/<model>/` and its `add/`, `{id}/change/`, `{id}/delete/`, `{id}/history/`"
    " for each model in the admin, and `/admin/accounts/user/{id}/password/`"
)
ADMIN_REDIRECTS = "`GET /admin/<app>/<model>/{id}/` (to `change/`) for each model in the admin"
ADMIN_ROWS = [
    Row("GET", "/admin/", f"{STAFF_ONLY_PAGE} 200"),
    Row(
        "GET",
        "/admin/login/",
        "200 200 200 200 200 200 200 200 200 200 | 200 200 200 200 200 302",
        public=True,
    ),
    # Django's admin sends people it would not let in from its logout URL to its index.
    Row(
        "GET", "/admin/logout/", "302 302 302 302 302 302 302 302 302 302 | 302 302 302 302 302 405"
    ),
    Row("GET", "/admin/password_change/", f"{STAFF_ONLY_PAGE} 200"),
    Row("GET", "/admin/password_change/done/", f"{STAFF_ONLY_PAGE} 200"),
    Row("GET", "/admin/autocomplete/", ADMIN_STAFF_403),
    Row("GET", "/admin/jsi18n/", f"{STAFF_ONLY_PAGE} 200"),
    Row("GET", "/admin/r/{ct}/{X}/", f"{STAFF_ONLY_PAGE} 404"),
    Row("GET", "/admin/accounts/", f"{STAFF_ONLY_PAGE} 404"),
    Row("GET", "/admin/no-such-page/", f"{STAFF_ONLY_PAGE} 404"),
    Row("GET", "/admin/accounts/user/{A}/password/", ADMIN_STAFF_403, group=ADMIN_PAGES),
]
for _model, _obj in ADMIN_MODELS:
    _tenant = "X" if _obj in ("X", "appadmin", "enrollment", "dA", "nX", "rX") else None
    _tenant = "X" if _obj in ("delivery", "audit") else _tenant
    ADMIN_ROWS += [
        Row("GET", f"/admin/{_model}/{suffix}", ADMIN_STAFF_403, group=ADMIN_PAGES, tenant=tenant)
        for suffix, tenant in [
            ("", None),
            ("add/", None),
            (f"{{{_obj}}}/history/", _tenant),
            (f"{{{_obj}}}/delete/", _tenant),
            (f"{{{_obj}}}/change/", _tenant),
        ]
    ]
    ADMIN_ROWS.append(
        Row(
            "GET",
            f"/admin/{_model}/{{{_obj}}}/",
            f"{STAFF_ONLY_PAGE} 302",
            tenant=_tenant,
            group=ADMIN_REDIRECTS,
        )
    )

ROWS = API_ROWS + PAGE_ROWS + ADMIN_ROWS


# --- the world and its callers ---------------------------------------------------------------


@dataclass
class World:
    ids: dict[str, str]
    emails: dict[str, str]
    client_credentials: dict[str, str]
    refresh: str
    subscription: dict[str, Any]
    state: tuple = ()  # `_state()` once the world is built


@dataclass
class Caller:
    key: str
    csrf: str
    cookies: dict[str, str] = field(default_factory=dict)
    bearer: str = ""


def _cookies(client: Client) -> dict[str, str]:
    return {name: morsel.value for name, morsel in client.cookies.items() if morsel.value}


def _csrf_cookie() -> str:
    client = Client(enforce_csrf_checks=True)
    assert client.get("/login").status_code == 200
    return client.cookies["csrftoken"].value


def _user_tokens(email: str) -> dict[str, str]:
    body = {"email": email, "password": PASSWORD}
    response = Client().post("/auth/token", body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def _client_token(app: App, secret: str) -> str:
    basic = base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()
    response = Client().post(
        "/oauth/token",
        urlencode({"grant_type": "client_credentials", "scope": "push:send"}),
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def _browser(email: str) -> Caller:
    """Sign in at /login as a browser does (CSRF-checked form) and keep its cookies."""
    client = Client(enforce_csrf_checks=True)
    client.get("/login")
    form = {"username": email, "password": PASSWORD}
    response = client.post(
        "/login", {**form, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    )
    assert response.status_code == 302, response.content
    cookies = _cookies(client)
    assert {"sessionid", settings.ACCESS_TOKEN_COOKIE, "csrftoken"} <= cookies.keys()
    return Caller("", csrf=cookies["csrftoken"], cookies=cookies)


def _notification(app: App, user: User, *, later: bool = False) -> str:
    send_at = timezone.now() + timedelta(hours=1) if later else None
    draft = NotificationDraft(user_id=user.pk, title="Hello", body="World", send_at=send_at)
    ids, _ = notifications_send(app=app, drafts=[draft])
    return str(ids[0])


def _receipt(notification_id: str) -> str:
    delivery = Delivery.objects.get(notification_id=notification_id)
    Delivery.objects.filter(pk=delivery.pk).update(status="delivered")
    delivery.refresh_from_db()
    (receipt,) = receipts_create([delivery])
    return str(receipt.id)


def _admin_objects(world: dict[str, str], app_x: App, admin_x: User, user_a: User) -> None:
    from django_q.models import OrmQ, Schedule, Task

    now = timezone.now()
    world["group"] = str(Group.objects.create(name="operators").pk)
    world["schedule"] = str(Schedule.objects.create(name="authz", func="math.floor").pk)
    for key, success in (("success", True), ("failure", False)):
        task = Task.objects.create(
            id=uuid.uuid4().hex,
            name=key,
            func="math.floor",
            started=now,
            stopped=now,
            success=success,
        )
        world[key] = str(task.pk)
    world["ormq"] = str(OrmQ.objects.order_by("id").values_list("id", flat=True).first())
    world["appadmin"] = str(AppAdmin.objects.get(app=app_x, user=admin_x).pk)
    world["enrollment"] = str(Enrollment.objects.get(app=app_x, user=user_a).pk)
    world["ct"] = str(ContentType.objects.get_for_model(App).pk)
    world["delivery"] = str(Delivery.objects.filter(app=app_x).values_list("id", flat=True)[0])
    world["audit"] = str(AuditEvent.objects.create(app=app_x, action="authz").pk)
    # Last heard of yesterday: no worker is alive, so /readyz is 503 for everyone.
    beat = WorkerHeartbeat.objects.create(name="authz-worker-1", seen_at=now - timedelta(days=1))
    world["beat"] = beat.pk


def _build_world() -> tuple[World, dict[str, Caller]]:
    people = {key: make_user(email=f"{key.lower()}@authz.example") for key in "ABCD"}
    people["aX"] = make_user(email="admin-x@authz.example")
    people["aY"] = make_user(email="admin-y@authz.example")
    people["st"] = make_user(email="staff@authz.example", staff=True)
    app_x, secret_x = make_app(name="App X", admin=people["aX"])
    app_y, secret_y = make_app(name="App Y", admin=people["aY"])
    for app in (app_x, app_y):
        enable_push(app, webhook_url=WEBHOOK_URL)
    enroll(app_x, people["A"], people["B"])
    enroll(app_y, people["C"])
    ids = {"X": str(app_x.app_id), "Y": str(app_y.app_id), "none": str(uuid.uuid4())}
    ids |= {key: str(user.pk) for key, user in people.items()}
    ids["dA"] = str(register(people["A"], app_x).pk)
    ids["dB"] = str(register(people["B"], app_x).pk)
    ids["dC"] = str(register(people["C"], app_y).pk)
    ids["nX"] = _notification(app_x, people["A"])
    ids["nY"] = _notification(app_y, people["C"])
    ids["rX"], ids["rY"] = _receipt(ids["nX"]), _receipt(ids["nY"])
    ids["sX"] = _notification(app_x, people["A"], later=True)
    ids["sY"] = _notification(app_y, people["C"], later=True)
    ids["bX"], ids["bY"] = (
        str(broadcast_send(app=app, draft=BroadcastDraft(title="t", body="b")).broadcast_id)
        for app in (app_x, app_y)
    )
    # Invitations of D (who has no caller): nobody here may accept them, admins may revoke.
    ids["iX"], ids["iY"] = (
        str(Invitation.objects.create(app=app, email=people["D"].email, role="user").pk)
        for app in (app_x, app_y)
    )
    topic_members_change(app=app_x, topic="shift-a", add=[people["A"].pk], remove=[])
    _admin_objects(ids, app_x, people["aX"], people["A"])
    world = World(
        ids=ids,
        emails={key: user.email for key, user in people.items()},
        client_credentials={"client_id": app_x.client_id, "client_secret": secret_x},
        refresh=_user_tokens(people["A"].email)["refresh"],
        subscription=browser_subscription(),
    )
    callers = {"anon": Caller("anon", csrf=_csrf_cookie())}
    for key in ("A", "B", "C", "aX", "aY", "st"):
        callers[key] = Caller(
            key, csrf=_csrf_cookie(), bearer=_user_tokens(people[key].email)["access"]
        )
        callers[f"{key}*"] = _browser(people[key].email)
        callers[f"{key}*"].key = f"{key}*"
    callers["X+"] = Caller("X+", csrf=_csrf_cookie(), bearer=_client_token(app_x, secret_x))
    callers["Y+"] = Caller("Y+", csrf=_csrf_cookie(), bearer=_client_token(app_y, secret_y))
    # `/oauth/token` grants only `push:send` (the one scope there is, and the default), so the
    # scope-less token comes from the same issuing function the endpoint calls.
    scopeless = client_token_issue(app_x, [])["access_token"]
    callers["X-"] = Caller("X-", csrf=_csrf_cookie(), bearer=scopeless)
    return world, callers


# --- one cell --------------------------------------------------------------------------------


# One client for every cell: each new client builds the whole middleware stack again (and
# WhiteNoise scans every static file), which would cost most of the run.
_CLIENT = Client(enforce_csrf_checks=True, raise_request_exception=False)


def _send(caller: Caller, row: Row, world: World) -> HttpResponse:
    client = _CLIENT
    client.cookies = SimpleCookie()
    for name, value in caller.cookies.items():
        client.cookies[name] = value
    client.cookies["csrftoken"] = caller.csrf
    headers = {"X-CSRFToken": caller.csrf}
    if caller.bearer:
        headers["Authorization"] = f"Bearer {caller.bearer}"
    path = row.path.format(**world.ids)
    body = row.body(world) if row.body else None
    if row.form:
        data = urlencode({**(body or {}), "csrfmiddlewaretoken": caller.csrf})
        content_type = "application/x-www-form-urlencoded"
    else:
        data, content_type = ("" if body is None else json.dumps(body)), "application/json"
    return client.generic(row.method, path, data, content_type=content_type, headers=headers)


def _outcome(response: HttpResponse) -> str:
    status = response.status_code
    if status != 302:
        return str(status)
    location = response["Location"]
    if location == settings.LOGIN_URL or location.startswith(settings.LOGIN_URL + "?"):
        return "302L"
    if location.startswith("/admin/login/"):
        return "302A"
    return "302"


def _succeeded(outcome: str) -> bool:
    return outcome.startswith("2") or outcome == "302"


def _state() -> tuple:
    """Everything an authorization failure must leave as it was."""
    config_fields = [f.attname for f in PushConfig._meta.concrete_fields]
    return (
        list(App.objects.order_by("app_id").values_list("app_id", "client_secret_hash", "name")),
        sorted(AppAdmin.objects.values_list("app_id", "user_id")),
        sorted(Enrollment.objects.values_list("app_id", "user_id")),
        User.objects.count(),
        list(Device.objects.order_by("id").values_list("id", "app_id", "user_id", "last_seen_at")),
        list(PushConfig.objects.order_by("app_id").values_list(*config_fields)),
        sorted(Notification.objects.values_list("id", "status")),
        list(Receipt.objects.order_by("id").values_list("id", "status", "next_attempt_at")),
        AuditEvent.objects.count(),
    )


def _foreign_ids(world: World) -> dict[str, set[str]]:
    """The ids each caller must never read in an answer (staff may read every app's)."""
    ids = world.ids
    of_x, of_y = {ids["X"], ids["nX"]}, {ids["Y"], ids["dC"], ids["nY"]}
    foreign = {
        "anon": of_x | of_y | {ids["dA"], ids["dB"]},
        "A": of_y | {ids["dB"], ids["nX"]},
        "B": of_y | {ids["dA"], ids["nX"]},
        "C": of_x | {ids["dA"], ids["dB"], ids["nY"]},
        "X+": of_y,
        "X-": of_y,
        "Y+": of_x | {ids["dA"], ids["dB"]},
        "aX": of_y,
        "aY": of_x | {ids["dA"], ids["dB"]},
        "st": set(),
    }
    return foreign | {f"{key}*": foreign[key] for key in ("A", "B", "C", "aX", "aY", "st")}


@dataclass
class Cell:
    row: Row
    caller: str
    expected: str
    observed: str
    changed: bool  # a refused non-GET request changed the database
    leaked: bool  # a successful answer showed an id the caller must not read
    answer: str  # the start of the answer, to tell what went wrong


def _run_cell(row: Row, caller: Caller, world: World, foreign: set[str]) -> Cell:
    """Send one cell in a savepoint that is rolled back: every cell starts from `world.state`."""
    expected = row.outcomes()[caller.key]
    with transaction.atomic():
        response = _send(caller, row, world)
        observed = _outcome(response)
        refused_write = row.method != "GET" and not _succeeded(observed)
        changed = refused_write and _state() != world.state
        text = response.content.decode(errors="replace") if _succeeded(observed) else ""
        leaked = any(identifier in text for identifier in foreign)
        transaction.set_rollback(True)
    answer = response.content[:200].decode(errors="replace")
    return Cell(row, caller.key, expected, observed, changed, leaked, answer)


# --- the README table ------------------------------------------------------------------------


def _label(row: Row) -> str:
    return f"`{row.method} {row.path}`" + (f" ({row.note})" if row.note else "")


def _merged(rows: list[Row]) -> list[tuple[str, str]]:
    """(label, outcomes) lines, the rows of one group on one line (they must agree)."""
    lines: list[tuple[str, str]] = []
    groups: dict[str, list[Row]] = {}
    for row in rows:
        if not row.group:
            lines.append((_label(row), row.expect))
        elif row.group not in groups:
            groups[row.group] = [row]
            lines.append((row.group, row.expect))
        else:
            groups[row.group].append(row)
            assert row.expect == groups[row.group][0].expect, f"{row.path} differs from its group"
    sizes = {group: len(members) for group, members in groups.items()}
    return [
        (f"{label} ({sizes[label]} URLs)" if label in sizes else label, expect)
        for label, expect in lines
    ]


def matrix_markdown() -> str:
    """The matrix as the README shows it, from the table above."""
    head = "| endpoint | " + " | ".join(KEYS) + " |"
    lines = [head, "|---|" + "---|" * len(KEYS)]
    for label, expect in _merged(ROWS):
        cells = _cells(expect, label)
        lines.append(f"| {label} | " + " | ".join(cells[key] for key in KEYS) + " |")
    legend = "; ".join(f"`{key}` {who}" for key, who in CALLERS)
    return "\n".join(
        [
            *lines,
            "",
            f"Callers: {legend}. A `*` caller is the person's signed-in browser (session cookie,"
            " `access_token` cookie, CSRF token; no bearer token). `302L`: redirect to `/login`;"
            " `302A`: redirect to the Django admin's login; `302`: any other redirect (a form"
            " done, a person sent to their home page). `{X}`/`{Y}`: apps X and Y; `{dA}`: user"
            " A's device; `{nX}`/`{rX}`: a notification/receipt of app X; `{sX}`/`{bX}`/`{iX}`:"
            " a scheduled notification/broadcast/invitation of app X; `{none}`: an id that"
            " exists nowhere.",
            "",
            "Generated by `tests/security/test_authz_matrix.py`, which fails when this table and"
            " the code disagree; regenerate it with"
            " `UPDATE_AUTHZ_TABLE=1 .venv/bin/pytest tests/security/test_authz_matrix.py`.",
        ]
    )


def _readme_section(text: str) -> tuple[int, int]:
    """Where the table sits in the README: the span between the two markers."""
    start, end = text.find(START), text.find(END)
    assert 0 <= start < end, f"README.md has no {START} ... {END} section"
    return start + len(START), end


# --- the tests -------------------------------------------------------------------------------


def _route_of(row: Row, ids: dict[str, str]) -> str:
    return resolve(row.path.format(**ids)).route


def _methods(pattern: URLPattern) -> set[str]:
    view_class = getattr(pattern.callback, "view_class", None)
    if view_class is None or not issubclass(view_class, View):
        return set()
    names = set(view_class.http_method_names) - {"options", "head"}
    return {name.upper() for name in names if hasattr(view_class, name)}


def _patterns() -> dict[str, URLPattern]:
    """Every routed pattern, by the route `resolve()` reports for a path it matches."""

    def join(prefix: str, piece: str) -> str:
        # As Django joins nested routes: a regex's leading ^ goes when it is not first.
        return prefix + (piece[1:] if prefix and piece.startswith("^") else piece)

    def walk(resolver: URLResolver, prefix: str) -> dict[str, URLPattern]:
        found = {}
        for pattern in resolver.url_patterns:
            route = join(prefix, str(pattern.pattern))
            if isinstance(pattern, URLResolver):
                found |= walk(pattern, route)
            else:
                found[route] = pattern
        return found

    return walk(get_resolver(), "")


FAKE_IDS = (
    {
        name: str(uuid.uuid4())
        for name in (
            "X",
            "Y",
            "none",
            "dA",
            "dB",
            "dC",
            "nX",
            "nY",
            "sX",
            "sY",
            "bX",
            "bY",
            "A",
            "B",
            "C",
            "D",
            "aX",
            "aY",
        )
    }
    | {name: "1" for name in ("rX", "rY", "ct", "group", "schedule", "ormq", "appadmin")}
    | {name: "1" for name in ("delivery", "audit", "beat", "iX", "iY")}
    | {
        "enrollment": "1",
        "success": "a" * 32,
        "failure": "b" * 32,
    }
)


def test_every_routed_endpoint_and_method_is_in_the_matrix():
    covered: dict[str, set[str]] = {}
    for row in ROWS:
        covered.setdefault(_route_of(row, FAKE_IDS), set()).add(row.method)
    patterns = _patterns()
    missing = sorted(set(patterns) - set(covered))
    assert not missing, f"routed but not in the authorization matrix: {missing}"
    # Django's admin gates every method of a URL with one `is_staff` check; its GETs stand in.
    methods_missing = {
        route: sorted(_methods(pattern) - covered[route])
        for route, pattern in patterns.items()
        if not route.startswith("admin/") and _methods(pattern) - covered[route]
    }
    assert not methods_missing, f"methods not in the authorization matrix: {methods_missing}"


def test_the_table_itself_keeps_the_promises():
    for row in ROWS:
        outcomes = row.outcomes()
        for key, outcome in outcomes.items():
            if row.tenant and row.tenant not in TENANTS[key]:
                assert not _succeeded(outcome), f"{key} succeeds on {row.path} of {row.tenant}"
            if key == "anon" and not row.public:
                assert not outcome.startswith("2"), f"anonymous succeeds on {row.path}"
        for key in row.others_device:
            assert outcomes[key] == "404", f"{key} on someone else's device {row.path}"


def test_refusals_do_not_tell_whether_a_row_exists():
    """A refused caller gets the same answer for a real device or app as for a made-up id."""
    by_path = {(row.method, row.path): row for row in ROWS}
    compared = 0
    for row in ROWS:
        for name in ("{dA}", "{dC}", "{X}", "{Y}"):
            twin = by_path.get((row.method, row.path.replace(name, "{none}")))
            if name not in row.path or twin is None:
                continue
            compared += 1
            real, made_up = row.outcomes(), twin.outcomes()
            for key in KEYS:
                if not _succeeded(real[key]):
                    assert real[key] == made_up[key], f"{key}: {row.path} vs {twin.path}"
    assert compared >= 8


def test_readme_shows_the_matrix():
    table = "\n" + matrix_markdown() + "\n"
    if os.environ.get("UPDATE_AUTHZ_TABLE"):
        text = README.read_text()
        start, end = _readme_section(text)
        README.write_text(text[:start] + table + text[end:])
    text = README.read_text()
    start, end = _readme_section(text)
    assert text[start:end] == table, (
        "README's authorization matrix differs from the test's table; regenerate it with "
        "UPDATE_AUTHZ_TABLE=1 .venv/bin/pytest tests/security/test_authz_matrix.py"
    )


@pytest.mark.django_db
def test_authorization_matrix():
    world, callers = _build_world()
    world.state = _state()
    foreign = _foreign_ids(world)
    # Thousands of expected 4xx answers would each write a warning line.
    request_log = logging.getLogger("django.request")
    level, request_log.level = request_log.level, logging.ERROR
    try:
        cells = [_run_cell(row, callers[key], world, foreign[key]) for row in ROWS for key in KEYS]
    finally:
        request_log.setLevel(level)
    mismatches = [c for c in cells if c.observed != c.expected]
    changed = [c for c in cells if c.changed]
    leaked = [c for c in cells if c.leaked]
    cross_tenant = [
        c
        for c in cells
        if c.row.tenant and c.row.tenant not in TENANTS[c.caller] and _succeeded(c.observed)
    ]
    not_404 = [c for c in cells if c.caller in c.row.others_device and c.observed != "404"]
    anonymous = [
        c for c in cells if c.caller == "anon" and not c.row.public and c.observed.startswith("2")
    ]
    _write_figures(cells, cross_tenant, not_404, anonymous, mismatches, changed, leaked)

    def show(found: list[Cell]) -> str:
        return "\n".join(
            f"  {c.row.method} {c.row.path} {c.row.note} as {c.caller}: expected {c.expected},"
            f" got {c.observed}: {c.answer!r}"
            for c in found
        )

    assert not mismatches, f"{len(mismatches)} cells differ from the table:\n{show(mismatches)}"
    assert not cross_tenant, f"cross-tenant successes:\n{show(cross_tenant)}"
    assert not not_404, f"someone else's device did not answer 404:\n{show(not_404)}"
    assert not anonymous, f"anonymous successes outside the public endpoints:\n{show(anonymous)}"
    assert not changed, f"refused requests that changed the database:\n{show(changed)}"
    assert not leaked, f"answers that showed another tenant's ids:\n{show(leaked)}"


def _write_figures(cells: list[Cell], *found: list[Cell]) -> None:
    cross_tenant, not_404, anonymous, mismatches, changed, leaked = found
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    figures = {
        "database": connection.vendor,
        "routed_patterns": len(_patterns()),
        "rows": len(ROWS),
        "callers": len(KEYS),
        "cells": len(cells),
        "cells_refused": sum(not _succeeded(c.observed) for c in cells),
        "mutating_refusals_checked_unchanged": sum(
            c.row.method != "GET" and not _succeeded(c.observed) for c in cells
        ),
        "mismatches": len(mismatches),
        "cross_tenant_successes": len(cross_tenant),
        "others_devices_not_404": len(not_404),
        "anonymous_successes_outside_public": len(anonymous),
        "refusals_that_changed_data": len(changed),
        "answers_leaking_foreign_ids": len(leaked),
        "server_errors": sum(c.observed.startswith("5") for c in cells),
        "differing_cells": [
            f"{c.row.method} {c.row.path} {c.row.note} as {c.caller}: expected {c.expected},"
            f" got {c.observed}: {c.answer!r}"
            for c in mismatches
        ],
    }
    FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
