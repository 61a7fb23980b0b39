"""OpenAPI security schemes for each kind of token (loaded by AccountsConfig.ready)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class UserTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.tokens.UserTokenAuthentication"
    name = "userJWT"
    priority = 1

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A person's access token from POST /auth/token (admin JWT for admins).",
        }


class ClientTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.tokens.ClientTokenAuthentication"
    name = "clientJWT"

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201
        return {
            "type": "oauth2",
            "description": "An app backend's token from the client credentials grant.",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "/oauth/token",
                    "scopes": {"push:send": "send notifications and manage the app's devices"},
                }
            },
        }


class CookieTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.tokens.CookieTokenAuthentication"
    name = "accessTokenCookie"
    priority = 2

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201
        return {"type": "apiKey", "in": "cookie", "name": "access_token"}


class AnyTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.tokens.AnyTokenAuthentication"
    name = "userOrClientJWT"

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A user token, or an app client token with push:send.",
        }
