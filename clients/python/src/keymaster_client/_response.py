"""One HTTP answer as the sans-I/O core sees it, whichever library (requests, httpx) fetched it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RawResponse:
    """Status, headers (names lower-cased), body bytes and reason phrase of one response."""

    status: int
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""

    @classmethod
    def of(
        cls, status: int, content: bytes, headers: Mapping[str, str], reason: str = ""
    ) -> RawResponse:
        return cls(status, content, {k.lower(): v for k, v in headers.items()}, reason)

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """Decode the body as JSON; raises ValueError when it is not."""
        return json.loads(self.content)
