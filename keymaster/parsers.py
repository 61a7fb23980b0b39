"""The API's JSON parser: UTF-8 only, bounded nesting, and no text the database cannot hold.

DRF's JSONParser lets three kinds of hostile body through to a 500: nesting deep enough to
exhaust the C decoder's recursion limit (a RecursionError, not a ValueError), and the two string
escapes JSON allows but storage does not, ``\\u0000`` (PostgreSQL's text types refuse NUL) and
an unpaired surrogate such as ``\\ud800`` (not Unicode: it cannot be encoded as UTF-8, so
neither psycopg nor the JSON renderer echoing it back in an error can write it). They are
refused here, once, for every field of every endpoint, with the path of the offending value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

# The deepest legitimate body is {"notifications": [{"data": {"k": "v"}}]}: 4 levels.
MAX_DEPTH = 32
MAX_REPORTED = 20  # enough to fix a request; a body with 100,000 bad strings gets 20 lines
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NUL = "NUL (\\u0000) characters"
_SURROGATE = "unpaired surrogates (\\ud800-\\udfff are not Unicode text)"
_TOO_DEEP = f"JSON parse error - nested more than {MAX_DEPTH} levels deep."


class StrictJSONParser(JSONParser):
    """Parse a JSON body that every serializer, the database and the renderer can handle."""

    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            # RFC 8259 section 8.1: JSON exchanged between systems is UTF-8, whatever charset says.
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(
                f"JSON parse error - the body is not valid UTF-8 (at byte {exc.start})."
            ) from None
        try:
            document = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise exceptions.ParseError(_TOO_DEEP) from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        problems = unstorable_values(document)
        if problems:
            raise exceptions.ValidationError(problems)
        return document


def unstorable_values(document: Any) -> dict[str, list[str]]:
    """Name the values (``notifications[2].title``) holding NUL or unpaired surrogates.

    Raises ParseError past MAX_DEPTH, so nothing downstream recurses into a hostile body. The
    walk keeps one iterator per level, so its memory is bounded by the depth, not the size.
    """
    problems: dict[str, list[str]] = {}
    if isinstance(document, str) and _problem(document):
        problems["non_field_errors"] = [f"Must not contain {_problem(document)}."]
    stack: list[Iterator[tuple[str, str | int, Any]]] = [_members("", document, problems)]
    while stack and len(problems) < MAX_REPORTED:
        member = next(stack[-1], None)
        if member is None:
            stack.pop()
            continue
        parent, segment, value = member
        if isinstance(value, str):
            kind = _problem(value)
            if kind:
                problems[_join(parent, segment)] = [f"Must not contain {kind}."]
        elif isinstance(value, dict | list):
            if len(stack) >= MAX_DEPTH:
                raise exceptions.ParseError(_TOO_DEEP)
            stack.append(_members(_join(parent, segment), value, problems))
    return problems


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _members(
    path: str, value: Any, problems: dict[str, list[str]]
) -> Iterator[tuple[str, str | int, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            kind = _problem(key)
            if kind:
                # Named by the object holding it: echoing a surrogate would break the answer.
                problems[path or "non_field_errors"] = [f"Keys must not contain {kind}."]
            else:
                yield path, key, item
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield path, index, item


def _join(parent: str, segment: str | int) -> str:
    if isinstance(segment, int):
        return f"{parent}[{segment}]"
    return f"{parent}.{segment}" if parent else segment


def _problem(text: str) -> str | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return _NUL if found.group() == "\x00" else _SURROGATE
