"""Secrets at rest and in logs: a full run, then every raw row, log record and error answer.

The run goes through real HTTP (pytest-django's live server): an app made by the admin API,
push enabled (webhook secret and VAPID key provisioned), an FCM service account uploaded in the
Console, FCM tokens and Web Push subscriptions registered, client tokens from /oauth/token,
sends, deliveries through the real transports into the fakes (by a real `qcluster` worker on
PostgreSQL), receipts to the webhook, secret rotations, and wrong guesses. Every logger is at
DEBUG (SQL with its parameters included), the worker's too. Then every table is read raw and
searched, with the logs and the error answers, for each secret in every common encoding.
Figures go to artifacts/reliability/secrets.json.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets as random
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from django_q.models import OrmQ
from standardwebhooks.webhooks import Webhook

from accounts.models import User
from push.models import DELIVERY_FINAL, AuditEvent, Delivery, PushConfig, Receipt
from tests.drain import drain
from tests.figures import figures_record
from tests.security import leaks
from tests.security.debuglogs import Collector, every_logger_at_debug, read_worker_log
from tests.workers import wait_until, worker_env, worker_start

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Api:
    """Calls to the live server that keep every error answer (status, headers and body)."""

    base: str
    errors: list[str] = field(default_factory=list)

    def call(
        self, method: str, path: str, expect: int, *, token: str = "", session=None, **kwargs
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = (session or requests).request(
            method, self.base + path, headers=headers, timeout=30, allow_redirects=False, **kwargs
        )
        if response.status_code >= 400:
            self.errors.append(
                f"{method} {path} {response.status_code} {dict(response.headers)} {response.text}"
            )
        assert response.status_code == expect, (method, path, response.status_code, response.text)
        return response


@dataclass
class Run:
    api: Api
    secrets: leaks.Secrets
    # Sessions keys are a credential too, but Django's database sessions keep them as the
    # primary key: searched for in logs and answers only (SECURITY.md says so).
    logs_only: leaks.Secrets
    app_id: str = ""


def _fcm_token() -> str:
    return f"{random.token_urlsafe(16)}:APA91b{random.token_urlsafe(96)}"


def _login(run: Run, email: str, password: str) -> dict[str, str]:
    tokens = run.api.call("POST", "/auth/token", 200, json={"email": email, "password": password})
    tokens = tokens.json()
    run.secrets.add_jwt(f"access JWT of {email}", tokens["access"])
    run.secrets.add_jwt(f"refresh JWT of {email}", tokens["refresh"])
    return tokens


def _person(run: Run, *, staff: bool = False) -> tuple[User, str]:
    password = random.token_urlsafe(18)
    user = User.objects.create_user(f"{random.token_hex(4)}@example.com", password, is_staff=staff)
    run.secrets.add(f"password of {user.email}", password)
    return user, password


def _admin_setup(run: Run, providers: dict) -> tuple[User, str, str]:
    """Staff signs in, makes the app and enables push; return staff, password, admin JWT."""
    api = run.api
    staff, password = _person(run, staff=True)
    wrong = random.token_urlsafe(18)
    run.secrets.add("a wrong password", wrong)
    api.call("POST", "/auth/token", 401, json={"email": staff.email, "password": wrong})
    admin = _login(run, staff.email, password)
    refreshed = api.call("POST", "/auth/token/refresh", 200, json={"refresh": admin["refresh"]})
    run.secrets.add_jwt("refreshed admin JWT", refreshed.json()["access"])
    app = api.call("POST", "/api/apps", 201, token=admin["access"], json={"name": "Leak test"})
    run.app_id = app.json()["app_id"]
    run.secrets.add("client secret", app.json()["client_secret"])
    config = api.call(
        "PATCH",
        f"/push/config/{run.app_id}",
        200,
        token=admin["access"],
        json={"enabled": True, "webhook_url": f"{providers['webhook'].url}/hooks/receipts"},
    ).json()
    _add_webhook_secret(run, "webhook secret", config["webhook_secret"])
    stored = PushConfig.objects.get(app_id=run.app_id)
    run.secrets.add_pem_key("VAPID private key", stored.vapid_private_key)
    keymaster_account = json.loads(Path(settings.FCM_CREDENTIALS_FILE).read_text())
    run.secrets.add_pem_key("Keymaster's FCM private key", keymaster_account["private_key"])
    return staff, password, admin["access"]


def _add_webhook_secret(run: Run, name: str, secret: str) -> None:
    run.secrets.add(name, secret)
    run.secrets.add(f"{name} (key bytes)", base64.b64decode(secret.removeprefix("whsec_")))


def _console(run: Run, providers: dict, staff: User, password: str) -> requests.Session:
    """Sign in to the Console, upload the app's FCM service account, reveal and rotate."""
    api, browser = run.api, requests.Session()
    api.call("GET", "/login", 200, session=browser)
    form = {"username": staff.email, "password": password}
    form["csrfmiddlewaretoken"] = browser.cookies["csrftoken"]
    api.call("POST", "/login", 302, session=browser, data=form)
    run.secrets.add_jwt("access_token cookie", browser.cookies["access_token"])
    run.logs_only.add("Console session key", browser.cookies["sessionid"])
    tab = f"/console/apps/{run.app_id}/settings/"
    account = providers["fcm"].service_account("leak-test-project")
    run.secrets.add_pem_key("app's FCM service account private key", account["private_key"])

    def post(path: str, **kwargs) -> None:
        data = {"csrfmiddlewaretoken": browser.cookies["csrftoken"], **kwargs.pop("data", {})}
        api.call("POST", tab + path, 302, session=browser, data=data, **kwargs)

    post("fcm", files={"file": ("service-account.json", json.dumps(account))})
    post("webhook-secret/reveal")
    api.call("GET", tab, 200, session=browser)
    post("webhook-secret/rotate")
    _add_webhook_secret(
        run, "rotated webhook secret", PushConfig.objects.get(app_id=run.app_id).webhook_secret
    )
    return browser


def _devices(run: Run, providers: dict, admin: str) -> dict:
    """Two people enrolled; FCM tokens and Web Push subscriptions registered; bad ones refused."""
    api, people = run.api, {}
    vapid_public_key = PushConfig.objects.get(app_id=run.app_id).vapid_public_key
    for name in ("a", "b"):
        user, password = _person(run)
        path = f"/api/apps/{run.app_id}/enrollments"
        api.call("POST", path, 202, token=admin, json={"email": user.email})
        access = _login(run, user.email, password)["access"]
        people[name] = {"user": user, "password": password, "access": access}
    register = "/push/devices/register"
    a_token, b_token = _fcm_token(), _fcm_token()
    dead_token = "unregistered-" + random.token_urlsafe(40)
    for name, token, platform in (
        ("a", a_token, "android"),
        ("b", b_token, "ios"),
        ("b", dead_token, "ios"),
    ):
        run.secrets.add(f"FCM token ({platform}, {name})", token)
        body = {"app_id": run.app_id, "platform": platform, "push_token": token}
        api.call("POST", register, 201, token=people[name]["access"], json=body)
    body = {"app_id": run.app_id, "platform": "android", "push_token": a_token}
    api.call("POST", register, 200, token=people["a"]["access"], json=body)
    for name in ("a", "b"):
        subscription = providers["webpush"].new_subscription(vapid_public_key)
        _add_subscription(run, f"Web Push subscription of {name}", subscription)
        if name == "a":
            body = {"app_id": run.app_id, "platform": "web", "push_token": subscription}
            api.call("POST", register, 201, token=people[name]["access"], json=body)
        else:  # the second seed's endpoint, string keys and all
            body = {**subscription, "app_id": run.app_id}
            api.call("POST", "/push/subscribe", 200, token=people[name]["access"], json=body)
    _refused_registrations(run, people["a"]["access"])
    return people


def _add_subscription(run: Run, name: str, subscription: dict) -> None:
    run.secrets.add(f"{name}: endpoint", subscription["endpoint"])
    run.secrets.add(f"{name}: endpoint path", subscription["endpoint"].rsplit("/", 1)[1])
    run.secrets.add_b64url_bytes(f"{name}: p256dh", subscription["keys"]["p256dh"])
    run.secrets.add_b64url_bytes(f"{name}: auth", subscription["keys"]["auth"])


def _refused_registrations(run: Run, access: str) -> None:
    """Bad tokens are refused naming the field, without repeating what was sent."""
    bad_point = base64.urlsafe_b64encode(b"\x04" + os.urandom(64)).rstrip(b"=").decode()
    auth = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    path = random.token_urlsafe(24)
    refused = {
        "endpoint": f"https://push.example.net/{path}",
        "keys": {"p256dh": bad_point, "auth": auth},
    }
    spaced = "fcm token with a space " + random.token_urlsafe(32)
    run.secrets.add("refused subscription: endpoint path", path)
    run.secrets.add("refused subscription: auth", auth)
    run.secrets.add("refused FCM token", spaced)
    for platform, token in (("web", refused), ("android", spaced)):
        body = {"app_id": run.app_id, "platform": platform, "push_token": token}
        answer = run.api.call("POST", "/push/devices/register", 400, token=access, json=body)
        assert answer.json()["error"]["fields"]


def _client_token(run: Run, secret: str, name: str) -> str:
    form = {"grant_type": "client_credentials"}
    answer = run.api.call("POST", "/oauth/token", 200, auth=(run.app_id, secret), data=form)
    run.secrets.add_jwt(name, answer.json()["access_token"])
    return answer.json()["access_token"]


def _sends(run: Run, people: dict, browser: requests.Session) -> None:
    api, client_secret = run.api, run.secrets.items["client secret"]
    wrong = random.token_urlsafe(32)
    run.secrets.add("a wrong client secret", wrong)
    form = {"grant_type": "client_credentials"}
    api.call("POST", "/oauth/token", 401, auth=(run.app_id, wrong), data=form)
    token = _client_token(run, client_secret, "client token")
    a, b = str(people["a"]["user"].id), str(people["b"]["user"].id)
    message = {"title": "Shift", "body": "Starts soon", "data": {"route": "/schedule"}}
    api.call("POST", "/push/send", 202, token=token, json={"user_id": a, **message})
    headers = {"Idempotency-Key": "leak-test-1"}
    body = {"user_ids": [a, b], **message}
    api.call("POST", "/push/send/bulk", 202, token=token, json=body, headers=headers)
    tab = f"/console/apps/{run.app_id}/notifications/test"
    test_send = {"email": people["b"]["user"].email, "title": "Test", "body": "From the Console"}
    test_send["csrfmiddlewaretoken"] = browser.cookies["csrftoken"]
    api.call("POST", tab, 302, session=browser, data=test_send)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    run.secrets.add_jwt("tampered client token", tampered)
    api.call("POST", "/push/send", 401, token=tampered, json={"user_id": a, **message})


def _deliver(run: Run, providers: dict, logs_dir: str) -> str | None:
    """Deliver everything queued: a real worker on PostgreSQL, else in this process."""
    if connection.vendor != "postgresql":
        drain()  # the SQLite test database lives in this process's memory: no second process
        return None
    env = worker_env(
        {
            "FCM_CREDENTIALS_FILE": settings.FCM_CREDENTIALS_FILE,
            "FCM_API_URL": settings.FCM_API_URL,
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "PUSH_SEND_TIMEOUT": "5",
        }
    )
    log_path = os.path.join(logs_dir, "worker.log")
    worker = worker_start(env, log_path, "-m", "tests.security.debuglogs")
    try:
        wait_until(_all_done, 60, "the worker to deliver and receipt everything")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # its work is done; nothing is left to lose
        worker.wait(10)
    return log_path


def _all_done() -> bool:
    deliveries_done = not Delivery.objects.exclude(status__in=DELIVERY_FINAL).exists()
    receipts_done = not Receipt.objects.filter(status__in=["pending", "sending"]).exists()
    return deliveries_done and receipts_done and not OrmQ.objects.exists()


def _check_delivered(run: Run, providers: dict) -> None:
    """The run did deliver: FCM and Web Push messages arrived, receipts verify."""
    assert len([m for m in providers["fcm"].messages if ":APA91b" in m.get("token", "")]) == 4
    pushes = providers["webpush"].received()
    assert len(pushes) == 4
    for push in pushes:
        vapid = re.search(r"t=([^,\s]+)", push.headers["authorization"]).group(1)
        run.secrets.add_jwt("a VAPID JWT", vapid)
    receipts = providers["webhook"].received("/hooks/receipts")
    # 2 sends to a (android, web), 2 to b (ios, the dead ios, web): the dead one is invalid
    # for both (it is removed when the worker runs, after both were queued).
    assert len(receipts) == Delivery.objects.count() == 10
    secret = run.secrets.items["rotated webhook secret"]
    for receipt in receipts:
        Webhook(secret).verify(receipt.body, receipt.headers)
    statuses = [json.loads(r.body)["status"] for r in receipts]
    # The dead token's second delivery finds its device removed by the first, or races it.
    assert statuses.count("delivered") == 8 and "invalid_token" in statuses


def _afterwards(run: Run, people: dict, admin: str, browser: requests.Session) -> None:
    """Rotate the client secret, manage devices, sign out of the Console, into the Account."""
    api, old = run.api, run.secrets.items["client secret"]
    path = f"/api/apps/{run.app_id}/rotate-secret"
    new = api.call("POST", path, 200, token=admin).json()["client_secret"]
    run.secrets.add("rotated client secret", new)
    form = {"grant_type": "client_credentials", "client_id": run.app_id, "client_secret": old}
    api.call("POST", "/oauth/token", 401, data=form)
    form["client_secret"] = new
    token = api.call("POST", "/oauth/token", 200, data=form).json()["access_token"]
    run.secrets.add_jwt("client token after rotation", token)
    mine = api.call("GET", "/account/devices", 200, token=people["a"]["access"]).json()
    device_id = mine["apps"][0]["devices"][0]["device_id"]
    api.call("DELETE", f"/push/devices/{device_id}", 404, token=people["b"]["access"])
    api.call("DELETE", f"/push/devices/{device_id}", 204, token=people["a"]["access"])
    data = {"csrfmiddlewaretoken": browser.cookies["csrftoken"]}
    api.call("POST", "/logout", 302, session=browser, data=data)
    # Someone stays signed in to the Account page: a session row is left to read.
    account = requests.Session()
    api.call("GET", "/login", 200, session=account)
    a = people["a"]
    form = {"username": a["user"].email, "password": a["password"]}
    form["csrfmiddlewaretoken"] = account.cookies["csrftoken"]
    api.call("POST", "/login", 302, session=account, data=form)
    api.call("GET", "/account", 200, session=account)
    run.secrets.add_jwt("Account page access_token cookie", account.cookies["access_token"])
    run.logs_only.add("Account page session key", account.cookies["sessionid"])


def _planted_are_found(run: Run, collector: Collector, app_id: str) -> int:
    """Plant secrets, encoded, in a row and a log record: the scanner must find each."""
    items = run.secrets.items
    token = next(value for name, value in items.items() if name.startswith("FCM token (android"))
    pem = items["app's FCM service account private key (PEM)"]
    auth = next(value for name, value in items.items() if name.endswith(": auth (decoded)"))
    planted = {
        "plain": items["rotated webhook secret"],
        "json": pem,  # the JSON column escapes its newlines
        "b64": base64.b64encode(b'{"t": "' + token.encode() + b'"}').decode(),
        "hex": auth.hex(),
    }
    AuditEvent.objects.create(app_id=app_id, action="planted", detail=planted)
    unknown_jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0." + random.token_urlsafe(32)
    with every_logger_at_debug(collector):
        planter = logging.getLogger("push.planted")
        planter.info("planted %s", base64.urlsafe_b64encode(auth).decode())
        planter.debug("planted", extra={"httpRequest": {"body": {"assertion": unknown_jwt}}})

    table_corpus, _ = leaks.raw_tables()
    in_tables = {(f.secret, f.form) for f in leaks.scan(table_corpus, run.secrets)}
    log_corpus = leaks.Corpus()
    log_corpus.extend("log record", collector.lines[-2:])
    in_logs = {(f.secret, f.form) for f in leaks.scan(log_corpus, run.secrets)}
    auth_name = next(name for name in items if name.endswith(": auth (decoded)"))
    token_name = next(name for name in items if name.startswith("FCM token (android"))
    expected_in_tables = {
        ("rotated webhook secret", "plain"),
        ("a webhook secret", "shape"),
        ("app's FCM service account private key (PEM)", "json-escaped"),
        ("app's FCM service account private key (PEM line 3)", "plain"),
        ("a pem private key", "shape"),
        # Inside a base64 blob the token starts 7 bytes in: found at that alignment.
        (token_name, "base64+1"),
        (auth_name, "hex"),
    }
    assert expected_in_tables <= in_tables, expected_in_tables - in_tables
    # The auth secret's base64url is how the subscription carried it: found under that name.
    expected_in_logs = {(auth_name.removesuffix(" (decoded)"), "plain"), ("a jwt", "shape")}
    assert expected_in_logs <= in_logs, expected_in_logs - in_logs
    return len(in_tables) + len(in_logs)


def test_a_full_run_leaves_no_secret_in_the_tables_the_logs_or_the_error_answers(
    live_server, providers, settings
):
    settings.DEBUG = True  # SQL statements are logged (with their parameters) only in DEBUG
    run = Run(Api(live_server.url), leaks.Secrets(), leaks.Secrets())
    collector = Collector()
    with tempfile.TemporaryDirectory() as logs_dir:
        with every_logger_at_debug(collector):
            staff, password, admin = _admin_setup(run, providers)
            browser = _console(run, providers, staff, password)
            people = _devices(run, providers, admin)
            _sends(run, people, browser)
            worker_log = _deliver(run, providers, logs_dir)
            _afterwards(run, people, admin, browser)
        worker_lines = read_worker_log(worker_log) if worker_log else []
    _check_delivered(run, providers)

    tables, rows = leaks.raw_tables()
    blobs = leaks.decoded_blobs()
    logs = leaks.Corpus()
    logs.extend("log record", collector.lines)
    logs.extend("worker log line", worker_lines)
    answers = leaks.Corpus()
    answers.extend("error answer", run.api.errors)
    everything = leaks.Secrets({**run.secrets.items, **run.logs_only.items})
    not_sql = leaks.Corpus()
    for where, text in zip(logs.wheres, logs.texts, strict=True):
        if not text.startswith("django.db.backends "):
            not_sql.add(where, text)
    findings = (
        leaks.scan(tables, run.secrets)
        + leaks.scan(blobs, run.secrets)
        + leaks.scan(logs, run.secrets)
        + leaks.scan(not_sql, run.logs_only)
        + leaks.scan(answers, everything)
    )
    assert not findings, "\n".join(map(str, findings))
    # The run did log, through every layer a secret could leak from, and did fail where meant to.
    loggers = {line.split(" ", 1)[0] for line in collector.lines}
    for name in ("django.db.backends", "django.request", "django-q", "push."):
        assert any(logger.startswith(name) for logger in loggers), (name, sorted(loggers))
    assert len(run.api.errors) == 7
    assert len(blobs) >= 1  # the Account page's session, decoded
    if worker_log:
        assert any("push.delivery.deliveries" in line for line in worker_lines)

    planted_found = _planted_are_found(run, collector, run.app_id)
    figures_record(
        "secrets",
        "scan",
        {
            "database": connection.vendor,
            "tables_scanned": len(rows),
            "rows_scanned": sum(rows.values()),
            "cells_scanned": len(tables),
            "decoded_blobs_scanned": len(blobs),
            "log_records_scanned": len(collector.lines),
            "worker_log_lines_scanned": len(worker_lines),
            "error_answers_scanned": len(run.api.errors),
            "secrets_searched": len(everything.items),
            "encoded_forms_searched": len(everything.needles()),
            "secret_shapes_searched": len(leaks.SHAPES),
            "plaintext_found": len(findings),
            "self_check_planted_forms_found": planted_found,
        },
    )
