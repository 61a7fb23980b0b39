"""The OpenAPI side of the one error format: every error an operation can answer is documented.

`KeymasterAutoSchema` adds the errors every operation of a kind can answer (400 for input, 401
for a token, 404 for a path id, 413/415 for a body); views add the rest with `errors(...)`
(a 403 for a missing scope, a 422, a 429). The schemathesis fuzz test
(tests/security/test_fuzz.py) holds the schema to what the server really answers.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

ERROR_DESCRIPTIONS = {
    400: "Invalid input (`validation_error`, with `fields` naming each bad field) or an "
    "unparseable body (`parse_error`).",
    401: "No token, or one that is invalid, expired, revoked or of the wrong kind.",
    403: "The token is valid but may not do this (a missing scope, push disabled, a user not "
    "enrolled, a failed CSRF check).",
    404: "No such object, or not one the caller may see.",
    409: "The object already exists.",
    413: "The request body is too large (`payload_too_large`).",
    415: "The body is not in a supported media type (`unsupported_media_type`).",
    422: "The Idempotency-Key was used before with another body (`idempotency_key_reused`).",
    429: "A limit was reached (`rate_limited`, `quota_exceeded`); retry after `Retry-After` "
    "seconds.",
}
RESPONSE_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": "The authentication scheme to use (Bearer).",
        }
    },
    429: {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
            "description": "Seconds until the limit resets.",
        }
    },
}


class ErrorDetailOut(serializers.Serializer):
    code = serializers.CharField(help_text="stable: switch on it")
    message = serializers.CharField(help_text="for a person; names the field at fault")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='validation errors by field path, e.g. {"notifications[3].body": ["..."]}',
    )
    status = serializers.CharField(
        required=False, help_text="`not_cancelable`: where the notification stands"
    )
    recipients = serializers.IntegerField(
        required=False, help_text="`quota_exceeded` of a broadcast: the recipients it counted"
    )
    remaining = serializers.IntegerField(
        required=False, help_text="`quota_exceeded` of a broadcast: what is left of the day"
    )


class ErrorOut(serializers.Serializer):
    error = ErrorDetailOut()


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The error answers `codes` in the one format, to merge into `extend_schema(responses=)`."""
    return {code: OpenApiResponse(ErrorOut, description=ERROR_DESCRIPTIONS[code]) for code in codes}


def errors_in_own_format(view: Any) -> Any:
    """Mark an `@api_view` whose errors have their own format (RFC 6749's, for /oauth/token)."""
    view.cls.errors_in_own_format = True
    return view


# What validation accepts, written as schema (the fuzz test's positive-data check holds these
# to the server): an https URL to a public host name (no IP literal, no port, no `localhost`:
# those are refused as internal), FCM's registration token (printable ASCII, not starting with
# `{`, which marks a subscription's JSON), a Web Push subscription, printable ASCII.
HTTPS_URL_PATTERN = (
    r"^https://[a-z][a-z0-9-]{0,30}(\.[a-z][a-z0-9-]{0,30})*\.[a-z]{2,8}(/[A-Za-z0-9._~/-]*)?$"
)
FCM_TOKEN_SCHEMA = {
    "type": "string",
    "minLength": 16,
    "maxLength": 4096,
    "pattern": r"^[!-z|-~][!-~]*$",
}
SUBSCRIPTION_SCHEMA = {
    "type": "object",
    "required": ["endpoint", "keys"],
    "properties": {
        "endpoint": {
            "type": "string",
            "format": "uri",
            "maxLength": 2048,
            "pattern": HTTPS_URL_PATTERN,
            "description": "the push service's https URL (internal addresses are refused)",
        },
        "expirationTime": {"type": "integer", "nullable": True},
        "keys": {
            "type": "object",
            "required": ["p256dh", "auth"],
            "properties": {
                "p256dh": {
                    "type": "string",
                    "pattern": r"^B[A-P][A-Za-z0-9_-]{85}$",
                    "description": "base64url of the 65-byte uncompressed P-256 point "
                    "(a point on the curve)",
                },
                "auth": {
                    "type": "string",
                    "pattern": r"^[A-Za-z0-9_-]{22}$",
                    "description": "base64url of the 16-byte auth secret",
                },
            },
        },
    },
}
# An origin as push/cors.py's origin_normalise accepts it: https://host[:port], plain http only
# for localhost and 127.0.0.1 (a trailing `/` or upper case is also accepted, and normalised).
ORIGIN_PATTERN = (
    r"^(https://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
    r"|http://(localhost|127\.0\.0\.1))(:[1-9][0-9]{0,3})?$"
)
# `data`'s values: any JSON but null (a string at most 4096 characters).
DATA_VALUE_SCHEMA = {
    "anyOf": [
        {"type": "string", "maxLength": 4096},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "object"},
        {"type": "array"},
    ]
}
PRINTABLE_ASCII_PATTERN = r"^[ -~]+$"
# A trimmed string (DRF strips what Python's str.isspace() calls whitespace) that is not blank:
# one character outside that set, spelled out (regex engines disagree on `\s`).
NOT_BLANK_PATTERN = "[^\t-\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


class KeymasterAutoSchema(AutoSchema):
    """drf-spectacular's schema, plus the error answers each kind of operation can give.

    A request serializer's `openapi_request_extra` (e.g. a `oneOf` of required fields) is merged
    into its schema, `properties` field by field: rules its `validate()` methods enforce.
    """

    def _map_serializer(
        self, serializer: Any, direction: str, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        extra = dict(getattr(serializer, "openapi_request_extra", None) or {})
        if extra and direction == "request":
            properties = {
                name: {**prop, **extra.get("properties", {}).get(name, {})}
                for name, prop in schema.get("properties", {}).items()
            }
            schema = {**schema, **extra, "properties": properties}
        return schema

    def _get_request_for_media_type(self, serializer: Any, direction: str = "request") -> Any:
        if self.method == "PATCH" and getattr(serializer, "openapi_whole_on_patch", False):
            # The view validates the whole serializer (its required fields stay required), not
            # the partial one drf-spectacular assumes for a PATCH.
            self.method = "PUT"
            try:
                return self._get_request_for_media_type(serializer, direction)
            finally:
                self.method = "PATCH"
        schema, required = super()._get_request_for_media_type(serializer, direction)
        # A body whose fields are each optional but one of them required is itself required.
        return schema, required or bool(getattr(serializer, "openapi_request_extra", None))

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, answer in errors(*self._implied_error_codes()).items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(answer, str(code))
        for code, headers in RESPONSE_HEADERS.items():
            if str(code) in responses:
                responses[str(code)].setdefault("headers", {}).update(headers)
        return responses

    def _implied_error_codes(self) -> list[int]:
        has_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer()
        if getattr(self.view, "errors_in_own_format", False):
            # Only the size limit answers before the view, and so in the one format.
            return [413] if has_body else []
        places = {param["in"] for param in self._get_parameters()}
        codes = []
        if has_body or places - {"path"}:
            codes.append(400)
        if self.get_auth():
            codes.append(401)
        if "path" in places:  # also an id that is not a UUID: no route matches it
            codes.append(404)
        if has_body:
            codes += [413, 415]
        return codes


# OpenAPI links: where an answer's ids lead next (clients and stateful fuzzing follow them).
# {source operationId: (its success codes, {link name: (target operationId, {parameter: value})
# or (target, {parameter: value}, {body field: value}))})}: a body's fields are merged into it.
_APP_ID = "$response.body#/app_id"
_Link = tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], dict[str, str]]
_LINKS: dict[str, tuple[tuple[int, ...], dict[str, _Link]]] = {
    "api_apps_create": (
        (201,),
        {
            "GetApp": ("api_apps_retrieve", {"app_id": _APP_ID}),
            "RotateClientSecret": ("api_apps_rotate_secret_create", {"app_id": _APP_ID}),
            "EnrollUser": ("api_apps_enrollments_create", {"app_id": _APP_ID}),
            "AddAdmin": ("api_apps_admins_create", {"app_id": _APP_ID}),
            "GetPushConfig": ("push_config_retrieve", {"app_id": _APP_ID}),
            "UpdatePushConfig": ("push_config_partial_update", {"app_id": _APP_ID}),
            "RotateWebhookSecret": (
                "push_config_rotate_webhook_secret_create",
                {"app_id": _APP_ID},
            ),
            "ListDevices": ("push_devices_retrieve", {"id": _APP_ID}),
        },
    ),
    # No link from an enrollment's answer: it is an invitation (202), nobody is enrolled yet.
    "push_devices_register_create": (
        (200, 201),
        {"RemoveDevice": ("push_devices_destroy", {"id": "$response.body#/device_id"})},
    ),
    "push_devices_retrieve": (
        (200,),
        {
            "RemoveFirstDevice": (
                "push_devices_destroy",
                {"id": "$response.body#/devices/0/device_id"},
            ),
            # A send to a user who has a device: it reaches 202 and queues a delivery.
            "SendToFirstDevicesUser": (
                "push_send_create",
                {},
                {"user_id": "$response.body#/devices/0/user_id"},
            ),
        },
    ),
    "account_devices_retrieve": (
        (200,),
        {
            "RemoveFirstDevice": (
                "push_devices_destroy",
                {"id": "$response.body#/apps/0/devices/0/device_id"},
            ),
            # The app's device list names users who have a device: the way to a send.
            # A send to the caller (a user with devices): it reaches 202 and queues deliveries.
            "SendToUser": ("push_send_create", {}, {"user_id": "$response.body#/user_id"}),
            # (its first page: an offset drawn at random would mostly land past the end)
            "ListFirstAppsDevices": (
                "push_devices_retrieve",
                {"id": "$response.body#/apps/0/app_id", "offset": 0, "limit": 500},
            ),
        },
    ),
    "push_send_create": (
        (202,),
        {
            "GetNotification": (
                "push_notifications_retrieve",
                {"notification_id": "$response.body#/notification_id"},
            ),
            "CancelNotification": (
                "push_notifications_cancel_create",
                {"notification_id": "$response.body#/notification_id"},
            ),
        },
    ),
    "push_send_broadcast_create": (
        (202,),
        {
            "GetBroadcast": (
                "push_broadcasts_retrieve",
                {"broadcast_id": "$response.body#/broadcast_id"},
            ),
            "CancelBroadcast": (
                "push_broadcasts_cancel_create",
                {"broadcast_id": "$response.body#/broadcast_id"},
            ),
        },
    ),
    "push_topics_retrieve": (
        (200,),
        {
            "ListFirstTopicsMembers": (
                "push_topics_members_retrieve",
                {"topic": "$response.body#/topics/0/topic"},
            ),
            "ChangeFirstTopicsMembers": (
                "push_topics_members_create",
                {"topic": "$response.body#/topics/0/topic"},
            ),
        },
    ),
    "push_topics_members_create": (
        (200,),
        {
            "ListMembers": ("push_topics_members_retrieve", {"topic": "$request.path.topic"}),
            "DeleteTopic": ("push_topics_destroy", {"topic": "$request.path.topic"}),
        },
    ),
    "push_send_bulk_create": (
        (202,),
        {
            "GetFirstNotification": (
                "push_notifications_retrieve",
                {"notification_id": "$response.body#/notification_ids/0"},
            )
        },
    ),
    "push_send_batch_create": (
        (202,),
        {
            "GetFirstNotification": (
                "push_notifications_retrieve",
                {"notification_id": "$response.body#/notification_ids/0"},
            )
        },
    ),
}


def postprocess_links(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Add the OpenAPI links of `_LINKS` to the generated schema (a drf-spectacular hook)."""
    operations = {
        operation["operationId"]: operation
        for path in result.get("paths", {}).values()
        for operation in path.values()
    }
    for source, (codes, links) in _LINKS.items():
        if source not in operations:
            continue
        for code in codes:
            response = operations[source]["responses"].get(str(code))
            if response is None:
                continue
            response["links"] = {
                name: _link(*link) for name, link in links.items() if link[0] in operations
            }
    return result


def _link(target: str, parameters: dict[str, Any], body: dict[str, str] | None = None) -> dict:
    link: dict[str, Any] = {"operationId": target, "parameters": parameters}
    if body:
        link["requestBody"] = body
    return link
