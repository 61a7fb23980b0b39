"""`POST /oauth/token`: the OAuth 2.0 client credentials grant (RFC 6749 §4.4).

Errors use RFC 6749 §5.2's own JSON (``{"error", "error_description"}``), not Keymaster's error
format: OAuth client libraries parse exactly that shape.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    parser_classes,
    permission_classes,
)
from rest_framework.parsers import FormParser
from rest_framework.request import Request

from accounts.models import App
from accounts.throttles import client_address, client_subject, guess_throttled
from accounts.tokens import KNOWN_SCOPES, SCOPE_PUSH_SEND, client_token_issue
from keymaster.errors import TooManyRequests
from keymaster.openapi import errors_in_own_format
from keymaster.parsers import StrictJSONParser


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def _credentials(request: Request) -> tuple[str, str]:
    """Return (client_id, client_secret) from HTTP Basic or the body (§2.3.1)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    body_id, body_secret = request.data.get("client_id"), request.data.get("client_secret")
    if header[:6].lower() == "basic ":
        if body_id or body_secret:
            raise OAuthError("invalid_request", "Use one client authentication method, not two.")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            client_id, _, secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_client", "Malformed HTTP Basic credentials.", 401) from None
        # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
    if not body_id or not body_secret:
        raise OAuthError("invalid_client", "Client authentication is required.", 401)
    if not isinstance(body_id, str) or not isinstance(body_secret, str):
        raise OAuthError("invalid_request", "client_id and client_secret must be strings.")
    return body_id, body_secret


def _form(request: Request) -> Mapping[str, Any]:
    """The request's parameters, or invalid_request (§5.2) for a body that does not hold any."""
    try:
        data = request.data
    except (exceptions.ParseError, exceptions.UnsupportedMediaType) as exc:
        raise OAuthError("invalid_request", str(exc.detail)) from None
    except exceptions.ValidationError as exc:  # a JSON string value the parser refused
        raise OAuthError("invalid_request", f"Unusable text in the body: {exc.detail}") from None
    if not isinstance(data, Mapping):
        raise OAuthError("invalid_request", "The body must be a form or a JSON object.")
    return data


def _scopes(request: Request) -> list[str]:
    raw = request.data.get("scope", SCOPE_PUSH_SEND)
    if not isinstance(raw, str):
        raise OAuthError("invalid_request", "scope must be a space-separated string.")
    scopes = sorted(set(raw.split())) or [SCOPE_PUSH_SEND]
    unknown = [scope for scope in scopes if scope not in KNOWN_SCOPES]
    if unknown:
        raise OAuthError("invalid_scope", f"Unknown scope: {' '.join(unknown)}.")
    return scopes


def _app_with_secret(client_id: str, secret: str) -> App | None:
    try:
        app = App.objects.get(app_id=uuid.UUID(client_id))
    except (ValueError, App.DoesNotExist):
        return None
    return app if app.check_client_secret(secret) else None


def _authenticate(client_id: str, secret: str, address: str) -> App:
    subject = client_subject(client_id)
    app = guess_throttled(subject, address, lambda: _app_with_secret(client_id, secret))
    if app is None:
        raise OAuthError("invalid_client", "Unknown client or wrong client secret.", 401)
    return app


def _answer(payload: dict[str, Any], status: int = 200, **headers: str) -> JsonResponse:
    response = JsonResponse(payload, status=status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


_CREDENTIALS_REQUEST = inline_serializer(
    "ClientCredentialsRequest",
    {
        "grant_type": serializers.ChoiceField(["client_credentials"]),
        "scope": serializers.CharField(required=False, help_text="default push:send"),
        "client_id": serializers.CharField(required=False),
        "client_secret": serializers.CharField(required=False),
    },
)


@extend_schema(
    summary="Get an app access token (client credentials grant)",
    tags=["tokens"],
    auth=[],
    request={
        "application/x-www-form-urlencoded": _CREDENTIALS_REQUEST,
        "application/json": _CREDENTIALS_REQUEST,
    },
    responses={
        200: inline_serializer(
            "ClientCredentialsToken",
            {
                "access_token": serializers.CharField(),
                "token_type": serializers.CharField(),
                "expires_in": serializers.IntegerField(),
                "scope": serializers.CharField(),
            },
        ),
        400: inline_serializer(
            "OAuthError",
            {"error": serializers.CharField(), "error_description": serializers.CharField()},
        ),
        401: inline_serializer(
            "OAuthClientError",
            {"error": serializers.CharField(), "error_description": serializers.CharField()},
        ),
        429: inline_serializer(
            "OAuthTooManyRequests",
            {"error": serializers.CharField(), "error_description": serializers.CharField()},
        ),
    },
    examples=[OpenApiExample("form", value={"grant_type": "client_credentials"})],
)
@errors_in_own_format
@csrf_exempt
@api_view(["POST"])
@authentication_classes([])
@permission_classes([])
@parser_classes([FormParser, StrictJSONParser])
def oauth_token(request: Request) -> JsonResponse:
    """Exchange an app's client_id and client_secret for a `push:send` access token."""
    try:
        grant = _form(request).get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "grant_type is required.")
        if grant != "client_credentials":
            raise OAuthError("unsupported_grant_type", f"Unsupported grant_type: {grant}.")
        client_id, secret = _credentials(request)
        scopes = _scopes(request)
        app = _authenticate(client_id, secret, client_address(request))
    except OAuthError as exc:
        headers = {}
        if exc.status == 401:
            headers["WWW_Authenticate"] = 'Basic realm="keymaster"'
        return _answer(
            {"error": exc.error, "error_description": exc.description}, exc.status, **headers
        )
    except TooManyRequests as exc:
        return _answer(
            {"error": "too_many_requests", "error_description": exc.message},
            429,
            Retry_After=str(exc.retry_after),
        )
    return _answer(client_token_issue(app, scopes))
