"""Tokens die with a password change, refresh tokens are single-use, sign-out revokes (#22)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.services import user_password_set
from accounts.tokens import user_tokens_issue
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-new-and-long-passphrase-7"


def _apps(access: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/apps").status_code


def _refresh(refresh: str):
    return APIClient().post("/auth/token/refresh", {"refresh": refresh}, format="json")


def _cookie_call(cookie: str) -> int:
    """An endpoint that takes the cookie: 400 (empty body) once authenticated, 401 otherwise."""
    client = APIClient(enforce_csrf_checks=True)
    client.cookies["access_token"] = cookie
    client.cookies["csrftoken"] = "a" * 32
    return client.post("/push/subscribe", {}, format="json", HTTP_X_CSRFTOKEN="a" * 32).status_code


def test_a_password_change_revokes_earlier_access_and_refresh_tokens():
    user = make_user()
    before = user_tokens_issue(user)
    assert _apps(before["access"]) == 200
    user_password_set(user=user, password=NEW_PASSWORD)
    assert _apps(before["access"]) == 401
    assert _refresh(before["refresh"]).status_code == 401
    after = user_tokens_issue(user)
    assert _apps(after["access"]) == 200


def test_a_password_change_in_the_django_admin_revokes_the_users_tokens():
    staff = make_user(staff=True)
    staff.is_superuser = True
    staff.save()
    person = make_user()
    tokens = user_tokens_issue(person)
    admin = Client()
    admin.force_login(staff)
    response = admin.post(
        f"/admin/accounts/user/{person.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _apps(tokens["access"]) == 401
    assert _refresh(tokens["refresh"]).status_code == 401


def test_a_password_change_revokes_the_account_page_cookie():
    user = make_user()
    browser = Client()
    assert browser.post("/login", {"username": user.email, "password": PASSWORD}).status_code == 302
    cookie = browser.cookies["access_token"].value
    assert _cookie_call(cookie) == 400
    user_password_set(user=user, password=NEW_PASSWORD)
    assert _cookie_call(cookie) == 401


def test_refresh_tokens_rotate_and_a_used_one_is_refused():
    first = user_tokens_issue(make_user())["refresh"]
    exchanged = _refresh(first)
    assert exchanged.status_code == 200
    second = exchanged.json()["refresh"]
    assert second != first
    assert _apps(exchanged.json()["access"]) == 200
    replay = _refresh(first)
    assert replay.status_code == 401
    assert "already used" in replay.json()["error"]["message"]
    assert _refresh(second).status_code == 200


def test_revoking_a_refresh_token_signs_out():
    refresh = user_tokens_issue(make_user())["refresh"]
    response = APIClient().post("/auth/token/revoke", {"refresh": refresh}, format="json")
    assert response.status_code == 204
    assert _refresh(refresh).status_code == 401


def test_revoke_refuses_what_is_not_a_refresh_token():
    tokens = user_tokens_issue(make_user())
    response = APIClient().post("/auth/token/revoke", {"refresh": tokens["access"]}, format="json")
    assert response.status_code == 401
    # Refused, so nothing was revoked: the session's tokens still work.
    assert _apps(tokens["access"]) == 200
    assert _refresh(tokens["refresh"]).status_code == 200


def test_signing_out_revokes_the_sessions_cookie_token():
    user = make_user()
    browser = Client()
    browser.post("/login", {"username": user.email, "password": PASSWORD})
    stolen = browser.cookies["access_token"].value
    assert _cookie_call(stolen) == 400
    assert browser.post("/logout").status_code == 302
    assert _cookie_call(stolen) == 401


def test_the_bearer_check_costs_no_query_beyond_loading_the_user():
    access = user_tokens_issue(make_user())["access"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/apps").status_code == 200
    sql = [query["sql"] for query in queries.captured_queries]
    assert sum('FROM "accounts_user"' in q for q in sql) == 1, sql
    assert not any("revokedtoken" in q for q in sql), sql


def test_expired_revocations_are_pruned():
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import RevokedToken
    from push.tasks import prune

    RevokedToken.objects.create(jti="old", expires_at=timezone.now() - timedelta(seconds=1))
    RevokedToken.objects.create(jti="live", expires_at=timezone.now() + timedelta(hours=1))
    assert prune()["revoked_tokens"] == 1
    assert list(RevokedToken.objects.values_list("jti", flat=True)) == ["live"]


@pytest.mark.django_db(transaction=True)
def test_one_refresh_token_used_twenty_times_at_once_is_exchanged_once(live_server):
    import httpx

    from tests.concurrency import burst_url, concurrently

    url = burst_url(live_server)
    refresh = user_tokens_issue(make_user())["refresh"]

    def exchange(_: int) -> int:
        body = {"refresh": refresh}
        return httpx.post(f"{url}/auth/token/refresh", json=body, timeout=30).status_code

    statuses = concurrently(20, exchange)
    assert sorted(statuses) == [200] + [401] * 19
