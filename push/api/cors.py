"""The CORS answer headers of the endpoints a browser calls (push.cors), for the OpenAPI schema."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter

CORS_HEADERS = [
    OpenApiParameter(
        "Access-Control-Allow-Origin",
        str,
        OpenApiParameter.HEADER,
        response=True,
        description="The request's Origin, when some app lists it in its push config's "
        "allowed_origins; absent otherwise (the browser then blocks the answer). Preflights "
        "(OPTIONS) also get Access-Control-Allow-Methods, Access-Control-Allow-Headers "
        "(authorization, content-type) and Access-Control-Max-Age; credentials are never "
        "allowed: authenticate with a Bearer token.",
    ),
    OpenApiParameter(
        "Vary",
        str,
        OpenApiParameter.HEADER,
        response=True,
        description="Includes Origin: the CORS headers depend on it.",
    ),
]
