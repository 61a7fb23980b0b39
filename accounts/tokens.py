"""Every kind of token Keymaster issues, and the authentication classes that accept each kind.

All tokens are HS256 JWTs (algorithm pinned, issuer set and checked by simplejwt) that say what
they are in a `kind` claim:

- ``user``: a person (``sub`` = user id). A staff user's or an app admin's token is the guide's
  "admin JWT"; everyone's is the "user JWT" / "account JWT".
- ``client``: an app's backend after the client credentials grant (``sub`` = client_id, with
  ``scope``). Only accepted where an app acts, never where a person does, and vice versa.

A person's tokens also carry ``pwd``, a stamp of their password (Django's session auth hash,
an HMAC of the password hash): changing the password, by any path, makes every token issued
before it fail, at no cost (the user row is loaded anyway). Refresh tokens are single-use: each
exchange revokes the one presented (`RevokedToken`), and a logout revokes its token.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, Token

from accounts.models import App, RevokedToken, User

KIND_USER = "user"
KIND_CLIENT = "client"
SCOPE_PUSH_SEND = "push:send"
KNOWN_SCOPES = frozenset({SCOPE_PUSH_SEND})


def _password_stamp(user: User) -> str:
    return user.get_session_auth_hash()[:32]


def user_tokens_issue(user: User) -> dict[str, str]:
    """Issue a user's access and refresh tokens."""
    refresh = RefreshToken.for_user(user)
    refresh["kind"] = KIND_USER
    refresh["pwd"] = _password_stamp(user)  # copied into the access token too
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def user_access_token_issue(user: User) -> str:
    """Issue a user's access token alone (the Account page's cookie)."""
    token = AccessToken.for_user(user)
    token["kind"] = KIND_USER
    token["pwd"] = _password_stamp(user)
    return str(token)


def _user_of(token: Token) -> User:
    """The active user a person's token names, if their password has not changed since."""
    try:
        user = User.objects.get(pk=token["sub"], is_active=True)
    except (User.DoesNotExist, KeyError, ValueError) as exc:
        raise exceptions.AuthenticationFailed("The token's user is unknown or inactive.") from exc
    if not constant_time_compare(str(token.get("pwd", "")), _password_stamp(user)):
        raise exceptions.AuthenticationFailed(
            "The token was issued before the user's password was changed; sign in again."
        )
    return user


def user_refresh_token_read(raw: str) -> Token:
    """Validate a person's refresh token (signature, expiry, kind); 401 otherwise."""
    try:
        token = RefreshToken(raw)
    except TokenError as exc:
        raise exceptions.AuthenticationFailed("The refresh token is invalid or expired.") from exc
    if token.get("kind") != KIND_USER:
        raise exceptions.AuthenticationFailed("This is not a person's refresh token.")
    return token


def token_revoke(token: Token) -> bool:
    """Revoke a person's token; False when it was revoked already."""
    expires_at = datetime.fromtimestamp(int(token["exp"]), tz=UTC)
    try:
        with transaction.atomic():
            RevokedToken.objects.create(jti=str(token["jti"]), expires_at=expires_at)
    except IntegrityError:
        return False
    return True


def token_is_revoked(token: Token) -> bool:
    return RevokedToken.objects.filter(jti=str(token.get("jti", ""))).exists()


def user_tokens_refresh(raw: str) -> dict[str, str]:
    """Exchange a refresh token, once, for a new access and refresh token."""
    token = user_refresh_token_read(raw)
    user = _user_of(token)
    # The insert is the check: of two uses of one token, however close, one fails here.
    if not token_revoke(token):
        raise exceptions.AuthenticationFailed(
            "The refresh token was already used or revoked; sign in again."
        )
    return user_tokens_issue(user)


def revoked_tokens_prune() -> int:
    """Delete revocations of tokens that have expired anyway."""
    deleted, _ = RevokedToken.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted


def client_token_issue(app: App, scopes: list[str]) -> dict[str, Any]:
    """Issue an app's client-credentials access token (RFC 6749 §4.4.3 answer)."""
    lifetime = timedelta(seconds=settings.JWT_CLIENT_LIFETIME)
    token = AccessToken()
    token.set_exp(lifetime=lifetime)
    token["sub"] = app.client_id
    token["kind"] = KIND_CLIENT
    token["scope"] = " ".join(scopes)
    return {
        "access_token": str(token),
        "token_type": "Bearer",
        "expires_in": int(lifetime.total_seconds()),
        "scope": " ".join(scopes),
    }


@dataclass(frozen=True)
class AppClient:
    """The caller behind a client token: an app's backend, with the scopes it was granted."""

    app: App
    scopes: frozenset[str]
    is_authenticated: bool = True
    is_staff: bool = False

    @property
    def pk(self) -> str:
        return self.app.client_id


class _KindAuthentication(JWTAuthentication):
    """A bearer JWT of one kind only: any other kind, however valid, is a 401."""

    kind = ""

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        header = self.get_header(request)
        if header is None:
            return None
        raw = self.get_raw_token(header)
        if raw is None:
            return None
        return self.authenticate_raw(raw)

    def authenticate_raw(self, raw: bytes) -> tuple[Any, Token]:
        try:
            token = self.get_validated_token(raw)
        except (InvalidToken, TokenError) as exc:
            raise exceptions.AuthenticationFailed("The token is invalid or expired.") from exc
        if token.get("kind") != self.kind:
            raise exceptions.AuthenticationFailed(
                f"This endpoint needs a {self.kind} token; a {token.get('kind')} token was sent."
            )
        return self.principal(token), token

    def principal(self, token: Token) -> Any:
        raise NotImplementedError


class UserTokenAuthentication(_KindAuthentication):
    """A person's access token, from `Authorization: Bearer`."""

    kind = KIND_USER

    def principal(self, token: Token) -> User:
        return _user_of(token)


class ClientTokenAuthentication(_KindAuthentication):
    """An app backend's client-credentials token, from `Authorization: Bearer`."""

    kind = KIND_CLIENT

    def __init__(self, load: Callable[[Any], App] | None = None) -> None:
        super().__init__()
        # A view that needs more of the app than its row (related rows) loads it its own way;
        # `load` takes the token's app id and raises App.DoesNotExist or ValueError.
        self.load = load or _app_by_id

    def principal(self, token: Token) -> AppClient:
        try:
            app = self.load(token["sub"])
        except (App.DoesNotExist, KeyError, ValueError) as exc:
            raise exceptions.AuthenticationFailed("The token's app is unknown.") from exc
        # Rotating the secret revokes the tokens it granted: a leaked secret's tokens die with
        # it. `iat` has whole seconds, so only tokens from before the rotation's second fail.
        if int(token.get("iat", 0)) < int(app.secret_rotated_at.timestamp()):
            raise exceptions.AuthenticationFailed(
                "The token was issued before the app's client secret was rotated."
            )
        return AppClient(app=app, scopes=frozenset(str(token.get("scope", "")).split()))


def _app_by_id(app_id: Any) -> App:
    return App.objects.get(app_id=uuid.UUID(str(app_id)))


class CookieTokenAuthentication(UserTokenAuthentication):
    """A person's access token from the `access_token` cookie, CSRF-checked like a session."""

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        raw = request.COOKIES.get(settings.ACCESS_TOKEN_COOKIE)
        if not raw:
            return None
        result = self.authenticate_raw(raw.encode())
        # The cookie belongs to a signed-in session: signing out revokes it. One query, for the
        # few endpoints a cookie may call.
        if token_is_revoked(result[1]):
            raise exceptions.AuthenticationFailed("The session was signed out; sign in again.")
        _enforce_csrf(request)
        return result

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: Any, reason: str) -> Any:  # return the reason, not a page
        return reason


def _enforce_csrf(request: Request) -> None:
    # The same check SessionAuthentication makes: a cookie travels with cross-site requests.
    check = _CsrfCheck(lambda req: None)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise exceptions.PermissionDenied(f"CSRF failed: {reason}")


class AnyTokenAuthentication(_KindAuthentication):
    """A user or a client token, for endpoints both kinds may call (device removal)."""

    def authenticate_raw(self, raw: bytes) -> tuple[Any, Token]:
        try:
            token = self.get_validated_token(raw)
        except (InvalidToken, TokenError) as exc:
            raise exceptions.AuthenticationFailed("The token is invalid or expired.") from exc
        kinds = {KIND_USER: UserTokenAuthentication, KIND_CLIENT: ClientTokenAuthentication}
        if token.get("kind") not in kinds:
            raise exceptions.AuthenticationFailed("The token does not say what kind it is.")
        return kinds[token["kind"]]().principal(token), token
