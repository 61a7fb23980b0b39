"""POST /auth/token and /auth/token/refresh, and which token kinds each endpoint accepts."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from rest_framework.test import APIClient

from accounts.tokens import client_token_issue, user_tokens_issue
from tests.factories import PASSWORD, make_app, make_user

pytestmark = pytest.mark.django_db


def _claims(**override):
    now = int(time.time())
    claims = {
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": "x" * 32,
        "sub": "",
        "kind": "user",
        "iss": "keymaster",
    }
    claims.update(override)
    return claims


def _sign(claims, key=None, algorithm="HS256", headers=None):
    return jwt.encode(
        claims, key or settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=algorithm, headers=headers
    )


def _get_apps(token: str):
    return APIClient().get("/api/apps", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_email_and_password_give_access_and_refresh():
    user = make_user()
    response = APIClient().post(
        "/auth/token", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    assert _get_apps(response.json()["access"]).status_code == 200


def test_wrong_password_is_401_in_the_error_format():
    user = make_user()
    response = APIClient().post(
        "/auth/token", {"email": user.email, "password": "nope"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_missing_email_names_the_field():
    response = APIClient().post("/auth/token", {"password": "x"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "email" in error["fields"]
    assert error["message"].startswith("email:")


def test_password_guessing_is_throttled(settings):
    settings.AUTH_THROTTLE_ATTEMPTS = 2
    user = make_user()
    client = APIClient()
    for _ in range(2):
        client.post("/auth/token", {"email": user.email, "password": "guess"}, format="json")
    response = client.post(
        "/auth/token", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert "Retry-After" in response


def test_refresh_gives_a_new_access_token():
    tokens = user_tokens_issue(make_user())
    response = APIClient().post(
        "/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json"
    )
    assert response.status_code == 200
    assert _get_apps(response.json()["access"]).status_code == 200


def test_refresh_token_used_as_access_is_401():
    tokens = user_tokens_issue(make_user())
    assert _get_apps(tokens["refresh"]).status_code == 401


def test_client_token_on_a_user_endpoint_is_401():
    app, _ = make_app()
    token = client_token_issue(app, ["push:send"])["access_token"]
    response = _get_apps(token)
    assert response.status_code == 401
    assert "user token" in response.json()["error"]["message"]


def test_expired_token_is_401():
    user = make_user()
    token = _sign(_claims(sub=str(user.id), exp=int(time.time()) - 1))
    assert _get_apps(token).status_code == 401


def test_tampered_token_is_401():
    user = make_user()
    token = user_tokens_issue(user)["access"]
    header, payload, signature = token.split(".")
    tampered = ".".join(
        [header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")]
    )
    assert _get_apps(tampered).status_code == 401


def test_alg_none_is_401():
    user = make_user()
    token = jwt.encode(_claims(sub=str(user.id)), None, algorithm="none")
    assert _get_apps(token).status_code == 401


def test_wrong_key_is_401():
    user = make_user()
    assert _get_apps(_sign(_claims(sub=str(user.id)), key="another-key-" * 4)).status_code == 401


def test_rs256_token_is_refused_because_the_algorithm_is_pinned():
    user = make_user()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert (
        _get_apps(_sign(_claims(sub=str(user.id)), key=pem, algorithm="RS256")).status_code == 401
    )


def test_wrong_issuer_is_401():
    user = make_user()
    assert _get_apps(_sign(_claims(sub=str(user.id), iss="someone-else"))).status_code == 401


def test_token_without_kind_is_401():
    user = make_user()
    claims = _claims(sub=str(user.id))
    del claims["kind"]
    assert _get_apps(_sign(claims)).status_code == 401


def test_garbage_bearer_is_401_not_500():
    assert _get_apps("not.a.jwt").status_code == 401
    assert _get_apps("%%%").status_code == 401


def test_no_token_is_401():
    response = APIClient().get("/api/apps")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
