"""A fake Web Push service that really checks the protocol.

It speaks RFC 8030 (``POST /push/{id}`` with ``TTL``, ``Urgency``, ``Topic``), verifies the
RFC 8292 VAPID header (ES256 signature, ``aud``, ``exp``, ``sub``, and the subscription's
``applicationServerKey`` when it has one) and decrypts the RFC 8291 ``aes128gcm`` body with the
subscription's private key, so a test sees exactly what a browser would.

Control it in-process through `WebPushFake`'s methods, or over HTTP (the demo and the benchmark
run it as a separate process: ``python -m fakes.webpush --port 8090``):

* ``POST /_control/subscriptions`` ``{"applicationServerKey": "<b64url>"?}`` -> 201, the
  browser's ``PushSubscription.toJSON()`` (the private key stays here to decrypt);
* ``POST /_control/subscriptions/bulk`` ``{"count": n, "applicationServerKey": "<b64url>"?}``
  -> 201, ``{"subscriptions": [...]}`` (n of them, for a benchmark's thousands of users);
* ``POST /_control/subscriptions/{id}/expire`` -> later pushes answer 410;
* ``POST /_control/subscriptions/{id}/script`` ``{"answers": [503, {"status": 429,
  "retry_after": "30", "delay_ms": 0, "location": "..."}, 201]}`` -> answered in order;
* ``POST /_control/faults`` ``{"gone": 0.0, "throttle": 0.0, "retry_after": 1,
  "latency_ms": 0, "seed": 0}`` -> random 410s / 429s and added latency (seeded RNG);
* ``POST /_control/reset`` ``{"subscriptions": false}``; ``GET /_control/stats``;
  ``GET /_control/received?subscription=<id>`` -> ``{"messages": [...]}`` (decrypted);
  ``GET /_control/times?offset=N`` -> ``{"times": [[subscription_id, unix_time], ...]}`` of
  every accepted push (kept even when ``--keep-received`` keeps only the latest messages).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import random
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fakes.server import FakeServer, InFlight, query_int, read_json

MAX_BODY = 4096  # RFC 8030 section 7.2: services must accept at least 4096 octets
MAX_JWT_LIFETIME = 24 * 3600  # RFC 8292 section 2: exp no more than 24 hours ahead
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
# Where a scripted 3xx points when the script names no Location: the cloud metadata service,
# the classic SSRF target a broker must never be redirected to.
INTERNAL_REDIRECT = "http://169.254.169.254/latest/meta-data/"


def b64url_encode(data: bytes) -> str:
    """Encode base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Rejected(Exception):
    """A push request the service refuses, with the HTTP status it answers."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def verify_vapid(header: str, audience: str, *, now: float | None = None) -> tuple[str, str]:
    """Check an RFC 8292 ``vapid t=..., k=...`` header; return (token, key) or raise Rejected."""
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "vapid":
        raise Rejected(401, "Authorization must use the vapid scheme")
    parts: dict[str, str] = {}
    for item in params.split(","):
        name, _, value = item.strip().partition("=")
        parts[name.strip().lower()] = value.strip()
    token, key = parts.get("t", ""), parts.get("k", "")
    pieces = token.split(".")
    if len(pieces) != 3 or not key:
        raise Rejected(401, "vapid header needs t=<JWT> and k=<key>")
    try:
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b64url_decode(key)
        )
        jose = json.loads(b64url_decode(pieces[0]))
        claims = json.loads(b64url_decode(pieces[1]))
        signature = b64url_decode(pieces[2])
    except (ValueError, binascii.Error):
        raise Rejected(401, "malformed VAPID key or JWT") from None
    if not isinstance(jose, dict) or jose.get("alg") != "ES256" or not isinstance(claims, dict):
        raise Rejected(401, "JWT must be ES256")
    if len(signature) != 64:  # JWS ES256 is raw r || s, not DER
        raise Rejected(401, "ES256 signature must be 64 bytes")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        signed = f"{pieces[0]}.{pieces[1]}".encode("ascii")
        public_key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Rejected(401, "JWT signature does not verify with k") from None
    now = time.time() if now is None else now
    if claims.get("aud") != audience:
        raise Rejected(401, "JWT aud must be the push service origin")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool) or exp <= now:
        raise Rejected(401, "JWT exp must be a future integer")
    if exp > now + MAX_JWT_LIFETIME:
        raise Rejected(401, "JWT exp must be at most 24 hours ahead")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise Rejected(401, "JWT sub must be a mailto: or https: URI")
    return token, key


@dataclass(frozen=True)
class Answer:
    """One scripted answer: a status, optional Retry-After, added delay, 3xx Location."""

    status: int = 201
    retry_after: str | None = None
    delay_ms: int = 0
    location: str | None = None

    @classmethod
    def parse(cls, value: int | dict[str, Any] | Answer) -> Answer:
        """Build an Answer from a status code, a JSON object or an Answer."""
        if isinstance(value, Answer):
            return value
        if isinstance(value, int):
            return cls(status=value)
        retry_after = value.get("retry_after")
        return cls(
            status=int(value.get("status", 201)),
            retry_after=None if retry_after is None else str(retry_after),
            delay_ms=int(value.get("delay_ms", 0)),
            location=value.get("location"),
        )


@dataclass
class Faults:
    """Random faults applied to pushes without a scripted answer."""

    gone: float = 0.0  # fraction answered 410 (the subscription then stays expired)
    throttle: float = 0.0  # fraction answered 429 with Retry-After
    retry_after: int = 1
    latency_ms: int = 0


@dataclass
class Received:
    """One accepted push, decrypted; header names are lower-case."""

    subscription_id: str
    payload: bytes
    headers: dict[str, str]
    time: float

    def as_json(self) -> dict[str, Any]:
        """Render for ``GET /_control/received``."""
        try:
            text: str | None = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "subscription_id": self.subscription_id,
            "payload": text,
            "payload_b64": b64url_encode(self.payload),
            "headers": self.headers,
            "time": self.time,
        }


@dataclass
class _Subscription:
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    origin: str
    application_server_key: str | None
    expired: bool = False
    script: deque[Answer] = field(default_factory=deque)


class WebPushFake(FakeServer):
    """The fake push service: state, protocol checks and control API."""

    def __init__(
        self,
        *,
        port: int = 0,
        seed: int = 0,
        public_url: str | None = None,
        keep_received: int | None = None,
    ) -> None:
        super().__init__(self.make_app, port=port)
        # None keeps every decrypted message; a benchmark keeps only the latest N (a sample).
        self._keep_received = keep_received
        self._public_url = public_url.rstrip("/") if public_url else None
        self._lock = threading.Lock()  # handlers run on the server thread, tests on theirs
        self._subscriptions: dict[str, _Subscription] = {}
        self._seed = seed
        self._in_flight = InFlight()
        self._clear()

    def _clear(self) -> None:
        self._rng = random.Random(self._seed)
        self._faults = Faults()
        self._received: deque[Received] = deque(maxlen=self._keep_received)
        self._delivered = 0
        self._times: list[tuple[str, float]] = []
        self._statuses: Counter[int] = Counter()
        self._jwts: set[str] = set()
        # VAPID headers whose signature verified -> their exp: a sender that caches its JWT
        # (as it should) is not re-verified on every push; every other check still runs.
        self._verified: dict[tuple[str, str], int] = {}
        self._in_flight.reset()
        # A request still held (latency) when the fake is reset belongs to the time before it:
        # it is answered, but counted nowhere.
        self._epoch = getattr(self, "_epoch", 0) + 1
        for sub in self._subscriptions.values():
            sub.script.clear()

    # -- in-process control -------------------------------------------------------------

    def new_subscription(
        self, application_server_key: str | None = None, *, origin: str | None = None
    ) -> dict[str, Any]:
        """Create a subscription and return the browser's ``PushSubscription.toJSON()``."""
        origin = (origin or self._public_url or self.url).rstrip("/")
        if not origin:
            raise RuntimeError("start() the fake (or give public_url) before subscribing")
        private_key = ec.generate_private_key(ec.SECP256R1())
        sub = _Subscription(
            id=secrets.token_urlsafe(24),
            private_key=private_key,
            auth=secrets.token_bytes(16),
            origin=origin,
            application_server_key=application_server_key,
        )
        with self._lock:
            self._subscriptions[sub.id] = sub
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{origin}/push/{sub.id}",
            "expirationTime": None,
            "keys": {"p256dh": b64url_encode(point), "auth": b64url_encode(sub.auth)},
        }

    def expire(self, subscription: str | dict[str, Any]) -> None:
        """Make a subscription gone: later pushes answer 410."""
        with self._lock:
            self._get(subscription).expired = True

    def script(
        self, subscription: str | dict[str, Any], answers: Iterable[int | dict[str, Any] | Answer]
    ) -> None:
        """Queue answers for a subscription's next pushes, in order (after protocol checks)."""
        parsed = [Answer.parse(a) for a in answers]
        with self._lock:
            self._get(subscription).script.extend(parsed)

    def set_faults(
        self,
        *,
        gone: float = 0.0,
        throttle: float = 0.0,
        retry_after: int = 1,
        latency_ms: int = 0,
        seed: int | None = None,
    ) -> None:
        """Set random fault rates and added latency for every push."""
        with self._lock:
            self._faults = Faults(gone, throttle, retry_after, latency_ms)
            if seed is not None:
                self._rng = random.Random(seed)

    def reset(self, *, subscriptions: bool = False) -> None:
        """Forget received messages, counters, scripts and faults (and subscriptions if asked)."""
        with self._lock:
            if subscriptions:
                self._subscriptions.clear()
            self._clear()

    def received(self, subscription: str | dict[str, Any] | None = None) -> list[Received]:
        """Return accepted pushes (decrypted), optionally for one subscription."""
        with self._lock:
            if subscription is None:
                return list(self._received)
            sub_id = self._id_of(subscription)
            return [r for r in self._received if r.subscription_id == sub_id]

    def times(self, offset: int = 0) -> list[tuple[str, float]]:
        """Return (subscription id, unix time) of each accepted push, from the `offset`-th on."""
        with self._lock:
            return self._times[offset:]

    @property
    def jwts_seen(self) -> int:
        """Count distinct VAPID JWTs that verified (a caching sender reuses one)."""
        with self._lock:
            return len(self._jwts)

    def stats(self) -> dict[str, Any]:
        """Return request counts by status, distinct JWTs and subscriptions."""
        with self._lock:
            return {
                "requests": sum(self._statuses.values()),
                "delivered": self._delivered,
                "statuses": {str(k): v for k, v in sorted(self._statuses.items())},
                "jwts_seen": len(self._jwts),
                "subscriptions": len(self._subscriptions),
                "faults": asdict(self._faults),
                "peak_in_flight": self._in_flight.peak,
            }

    @staticmethod
    def _id_of(subscription: str | dict[str, Any]) -> str:
        if isinstance(subscription, dict):
            subscription = subscription["endpoint"]
        return subscription.rstrip("/").rsplit("/", 1)[-1]

    def _get(self, subscription: str | dict[str, Any]) -> _Subscription:
        sub = self._subscriptions.get(self._id_of(subscription))
        if sub is None:
            raise KeyError("unknown subscription")
        return sub

    # -- the push endpoint ----------------------------------------------------------------

    async def _push(self, request: web.Request) -> web.StreamResponse:
        with self._in_flight:
            return await self._accept_push(request)

    async def _accept_push(self, request: web.Request) -> web.StreamResponse:
        epoch = self._epoch
        body = await request.content.read(MAX_BODY + 1)
        try:
            sub, payload = self._verify(request, body)
            answer = self._decide(sub)
        except Rejected as exc:
            self._count(exc.status)
            return web.json_response({"error": exc.reason}, status=exc.status)
        with self._lock:
            delay = answer.delay_ms + self._faults.latency_ms
        if delay:
            await asyncio.sleep(delay / 1000)
            if epoch != self._epoch:
                return self._scripted(answer) if answer.status != 201 else web.Response(status=201)
        self._count(answer.status)
        if answer.status != 201:
            return self._scripted(answer)
        message_id = uuid.uuid4().hex
        headers = {k.lower(): v for k, v in request.headers.items()}
        now = time.time()
        with self._lock:
            self._received.append(Received(sub.id, payload, headers, now))
            self._times.append((sub.id, now))
            self._delivered += 1
        return web.Response(status=201, headers={"Location": f"{sub.origin}/m/{message_id}"})

    def _verify(self, request: web.Request, body: bytes) -> tuple[_Subscription, bytes]:
        with self._lock:
            sub = self._subscriptions.get(request.match_info["id"])
        if sub is None:
            raise Rejected(404, "no such subscription")
        if sub.expired:
            raise Rejected(410, "subscription expired")
        ttl = request.headers.get("TTL", "")
        if not ttl.isdigit():  # RFC 8030 section 5.2: TTL is required
            raise Rejected(400, "TTL header is required (non-negative integer)")
        if request.headers.get("Content-Encoding", "").lower() != "aes128gcm":
            raise Rejected(400, "Content-Encoding must be aes128gcm (RFC 8291)")
        urgency = request.headers.get("Urgency")
        if urgency is not None and urgency not in URGENCIES:
            raise Rejected(400, "Urgency must be very-low, low, normal or high")
        topic = request.headers.get("Topic")
        if topic is not None and not (0 < len(topic) <= 32 and set(topic) <= _TOPIC_ALPHABET):
            raise Rejected(400, "Topic must be at most 32 base64url characters")
        token, key = self._verify_vapid(request.headers.get("Authorization", ""), sub.origin)
        if sub.application_server_key and key.rstrip("=") != sub.application_server_key.rstrip("="):
            # RFC 8292 section 4.2: a restricted subscription only accepts its own key.
            raise Rejected(403, "VAPID key does not match the subscription's applicationServerKey")
        if len(body) > MAX_BODY:
            raise Rejected(413, "payload larger than 4096 bytes")
        try:
            payload = http_ece.decrypt(
                body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
            )
        except Exception:  # http_ece raises several types for a body it cannot open
            raise Rejected(400, "body does not decrypt for this subscription") from None
        return sub, payload

    def _verify_vapid(self, header: str, origin: str) -> tuple[str, str]:
        now = time.time()
        with self._lock:
            exp = self._verified.get((header, origin))
        if exp is not None and exp > now:
            scheme, _, params = header.strip().partition(" ")
            parts = dict(item.strip().partition("=")[::2] for item in params.split(","))
            return parts["t"], parts["k"]
        token, key = verify_vapid(header, origin, now=now)
        claims = json.loads(b64url_decode(token.split(".")[1]))
        with self._lock:
            self._jwts.add(token)
            self._verified[(header, origin)] = claims["exp"]
        return token, key

    def _decide(self, sub: _Subscription) -> Answer:
        with self._lock:
            if sub.script:
                return sub.script.popleft()
            roll = self._rng.random()
            if roll < self._faults.gone:
                sub.expired = True
                return Answer(status=410)
            if roll < self._faults.gone + self._faults.throttle:
                return Answer(status=429, retry_after=str(self._faults.retry_after))
        return Answer()

    def _count(self, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1

    @staticmethod
    def _scripted(answer: Answer) -> web.Response:
        headers: dict[str, str] = {}
        if answer.retry_after is not None:
            headers["Retry-After"] = answer.retry_after
        if 300 <= answer.status < 400:
            headers["Location"] = answer.location or INTERNAL_REDIRECT
        return web.json_response({"status": answer.status}, status=answer.status, headers=headers)

    # -- HTTP control ---------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """Build the aiohttp application (push endpoint and ``/_control`` API)."""
        app = web.Application()
        app.router.add_post("/push/{id}", self._push)
        app.router.add_post("/_control/subscriptions", self._c_subscribe)
        app.router.add_post("/_control/subscriptions/bulk", self._c_subscribe_many)
        app.router.add_post("/_control/subscriptions/{id}/expire", self._c_expire)
        app.router.add_post("/_control/subscriptions/{id}/script", self._c_script)
        app.router.add_post("/_control/faults", self._c_faults)
        app.router.add_post("/_control/reset", self._c_reset)
        app.router.add_get("/_control/stats", self._c_stats)
        app.router.add_get("/_control/received", self._c_received)
        app.router.add_get("/_control/times", self._c_times)
        return app

    async def _c_subscribe(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        origin = self._public_url or f"{request.scheme}://{request.host}"
        sub = self.new_subscription(data.get("applicationServerKey"), origin=origin)
        return web.json_response(sub, status=201)

    async def _c_subscribe_many(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        origin = self._public_url or f"{request.scheme}://{request.host}"
        try:
            count = int(data.get("count", 1))
        except (TypeError, ValueError):
            return web.json_response({"error": "count must be an integer"}, status=400)
        if not 0 < count <= 100_000:
            return web.json_response({"error": "count must be 1 to 100000"}, status=400)
        key = data.get("applicationServerKey")
        subs = [self.new_subscription(key, origin=origin) for _ in range(count)]
        return web.json_response({"subscriptions": subs}, status=201)

    async def _c_times(self, request: web.Request) -> web.Response:
        return web.json_response({"times": self.times(query_int(request, "offset", 0))})

    async def _c_expire(self, request: web.Request) -> web.Response:
        try:
            self.expire(request.match_info["id"])
        except KeyError:
            return web.json_response({"error": "unknown subscription"}, status=404)
        return web.json_response({"ok": True})

    async def _c_script(self, request: web.Request) -> web.Response:
        answers = (await read_json(request)).get("answers", [])
        try:
            self.script(request.match_info["id"], answers)
        except KeyError:
            return web.json_response({"error": "unknown subscription"}, status=404)
        return web.json_response({"ok": True, "queued": len(answers)})

    async def _c_faults(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        self.set_faults(
            gone=float(data.get("gone", 0.0)),
            throttle=float(data.get("throttle", 0.0)),
            retry_after=int(data.get("retry_after", 1)),
            latency_ms=int(data.get("latency_ms", 0)),
            seed=data.get("seed"),
        )
        return web.json_response({"ok": True, "faults": self.stats()["faults"]})

    async def _c_reset(self, request: web.Request) -> web.Response:
        self.reset(subscriptions=bool((await read_json(request)).get("subscriptions", False)))
        return web.json_response({"ok": True})

    async def _c_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _c_received(self, request: web.Request) -> web.Response:
        messages = self.received(request.query.get("subscription"))
        return web.json_response({"messages": [m.as_json() for m in messages]})


def main(argv: list[str] | None = None) -> None:
    """Run the fake push service in the foreground."""
    parser = argparse.ArgumentParser(description="Fake Web Push service (RFC 8030/8291/8292)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--public-url", help="origin for endpoints (default: the Host header)")
    parser.add_argument(
        "--keep-received",
        type=int,
        default=None,
        help="keep only the latest N decrypted messages (default: all)",
    )
    args = parser.parse_args(argv)
    fake = WebPushFake(
        port=args.port,
        seed=args.seed,
        public_url=args.public_url,
        keep_received=args.keep_received,
    )
    web.run_app(fake.make_app(), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
