"""Every log record at DEBUG, whole: message, arguments, extras and traceback.

In the test process `every_logger_at_debug()` collects records; `python -m
tests.security.debuglogs` runs `manage.py qcluster` the same way and prints each record as one
JSON line, so a real worker's logs can be searched too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from typing import Any

from keymaster.logs import LogIdsFilter

# Named so they exist (and are DEBUG) before their libraries first log; loggers created later
# inherit DEBUG from these or from the root.
LOGGERS = (
    "django",
    "django.request",
    "django.server",
    "django.security",
    "django.db.backends",
    "django_q",
    "django-q",
    "httpx",
    "httpcore",
    "urllib3",
    "requests",
    "google",
    "google.auth",
    "firebase_admin",
    "aiohttp",
    "asyncio",
    "pywebpush",
    "py_vapid",
    "keymaster",
    "accounts",
    "push",
)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# The fakes are the outside world (FCM, a browser's push service, the app's receiver): what
# they log is theirs, not Keymaster's.
FAKE_THREAD = "fake-server"


def record_text(record: logging.LogRecord) -> str:
    """Return all a handler could write of `record` (a JSON formatter writes the extras too)."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not hide the arguments
        message = f"{record.msg!r} % {record.args!r}"
    parts = [record.name, record.levelname, message]
    extras = {key: value for key, value in vars(record).items() if key not in _STANDARD}
    if extras:
        parts.append(repr(extras))
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.stack_info:
        parts.append(record.stack_info)
    return " ".join(parts)


class Collector(logging.Handler):
    """Keep the text of every record, and count the fakes' records it leaves out."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.skipped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName == FAKE_THREAD:
            self.skipped += 1
            return
        LogIdsFilter().filter(record)
        self.lines.append(f"{record_text(record)} {_formatted(record)}")


def _formatted(record: logging.LogRecord) -> str:
    """The record as each LOG_FORMAT writes it (plain and json), ids included."""
    from keymaster.logs import formatter

    try:
        return " ".join(formatter(name).format(record) for name in ("plain", "json"))
    except Exception:  # noqa: BLE001 - a bad format string: record_text has what there is
        return ""


class JsonLines(logging.Handler):
    """Write each record's text as one JSON line."""

    def __init__(self, stream: Any) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(json.dumps(record_text(record), ensure_ascii=False) + "\n")
        self.stream.flush()


@contextlib.contextmanager
def every_logger_at_debug(handler: logging.Handler) -> Iterator[None]:
    """Route every logger, at DEBUG, to `handler` alone; restore them all afterwards."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger(name) for name in LOGGERS]
    loggers += [item for item in manager.loggerDict.values() if isinstance(item, logging.Logger)]
    loggers.append(logging.getLogger())
    saved = [(lg, lg.level, lg.propagate, lg.disabled, list(lg.handlers)) for lg in set(loggers)]
    try:
        for lg, *_ in saved:
            lg.setLevel(logging.DEBUG)
            lg.propagate, lg.disabled = True, False
            lg.handlers = []
        logging.getLogger().handlers = [handler]
        yield
    finally:
        for lg, level, propagate, disabled, handlers in saved:
            lg.setLevel(level)
            lg.propagate, lg.disabled, lg.handlers = propagate, disabled, handlers


def read_worker_log(path: str) -> list[str]:
    """Return the records a `debuglogs` worker printed (and any other line, as it is)."""
    lines = []
    with open(path, encoding="utf-8", errors="backslashreplace") as log:
        for line in log:
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append(line)
    return lines


def main() -> None:
    """Run `manage.py qcluster` with every record at DEBUG printed to stdout."""
    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keymaster.settings")
    django.setup()
    with every_logger_at_debug(JsonLines(sys.stdout)):
        call_command("qcluster")


if __name__ == "__main__":
    main()
