"""The `keymaster` command: send, inspect and cancel notifications, list devices and verify a
receipt webhook from a shell. Credentials come from KEYMASTER_URL, KEYMASTER_CLIENT_ID and
KEYMASTER_CLIENT_SECRET; `--json` prints machine-readable output; the exit code says what kind
of error happened (see EXIT_CODES)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from keymaster_client._version import __version__
from keymaster_client.client import KeymasterClient
from keymaster_client.errors import (
    AuthenticationError,
    IdempotencyConflict,
    KeymasterConnectionError,
    KeymasterError,
    NotCancelable,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ValidationError,
    WebhookVerificationError,
)
from keymaster_client.models import Notification, UnexpectedAnswer, parse_time
from keymaster_client.webhooks import verify_webhook

EXIT_OK = 0
EXIT_ERROR = 1  # any other error answered by Keymaster
EXIT_USAGE = 2  # bad arguments or missing credentials (argparse's own code)
EXIT_AUTH = 3
EXIT_FORBIDDEN = 4
EXIT_NOT_FOUND = 5
EXIT_INVALID = 6
EXIT_RATE_LIMITED = 7
EXIT_UNAVAILABLE = 8
EXIT_BAD_SIGNATURE = 9

# Most specific first: NotEnrolled is a PermissionDenied, QuotaExceeded a RateLimited.
EXIT_CODES: tuple[tuple[tuple[type[Exception], ...], int], ...] = (
    ((AuthenticationError,), EXIT_AUTH),
    ((PermissionDenied,), EXIT_FORBIDDEN),
    ((NotFound,), EXIT_NOT_FOUND),
    ((ValidationError, IdempotencyConflict, PayloadTooLarge, NotCancelable), EXIT_INVALID),
    ((RateLimited,), EXIT_RATE_LIMITED),
    ((ServerError, KeymasterConnectionError), EXIT_UNAVAILABLE),
    ((WebhookVerificationError,), EXIT_BAD_SIGNATURE),
)

ENV_URL = "KEYMASTER_URL"
ENV_CLIENT_ID = "KEYMASTER_CLIENT_ID"
ENV_CLIENT_SECRET = "KEYMASTER_CLIENT_SECRET"  # noqa: S105 - a variable's name
ENV_APP_ID = "KEYMASTER_APP_ID"
ENV_WEBHOOK_SECRET = "KEYMASTER_WEBHOOK_SECRET"  # noqa: S105 - a variable's name

_RELATIVE = re.compile(r"\+(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class UsageError(Exception):
    """Bad arguments or environment: exit 2 with the message."""


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command line; return its exit code (streams and environment injectable)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's usage error (already printed)
        return int(exc.code or 0)
    environ = os.environ if env is None else env
    try:
        result = args.command(args, environ, stdin or sys.stdin.buffer)
    except UsageError as exc:
        err.write(f"keymaster: {exc}\n")
        return EXIT_USAGE
    except (KeymasterError, WebhookVerificationError) as exc:
        _print_error(exc, args.json, err)
        return exit_code(exc)
    _print_result(result, args.json, out)
    return EXIT_OK


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


def exit_code(error: Exception) -> int:
    for kinds, code in EXIT_CODES:
        if isinstance(error, kinds):
            return code
    return EXIT_ERROR


# --- Commands --------------------------------------------------------------------------------


def _send(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[bytes]) -> Any:
    with _client(env, args) as client:
        notification_id = client.send_push(
            args.user,
            args.title,
            args.body,
            data=dict(args.data) or None,
            ttl=args.ttl,
            priority=args.priority,
            send_at=args.at,
            idempotency_key=args.idempotency_key,
            dry_run=args.dry_run,
        )
    return {"notification_id": notification_id, "dry_run": args.dry_run}


def _status(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[bytes]) -> Any:
    with _client(env, args) as client:
        return client.get_notification(args.notification_id)


def _cancel(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[bytes]) -> Any:
    with _client(env, args) as client:
        return client.cancel_notification(args.notification_id)


def _devices(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[bytes]) -> Any:
    app_id = args.app_id or env.get(ENV_APP_ID)
    if not app_id:
        raise UsageError(f"devices needs --app-id or {ENV_APP_ID}")
    with _client(env, args) as client:
        return list(client.iter_devices(app_id, platform=args.platform, user_id=args.user))


def _verify_webhook(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[bytes]) -> Any:
    secret = args.secret or env.get(ENV_WEBHOOK_SECRET)
    if not secret:
        raise UsageError(f"verify-webhook needs --secret or {ENV_WEBHOOK_SECRET}")
    return verify_webhook(
        stdin.read(),
        dict(args.header),
        secret,
        accept_keymaster_signature_alone=args.accept_keymaster_signature_alone,
    )


def _client(env: Mapping[str, str], args: argparse.Namespace) -> KeymasterClient:
    missing = [name for name in (ENV_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET) if not env.get(name)]
    if missing:
        raise UsageError(f"set {', '.join(missing)} in the environment")
    return KeymasterClient(
        env[ENV_URL],
        env[ENV_CLIENT_ID],
        env[ENV_CLIENT_SECRET],
        timeout=args.timeout,
        max_retries=args.retries,
    )


# --- Arguments -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keymaster",
        description=(
            "Send and inspect Keymaster push notifications. Credentials: "
            f"{ENV_URL}, {ENV_CLIENT_ID}, {ENV_CLIENT_SECRET}."
        ),
        epilog="Exit codes: 0 ok, 1 other error, 2 usage, 3 authentication, 4 permission "
        "denied, 5 not found, 6 invalid request, 7 rate limited or quota, 8 server "
        "unavailable, 9 webhook signature invalid.",
    )
    parser.add_argument("--version", action="version", version=f"keymaster {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON")
    common.add_argument("--timeout", type=float, default=10, help="seconds per request")
    common.add_argument("--retries", type=int, default=3, help="retries after the first try")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    send = _command(commands, common, "send", _send, "send one notification to a user")
    send.add_argument("--user", required=True, help="the user_id")
    send.add_argument("--title", required=True)
    send.add_argument("--body", required=True)
    send.add_argument("--data", action="append", type=_pair("="), default=[], metavar="KEY=VALUE")
    send.add_argument("--ttl", type=int)
    send.add_argument("--priority", choices=["high", "normal"])
    send.add_argument(
        "--at", type=_time, help="send later: RFC 3339 with an offset, or +30s/+10m/+2h/+1d"
    )
    send.add_argument("--idempotency-key")
    send.add_argument("--dry-run", action="store_true", help="validate without sending")

    status = _command(commands, common, "status", _status, "a notification and its deliveries")
    status.add_argument("notification_id")
    cancel = _command(commands, common, "cancel", _cancel, "cancel a scheduled notification")
    cancel.add_argument("notification_id")

    devices = _command(commands, common, "devices", _devices, "list the app's devices")
    devices.add_argument("--app-id", help=f"the app whose devices to list (or {ENV_APP_ID})")
    devices.add_argument("--platform", choices=["web", "ios", "android"])
    devices.add_argument("--user", help="only this user_id's devices")

    verify = _command(
        commands, common, "verify-webhook", _verify_webhook, "verify a receipt read from stdin"
    )
    verify.add_argument("--secret", help=f"the webhook secret whsec_... (or {ENV_WEBHOOK_SECRET})")
    verify.add_argument(
        "-H",
        "--header",
        action="append",
        type=_pair(":"),
        default=[],
        metavar="'NAME: VALUE'",
        help="a header of the request, as received (repeat for each)",
    )
    verify.add_argument(
        "--accept-keymaster-signature-alone",
        action="store_true",
        help="accept a receipt signed only with X-Keymaster-Signature (no timestamp: replayable)",
    )
    return parser


Command = Callable[[argparse.Namespace, Mapping[str, str], IO[bytes]], Any]


def _command(
    commands: Any, common: argparse.ArgumentParser, name: str, run: Command, help_text: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=[common], help=help_text, description=help_text
    )
    parser.set_defaults(command=run)
    return parser


def _pair(separator: str) -> Callable[[str], tuple[str, str]]:
    def split(value: str) -> tuple[str, str]:
        name, found, rest = value.partition(separator)
        if not found or not name.strip():
            raise argparse.ArgumentTypeError(f"expected NAME{separator}VALUE, got {value!r}")
        return name.strip(), rest.strip() if separator == ":" else rest

    return split


def _time(value: str, now: Callable[[], datetime] | None = None) -> str:
    """Read `--at`: RFC 3339 with an offset, or a wait from now such as +10m."""
    relative = _RELATIVE.fullmatch(value.strip())
    if relative:
        current = now() if now else datetime.now(timezone.utc)
        wait = timedelta(**{_UNITS[relative[2]]: int(relative[1])})
        return (current + wait).isoformat(timespec="seconds")
    try:
        parse_time(value)
        has_offset = (
            value.strip().upper().endswith("Z")
            or datetime.fromisoformat(value.strip()).utcoffset() is not None
        )
    except (UnexpectedAnswer, ValueError):
        has_offset = False
    if not has_offset:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an RFC 3339 time with an offset (e.g. 2026-12-24T08:00:00+01:00)"
        )
    return value.strip()


# --- Output ----------------------------------------------------------------------------------


def _print_result(result: Any, as_json: bool, out: IO[str]) -> None:
    if as_json:
        out.write(json.dumps(_plain(result), indent=2, sort_keys=True) + "\n")
        return
    for line in _lines(result):
        out.write(line + "\n")


def _lines(result: Any) -> Iterable[str]:
    if isinstance(result, Notification):
        when = f", send_at {result.send_at.isoformat()}" if result.send_at else ""
        yield f"{result.notification_id} {result.status} (to {result.user_id}{when})"
        for delivery in result.deliveries:
            error = f" {delivery.error}" if delivery.error else ""
            yield (
                f"  {delivery.device_id} {delivery.platform} {delivery.status}"
                f" attempts={delivery.attempts}{error}"
            )
    elif isinstance(result, list):
        for item in result:
            fields = _plain(item)
            yield "  ".join(str(fields[name]) for name in _DEVICE_COLUMNS)
    elif isinstance(result, dict) and "notification_id" in result:
        yield "dry run: accepted" if result["dry_run"] else str(result["notification_id"])
    else:
        for name, value in sorted(_plain(result).items()):
            yield f"{name}: {value}"


_DEVICE_COLUMNS = ("device_id", "platform", "user_id", "label", "last_seen_at")


def _print_error(error: Exception, as_json: bool, err: IO[str]) -> None:
    if isinstance(error, WebhookVerificationError):
        body: dict[str, Any] = {"code": "webhook_verification_failed", "message": error.reason}
    else:
        assert isinstance(error, KeymasterError)
        body = {"code": error.code, "status": error.status, "message": error.message}
        if isinstance(error, ValidationError) and error.fields:
            body["fields"] = error.fields
    if as_json:
        err.write(json.dumps({"error": body}, sort_keys=True) + "\n")
    else:
        err.write(f"keymaster: {error}\n")


def _plain(value: Any) -> Any:
    """Dataclasses to dicts and datetimes to RFC 3339, for JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
