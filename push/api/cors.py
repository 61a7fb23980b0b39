"""The CORS answer headers of the endpoints a browser calls (push.cors), in the OpenAPI schema."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

_HEADERS = {
    "Access-Control-Allow-Origin": {
        "schema": {"type": "string"},
        "description": "The request's Origin, when some app lists it in its push config's "
        "allowed_origins; absent otherwise (the browser then blocks the answer). Preflights "
        "(OPTIONS with Access-Control-Request-Method) are answered 200 with "
        "Access-Control-Allow-Methods, Access-Control-Allow-Headers (authorization, "
        "content-type) and Access-Control-Max-Age. Credentials are never allowed: "
        "authenticate with a Bearer token.",
    },
    "Vary": {
        "schema": {"type": "string"},
        "description": "Includes Origin: the CORS headers depend on it.",
    },
}
_PARAMETER = re.compile(r"\{[^}]+\}")
_SOME_ID = "00000000-0000-0000-0000-000000000000"


def postprocess_cors(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Add the CORS headers to every answer of the paths settings.CORS_URLS_REGEX names."""
    for path, operations in result.get("paths", {}).items():
        if not re.match(settings.CORS_URLS_REGEX, _PARAMETER.sub(_SOME_ID, path)):
            continue
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {}).update(_HEADERS)
    return result
