"""A fake FCM HTTP v1 API and Google OAuth 2.0 token endpoint, served on 127.0.0.1.

It speaks the real protocols, so firebase-admin / google-auth credential code and the
production transport run against it unchanged: a service account's `token_uri` points here,
`POST /token` answers the JWT-bearer grant, and `POST /v1/projects/{p}/messages:send` validates
messages and answers with FCM's real error bodies. Answers are scripted per token, drawn from
seeded random fault rates, or fixed by the token prefix `unregistered-` (always UNREGISTERED),
in process through `FakeFcm` or from another process through the JSON endpoints `/_control/...`.

Run standalone: ``python -m fakes.fcm --port 9091 --service-account var/fcm-sa.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fakes.server import FakeServer, InFlight

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth signs its assertion for Google's endpoint whatever `token_uri` says.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
MESSAGING_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/firebase.messaging",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)
ACCESS_TOKEN_LIFETIME = 3600
MAX_PAYLOAD_BYTES = 4096
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
UNREGISTERED_PREFIX = "unregistered-"

# Google API status names by HTTP status (https://cloud.google.com/apis/design/errors).
_RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_TARGETS = ("token", "topic", "condition")
_MESSAGE_FIELDS = {"name", "data", "notification", "android", "webpush", "apns", "fcm_options"}
_TTL = re.compile(r"^\d+(\.\d{1,9})?s$")
_RESERVED_DATA_KEY = re.compile(r"^(from|message_type|notification|google\..*|gcm\..*)$")
_SHORT_LIVED = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class Answer(NamedTuple):
    """One error FCM returns (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode)."""

    status: int
    error_code: str | None  # the FcmError detail; None for plain Google API errors
    message: str
    field: str | None = None  # the BadRequest field violation, if any


# The answers a test can script by name, each with the body FCM really sends.
ANSWERS: dict[str, Answer] = {
    "UNREGISTERED": Answer(404, "UNREGISTERED", "Requested entity was not found."),
    "INVALID_ARGUMENT": Answer(
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
        "message.token",
    ),
    "MESSAGE_TOO_BIG": Answer(400, "INVALID_ARGUMENT", "Message is too big", "message"),
    "SENDER_ID_MISMATCH": Answer(403, "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": Answer(
        401, "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service"
    ),
    "QUOTA_EXCEEDED": Answer(
        429, "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Send requests'."
    ),
    "UNAVAILABLE": Answer(503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": Answer(500, "INTERNAL", "Internal error encountered."),
    "APNS_AUTH_ERROR": Answer(401, "APNS_AUTH_ERROR", "Auth error from APNS"),  # pre-2020 name
}
# Bare Google API errors without an FcmError detail ("NOT_FOUND", "DEADLINE_EXCEEDED", ...);
# where a name is also an FCM code, the FCM answer above wins.
ANSWERS = {
    name: Answer(status, None, name.replace("_", " ").capitalize() + ".")
    for status, name in _RPC_STATUS.items()
} | ANSWERS


def error_body(answer: Answer) -> dict[str, Any]:
    """Return Google's JSON error body for `answer`."""
    error: dict[str, Any] = {
        "code": answer.status,
        "message": answer.message,
        "status": _RPC_STATUS.get(answer.status, "UNKNOWN"),
    }
    details: list[dict[str, Any]] = []
    if answer.error_code:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": answer.error_code})
    if answer.field:
        violation = {"field": answer.field, "description": answer.message}
        details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": [violation]})
    if details:
        error["details"] = details
    return {"error": error}


def validate_send_request(body: Any) -> tuple[str, str] | None:
    """Return (field, description) of the first violation FCM would report, else None."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        return "message", "Message is required."
    unknown = [key for key in body if key not in ("message", "validate_only")]
    message = body["message"]
    unknown += [f"message.{k}" for k in message if k not in _MESSAGE_FIELDS | set(_TARGETS)]
    if unknown:
        return unknown[0], f'Invalid JSON payload received. Unknown name "{unknown[0]}".'
    targets = [key for key in _TARGETS if key in message]
    if len(targets) != 1:
        return "message", "Exactly one of token, topic or condition must be specified."
    if not isinstance(message[targets[0]], str) or not message[targets[0]]:
        return f"message.{targets[0]}", f"Invalid value at 'message.{targets[0]}'."
    for path, value in _string_maps(message):
        if not isinstance(value, dict):
            return path, f"Invalid value at '{path}'."
        for index, item in enumerate(value.values()):
            if not isinstance(item, str):
                at = f"{path}[{index}].value"
                return at, f"Invalid value at '{at}' (TYPE_STRING), {json.dumps(item)}"
    for key in message.get("data", {}):
        if _RESERVED_DATA_KEY.match(key):
            return "message.data", f"Invalid data payload key: {key}"
    android = message.get("android", {})
    if "ttl" in android and not (isinstance(android["ttl"], str) and _TTL.match(android["ttl"])):
        return "message.android.ttl", (
            "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)"
        )
    if "priority" in android and str(android["priority"]).lower() not in ("normal", "high"):
        return "message.android.priority", "Invalid value at 'message.android.priority'."
    if payload_size(message) > MAX_PAYLOAD_BYTES:
        return "message", "Message is too big"
    return None


def _string_maps(message: dict[str, Any]) -> list[tuple[str, Any]]:
    """Return the (path, value) of every field that must be a map of strings."""
    maps = [(f"message.{key}", message[key]) for key in ("data", "notification") if key in message]
    for platform in ("android", "apns", "webpush"):
        config = message.get(platform, {})
        if not isinstance(config, dict):
            maps.append((f"message.{platform}", None))
            continue
        maps += [(f"message.{platform}.{k}", config[k]) for k in ("data", "headers") if k in config]
    return maps


def payload_size(message: dict[str, Any]) -> int:
    """Return the bytes FCM counts against its 4 KB limit: data keys and values, notification."""
    size = sum(len(k.encode()) + len(v.encode()) for k, v in message.get("data", {}).items())
    return size + sum(len(v.encode()) for v in message.get("notification", {}).values())


def new_service_account(project_id: str, token_uri: str) -> dict[str, str]:
    """Return a complete service-account JSON dict with a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    email = f"firebase-adminsdk-{secrets.token_hex(3)}@{project_id}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }


@dataclass(frozen=True)
class _Account:
    project_id: str
    private_key_id: str
    public_key: Any


class FakeFcm:
    """The fake FCM server: start it, mint service accounts, script answers, read messages.

    Every piece of state is guarded by one lock: handlers run on the server thread while tests
    and the `/_control/` endpoints read and change it.
    """

    def __init__(self, *, port: int = 0, seed: int = 0, keep_messages: int = 100_000) -> None:
        self._server = FakeServer(self.make_app, port=port)
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._access_tokens: dict[str, tuple[str, float]] = {}  # token -> (email, expiry)
        # Only the latest are kept, so a long benchmark run does not grow without bound.
        self._messages: deque[dict[str, Any]] = deque(maxlen=keep_messages)
        # (token, time accepted) of every accepted message: cheap, for latency measurements.
        self._times: list[tuple[str, float]] = []
        self._accepted = 0
        self._scripts: dict[str, deque[str]] = {}
        self._outcomes: Counter[str] = Counter()
        self._tokens_issued = 0
        self._in_flight = InFlight()
        self._epoch = 0
        self._seed = seed
        self._faults = self._default_faults()
        self._rng = random.Random(seed)
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving and return the base URL."""
        self.url = self._server.start()
        return self.url

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> FakeFcm:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def make_app(self) -> web.Application:
        """Build the aiohttp application serving this fake."""
        app = web.Application()
        app.router.add_post("/token", self._handle_token)
        app.router.add_post("/v1/projects/{project_id}/messages:send", self._handle_send)
        app.router.add_route("*", "/_control/{action:.+}", self._handle_control)
        return app

    # -- behaviour control (also served under /_control/) -------------------------------------

    def service_account(self, project_id: str = "demo-project") -> dict[str, str]:
        """Mint and trust a new service account whose token_uri is this fake."""
        info = new_service_account(project_id, f"{self.url}/token")
        self.add_service_account(info)
        return info

    def add_service_account(self, info: dict[str, Any]) -> None:
        """Trust an existing service-account dict (e.g. one written by an earlier run)."""
        key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        account = _Account(info["project_id"], info.get("private_key_id", ""), key.public_key())
        with self._lock:
            self._accounts[info["client_email"]] = account

    def script(self, token: str, answers: list[str]) -> None:
        """Queue answers for `token`: "OK", an ANSWERS name or "HTTP_503", + ":retry_after=N"."""
        for answer in answers:
            name = answer.partition(":")[0]
            if name != "OK" and name not in ANSWERS and not re.fullmatch(r"HTTP_\d{3}", name):
                raise ValueError(f"unknown FCM answer {answer!r}")
        with self._lock:
            self._scripts.setdefault(token, deque()).extend(answers)

    def set_faults(self, *, seed: int | None = None, **faults: float) -> dict[str, float]:
        """Change unregistered_rate, quota_rate, quota_retry_after, latency_ms; return them all."""
        with self._lock:
            unknown = set(faults) - set(self._faults)
            if unknown:
                raise ValueError(f"unknown faults {sorted(unknown)}")
            for key, value in faults.items():
                self._faults[key] = type(self._faults[key])(value)  # rates float, the rest int
            if seed is not None:
                self._rng = random.Random(seed)
            return dict(self._faults)

    def expire_access_tokens(self) -> None:
        """Forget every issued access token, as if Google had revoked them."""
        with self._lock:
            self._access_tokens.clear()

    def reset(self) -> None:
        """Forget messages, scripts, faults and counters; keep service accounts and tokens."""
        with self._lock:
            self._messages.clear()
            self._times.clear()
            self._scripts.clear()
            self._outcomes.clear()
            self._tokens_issued = self._accepted = 0
            self._in_flight.reset()
            # A request still held (latency) at the reset belongs to the time before it.
            self._epoch += 1
            self._faults = self._default_faults()
            self._rng = random.Random(self._seed)

    def stats(self) -> dict[str, Any]:
        """Return access tokens issued, messages accepted, answers by name, and the faults."""
        with self._lock:
            return {
                "tokens_issued": self._tokens_issued,
                "messages": self._accepted,
                "outcomes": dict(self._outcomes),
                "faults": dict(self._faults),
                "peak_in_flight": self._in_flight.peak,
            }

    def times(self, offset: int = 0) -> list[tuple[str, float]]:
        """Return (token, unix time) of each accepted message, from the `offset`-th on."""
        with self._lock:
            return self._times[offset:]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Return the accepted messages, oldest first (each the v1 `message` plus its `name`)."""
        with self._lock:
            return list(self._messages)

    @staticmethod
    def _default_faults() -> dict[str, float]:
        return {
            "unregistered_rate": 0.0,
            "quota_rate": 0.0,
            "quota_retry_after": 60,
            "latency_ms": 0,
        }

    # -- OAuth 2.0 token endpoint ------------------------------------------------------------

    async def _handle_token(self, request: web.Request) -> web.Response:
        """Answer the JWT-bearer grant (RFC 7523) the way oauth2.googleapis.com does."""
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return _grant_error("unsupported_grant_type", "Invalid grant_type.")
        assertion = str(form.get("assertion", ""))
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
            kid = jwt.get_unverified_header(assertion).get("kid")
        except jwt.PyJWTError:
            return _grant_error("invalid_grant", "Invalid JWT: malformed assertion.")
        with self._lock:
            account = self._accounts.get(str(claims.get("iss")))
        if account is None:
            return _grant_error("invalid_grant", "Invalid grant: account not found")
        try:
            if kid and kid != account.private_key_id:
                raise jwt.InvalidSignatureError
            jwt.decode(
                assertion,
                account.public_key,
                algorithms=["RS256"],
                audience=[f"{self.url}/token", GOOGLE_TOKEN_URI],
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.InvalidSignatureError:
            return _grant_error("invalid_grant", "Invalid JWT Signature.")
        except jwt.InvalidAudienceError:
            return _grant_error("invalid_grant", "Invalid JWT: Failed audience check.")
        except jwt.PyJWTError:
            return _grant_error("invalid_grant", _SHORT_LIVED)
        if claims["exp"] - claims["iat"] > ACCESS_TOKEN_LIFETIME:
            return _grant_error("invalid_grant", _SHORT_LIVED)
        if not MESSAGING_SCOPES & set(str(claims.get("scope", "")).split()):
            return _grant_error(
                "invalid_scope", "Invalid OAuth scope or ID token audience provided."
            )
        access_token = f"ya29.fake-{secrets.token_urlsafe(32)}"
        with self._lock:
            expiry = time.time() + ACCESS_TOKEN_LIFETIME
            self._access_tokens[access_token] = (claims["iss"], expiry)
            self._tokens_issued += 1
        answer = {"access_token": access_token, "expires_in": ACCESS_TOKEN_LIFETIME}
        return web.json_response({**answer, "token_type": "Bearer"})

    # -- FCM v1 messages:send ----------------------------------------------------------------

    async def _handle_send(self, request: web.Request) -> web.Response:
        """Validate and accept (or fail, as scripted) one `messages:send` call."""
        with self._in_flight:
            return await self._send(request)

    async def _send(self, request: web.Request) -> web.Response:
        project_id = request.match_info["project_id"]
        epoch = self._epoch
        raw = await request.read()  # before the latency: a client that gives up resets the socket
        if self._faults["latency_ms"]:
            await asyncio.sleep(self._faults["latency_ms"] / 1000)
            if epoch != self._epoch:
                return web.json_response({"name": f"projects/{project_id}/messages/stale"})
        granted = self._granted_project(request.headers.get("Authorization", ""))
        if granted is None:
            return self._error("UNAUTHENTICATED", Answer(401, None, _UNAUTHENTICATED))
        if granted != project_id:
            denied = (
                "Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project_id}' "
                "(or it may not exist)."
            )
            return self._error("PERMISSION_DENIED", Answer(403, None, denied))
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error("INVALID_ARGUMENT", Answer(400, None, "Invalid JSON payload."))
        problem = validate_send_request(body)
        if problem:
            answer = Answer(400, "INVALID_ARGUMENT", problem[1], problem[0])
            return self._error("INVALID_ARGUMENT", answer)
        message = body["message"]
        with self._lock:
            name, _, options = self._next_answer(message.get("token")).partition(":")
            if name == "OK":
                message_id = (
                    "fake_message_id" if body.get("validate_only") else secrets.token_hex(8)
                )
                result = f"projects/{project_id}/messages/{message_id}"
                if not body.get("validate_only"):
                    self._messages.append({"name": result, **message})
                    self._times.append((message.get("token", ""), time.time()))
                    self._accepted += 1
                self._outcomes["OK"] += 1
                return web.json_response({"name": result})
        settings = dict(opt.partition("=")[::2] for opt in options.split(";") if opt)
        headers = {"Retry-After": settings["retry_after"]} if "retry_after" in settings else {}
        if name.startswith("HTTP_"):
            # A bare status with a non-JSON body, as a proxy or load balancer in front would send.
            status = int(name.removeprefix("HTTP_"))
            with self._lock:
                self._outcomes[name] += 1
            html = f"<html><body>Error {status}</body></html>"
            return web.Response(status=status, text=html, content_type="text/html", headers=headers)
        return self._error(name, ANSWERS[name], headers)

    def _granted_project(self, authorization: str) -> str | None:
        scheme, _, access_token = authorization.partition(" ")
        with self._lock:
            email, expiry = self._access_tokens.get(access_token, ("", 0.0))
            if scheme.lower() != "bearer" or expiry < time.time():
                return None
            return self._accounts[email].project_id

    def _next_answer(self, token: str | None) -> str:
        """Pick the answer for one message: script, token convention, random faults, OK."""
        queue = self._scripts.get(token or "")
        if queue:
            return queue.popleft()
        if token and token.startswith(UNREGISTERED_PREFIX):
            return "UNREGISTERED"
        roll = self._rng.random()
        if roll < self._faults["unregistered_rate"]:
            return "UNREGISTERED"
        if roll < self._faults["unregistered_rate"] + self._faults["quota_rate"]:
            return f"QUOTA_EXCEEDED:retry_after={int(self._faults['quota_retry_after'])}"
        return "OK"

    def _error(
        self, name: str, answer: Answer, headers: dict[str, str] | None = None
    ) -> web.Response:
        with self._lock:
            self._outcomes[name] += 1
        return web.json_response(error_body(answer), status=answer.status, headers=headers)

    # -- /_control/ --------------------------------------------------------------------------

    async def _handle_control(self, request: web.Request) -> web.Response:
        """Serve /_control/{action}, the JSON twin of the control methods, for other processes."""
        action = request.match_info["action"]
        try:
            body = await request.json() if request.can_read_body else {}
            result = self._control(action, body)
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        if result is None:
            raise web.HTTPNotFound()
        return web.json_response(result)

    def _control(self, action: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if action == "stats":
            return self.stats()
        if action == "messages":
            return {"messages": self.messages}
        if action == "times":
            return {"times": self.times(int(body.get("offset", 0)))}
        if action == "faults":
            return self.set_faults(**body)
        if action == "service-accounts/new":
            return self.service_account(body.get("project_id", "demo-project"))
        simple = {
            "reset": lambda: self.reset(),
            "expire-tokens": lambda: self.expire_access_tokens(),
            "script": lambda: self.script(body["token"], list(body["answers"])),
            "service-accounts/register": lambda: self.add_service_account(body),
        }
        if action not in simple:
            return None
        simple[action]()
        return {"ok": True}


def _grant_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)


def main(argv: list[str] | None = None) -> None:
    """Run the fake until interrupted, trusting (or writing) a service-account file."""
    parser = argparse.ArgumentParser(prog="python -m fakes.fcm", description=__doc__)
    parser.add_argument("--port", type=int, default=9091)
    parser.add_argument("--project", default="demo-project")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep-messages",
        type=int,
        default=100_000,
        help="accepted messages kept whole for /_control/messages (the latest N)",
    )
    parser.add_argument(
        "--service-account",
        "--service-account-out",
        dest="service_account",
        type=Path,
        help="service-account JSON file: trusted if it exists, else created there",
    )
    args = parser.parse_args(argv)
    fake = FakeFcm(port=args.port, seed=args.seed, keep_messages=args.keep_messages)
    url = fake.start()
    path: Path | None = args.service_account
    if path and path.exists():
        info = json.loads(path.read_text())
        fake.add_service_account(info)
        if info.get("token_uri") != f"{url}/token":
            print(f"warning: {path} has token_uri {info.get('token_uri')}, not {url}/token")
    elif path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(fake.service_account(args.project), indent=2))
    print(f"fake FCM listening on {url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
