"""Find secrets in raw database rows, log records and error answers, plain or encoded.

A `Secrets` collects every secret a run handled; `needles()` turns each into the forms it could
leak in (plain, JSON-escaped, URL-encoded, hex, and base64/base64url at each of the three byte
alignments, so a secret inside a larger base64 blob is still found). `scan()` searches a
corpus of texts for them and for secret-shaped strings nobody registered (JWTs, PEM private
keys, OAuth access tokens, webhook secrets).
"""

from __future__ import annotations

import base64
import bisect
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

from cryptography.hazmat.primitives import serialization
from django.db import connection

# Shorter fragments would match by chance in a large corpus.
MIN_NEEDLE = 12

# Secret shapes, found even when the test did not know the value (a JWT-bearer assertion, the
# FCM access token, a VAPID JWT, a key nobody registered).
SHAPES = {
    "jwt": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"),
    "pem private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "pem private key (base64)": re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/_-]{8,}"),
    "google access token": re.compile(r"ya29\.[A-Za-z0-9_.-]{8,}"),
    "webhook secret": re.compile(r"whsec_[A-Za-z0-9+/]{20,}"),
}


@dataclass(frozen=True)
class Finding:
    secret: str  # which secret, e.g. "webhook secret (whsec_)"
    form: str  # how it was written, e.g. "base64url"
    where: str  # which text, e.g. "push_device.token row 3" or "log record 812"
    context: str  # what surrounds it (redacted of the needle itself)


@dataclass
class Secrets:
    """Every secret a run handled, by name, as text or bytes."""

    items: dict[str, str | bytes] = field(default_factory=dict)

    def add(self, name: str, value: str | bytes) -> None:
        assert len(value) >= 8, f"{name} is too short to be a secret worth searching for"
        self.items[name] = value

    def add_pem_key(self, name: str, pem: str) -> None:
        """A private key: its PEM, its DER, each line of its base64 body, its raw numbers."""
        self.add(f"{name} (PEM)", pem)
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.add(f"{name} (DER)", der)
        body = [line for line in pem.strip().splitlines() if not line.startswith("-----")]
        for n, line in enumerate(body):
            if len(line) >= MIN_NEEDLE:
                self.add(f"{name} (PEM line {n})", line)
        numbers = key.private_numbers()
        if hasattr(numbers, "private_value"):  # EC: the raw scalar, as py_vapid prints it
            raw = numbers.private_value.to_bytes((key.curve.key_size + 7) // 8, "big")
            self.add(f"{name} (raw scalar)", raw)
        else:  # RSA: the private exponent and primes
            for part in ("d", "p", "q"):
                value = getattr(numbers, part)
                self.add(f"{name} (RSA {part})", value.to_bytes((value.bit_length() + 7) // 8))

    def add_jwt(self, name: str, token: str) -> None:
        """A JWT: whole, and its signature (the part that makes it a credential)."""
        self.add(name, token)
        self.add(f"{name} (signature)", token.rsplit(".", 1)[1])

    def add_b64url_bytes(self, name: str, text: str) -> None:
        """A base64url value (Web Push keys): as sent, and the bytes it stands for."""
        self.add(name, text)
        self.add(f"{name} (decoded)", base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))

    def needles(self) -> dict[str, tuple[str, str]]:
        """Return {needle: (secret name, form)} for every secret in every form."""
        found: dict[str, tuple[str, str]] = {}
        for name, value in self.items.items():
            for form, needle in encodings(value):
                if len(needle) >= MIN_NEEDLE:
                    found.setdefault(needle, (name, form))
        return found


def encodings(value: str | bytes) -> Iterator[tuple[str, str]]:
    """Yield (form, text) for each way `value` could be written into a log or a column."""
    raw = value.encode() if isinstance(value, str) else value
    if isinstance(value, str):
        yield "plain", value
        yield "json-escaped", json.dumps(value)[1:-1]
        yield "json-escaped (ascii)", json.dumps(value, ensure_ascii=True)[1:-1]
        yield "url-encoded", quote(value, safe="")
        yield "form-encoded", quote_plus(value)
    yield "hex", raw.hex()
    yield "HEX", raw.hex().upper()
    for alphabet, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        for offset in range(3):
            yield f"{alphabet}+{offset}", _b64_core(encode, raw, offset)


def _b64_core(encode, raw: bytes, offset: int) -> str:
    """The base64 characters that depend only on `raw` when it starts `offset` bytes in."""
    text = encode(b"\0" * offset + raw).decode().rstrip("=")
    first = -(-offset * 8 // 6)  # the first character with no bit of the prefix
    last = (offset + len(raw)) * 8 // 6  # characters past this share bits with what follows
    return text[first:last]


@dataclass
class Corpus:
    """Texts to search, each with where it came from."""

    texts: list[str] = field(default_factory=list)
    wheres: list[str] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        self.texts.append(text)
        self.wheres.append(where)

    def extend(self, where: str, texts: Iterable[str]) -> None:
        for n, text in enumerate(texts):
            self.add(f"{where} {n}", text)

    def __len__(self) -> int:
        return len(self.texts)


def scan(corpus: Corpus, secrets: Secrets) -> list[Finding]:
    """Return every place a secret (in any form) or a secret-shaped string occurs."""
    separator = "\n\x00\n"
    joined = separator.join(corpus.texts)
    starts, position = [], 0
    for text in corpus.texts:
        starts.append(position)
        position += len(text) + len(separator)

    def finding(secret: str, form: str, at: int, length: int) -> Finding:
        index = bisect.bisect_right(starts, at) - 1
        context = joined[max(starts[index], at - 60) : at] + "<SECRET>"
        context += joined[at + length : at + length + 60].split(separator, 1)[0]
        return Finding(secret, form, corpus.wheres[index], context)

    findings = []
    for needle, (secret, form) in secrets.needles().items():
        at = joined.find(needle)
        while at != -1:
            findings.append(finding(secret, form, at, len(needle)))
            at = joined.find(needle, at + 1)
    for shape, pattern in SHAPES.items():
        for match in pattern.finditer(joined):
            findings.append(finding(f"a {shape}", "shape", match.start(), len(match.group())))
    return findings


def raw_tables() -> tuple[Corpus, dict[str, int]]:
    """Read every column of every row of every table as text, the way a database dump does."""
    corpus, rows = Corpus(), {}
    quote_name = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [
                column.name
                for column in connection.introspection.get_table_description(cursor, table)
            ]
            select = ", ".join(f"CAST({quote_name(c)} AS TEXT)" for c in columns)
            cursor.execute(f"SELECT {select} FROM {quote_name(table)}")  # noqa: S608 - our names
            count = 0
            for count, row in enumerate(cursor.fetchall(), start=1):
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        corpus.add(f"{table}.{column} row {count}", value)
            rows[table] = count
    return corpus, rows


def decoded_blobs() -> Corpus:
    """The blobs a raw read cannot see into: signed sessions and pickled django-q tasks."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django_q.models import OrmQ, Task

    corpus = Corpus()
    for session in Session.objects.all():
        corpus.add(
            f"django_session {session.pk} (decoded)",
            repr(SessionStore().decode(session.session_data)),
        )
    for queued in OrmQ.objects.all():
        corpus.add(f"django_q_ormq {queued.pk} (decoded)", repr(queued.task))
    for task in Task.objects.all():
        corpus.add(
            f"django_q_task {task.pk} (decoded)", repr((task.args, task.kwargs, task.result))
        )
    return corpus
