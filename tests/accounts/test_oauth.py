"""POST /oauth/token: the client credentials grant and every RFC 6749 §5.2 error."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import make_app

pytestmark = pytest.mark.django_db


def _post(data: dict, **headers):
    """POST form-encoded, as OAuth clients do."""
    return APIClient().post(
        "/oauth/token", urlencode(data), content_type="application/x-www-form-urlencoded", **headers
    )


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def app_and_secret():
    return make_app()


def test_basic_auth_form_grant_answers_a_push_send_token(app_and_secret):
    app, secret = app_and_secret
    response = _post(
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=_basic(app.client_id, secret),
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "push:send"
    assert body["expires_in"] == settings.JWT_CLIENT_LIFETIME
    assert response["Cache-Control"] == "no-store"
    claims = jwt.decode(
        body["access_token"],
        settings.SIMPLE_JWT["SIGNING_KEY"],
        algorithms=["HS256"],
        issuer="keymaster",
    )
    assert claims["kind"] == "client" and claims["sub"] == app.client_id


def test_form_fields_authenticate_too(app_and_secret):
    app, secret = app_and_secret
    response = _post(
        {
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": secret,
            "scope": "push:send",
        },
    )
    assert response.status_code == 200


def test_json_body_is_accepted(app_and_secret):
    app, secret = app_and_secret
    response = APIClient().post(
        "/oauth/token",
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret},
        format="json",
    )
    assert response.status_code == 200


def test_wrong_secret_is_invalid_client_401_with_www_authenticate(app_and_secret):
    app, _ = app_and_secret
    response = _post(
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=_basic(app.client_id, "kms_wrong"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("client_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_client_is_invalid_client(client_id):
    response = _post(
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=_basic(client_id, "x"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_no_client_authentication_is_invalid_client():
    response = _post({"grant_type": "client_credentials"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_unknown_scope_is_invalid_scope(app_and_secret):
    app, secret = app_and_secret
    response = _post(
        {"grant_type": "client_credentials", "scope": "push:send admin"},
        HTTP_AUTHORIZATION=_basic(app.client_id, secret),
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": "Unknown scope: admin.",
    }


def test_other_grant_is_unsupported_grant_type(app_and_secret):
    app, secret = app_and_secret
    response = _post({"grant_type": "password"}, HTTP_AUTHORIZATION=_basic(app.client_id, secret))
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_missing_grant_type_is_invalid_request(app_and_secret):
    app, secret = app_and_secret
    response = _post({}, HTTP_AUTHORIZATION=_basic(app.client_id, secret))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_two_authentication_methods_is_invalid_request(app_and_secret):
    app, secret = app_and_secret
    response = _post(
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret},
        HTTP_AUTHORIZATION=_basic(app.client_id, secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_guessing_a_secret_is_throttled_in_the_database(app_and_secret, settings):
    settings.AUTH_THROTTLE_ATTEMPTS = 3
    app, secret = app_and_secret
    for _ in range(3):
        wrong = _post(
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=_basic(app.client_id, "kms_guess"),
        )
        assert wrong.status_code == 401
    # Even the right secret is refused now: the check is not even made.
    throttled = _post(
        {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=_basic(app.client_id, secret)
    )
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) >= 1
