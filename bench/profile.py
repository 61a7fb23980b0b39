"""`--profile`: a py-spy profile of the delivery workers, and the share of each worker step.

During the mixed maximum-rate run py-spy samples every process of the qcluster tree (the
workers, and the cluster's sentinel, pusher and monitor) 100 times a second without pausing
them (`--nonblocking`), idle threads left out, so a sample is a moment of CPU. Each sample is
given to the step whose function is innermost in its stack: the stack of an FCM request is
under the transport's `send`, that of a receipt's POST under `WebhookTransport.send`, and so
on. A step's share of the samples times the workers' CPU per delivered message is what the
step costs per message.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# (step, file fragment, function names or None for every function of the file). Tried from
# the innermost frame of a sample outwards; the first frame that matches names the step.
RULES: list[tuple[str, str, frozenset[str] | None]] = [
    ("encrypt", "http_ece", None),
    ("encrypt", "pywebpush", None),
    ("encrypt", "py_vapid", None),
    ("encrypt", "push/transports/webpush.py", frozenset({"_authorization"})),
    ("receipt", "push/delivery/receipts.py", None),
    ("receipt", "push/transports/webhook.py", None),
    (
        "record",
        "push/delivery/deliveries.py",
        frozenset(
            {
                "deliveries_record",
                "notifications_roll_up",
                "_open_notifications",
                "_final_status",
                "push_config_record_error",
            }
        ),
    ),
    ("record", "push/delivery/backoff.py", None),
    # The SSRF guard (push/outbound.py) is an aiohttp middleware around every request: its
    # frames and aiohttp's under it belong to the transport that made the request.
    ("http", "push/transports/", None),
    ("http", "firebase_admin", None),
    ("http", "push/delivery/deliveries.py", frozenset({"_send", "_send_group", "_send_app"})),
    ("http", "push/delivery/runtime.py", None),
    ("claim", "push/delivery/outbox.py", None),
    ("claim", "push/delivery/deliveries.py", None),  # claim, loading, building the messages
    ("claim", "push/tasks.py", None),
    ("http_io", "aiohttp", None),  # the loop's I/O callbacks: the provider's or the webhook's
    ("event_loop", "asyncio", None),
    ("task_overhead", "django_q", None),  # dequeue, unpickle, the task's result row
]
# Samples that are not CPU: py-spy's idle detection misses threads blocked in these (under
# `--nonblocking`, on a loaded box), so they are set apart by their innermost frame. The
# harness's statement counter (bench/sqlcount.py, a thread in every process) is not Keymaster.
WAITS: list[tuple[str, str, str]] = [
    ("harness_counter", "bench/sqlcount.py", ""),
    ("waiting_postgres", "psycopg/connection.py", "wait"),
    ("waiting_postgres", "psycopg/_connection_base.py", "wait"),
    ("waiting_idle", "selectors.py", "select"),
    ("waiting_idle", "threading.py", "wait"),
    ("waiting_idle", "multiprocessing/synchronize.py", "wait"),
    ("waiting_idle", "multiprocessing/connection.py", "poll"),
    ("waiting_idle", "multiprocessing/queues.py", "get"),
]
STEPS = ("claim", "encrypt", "http", "http_io", "record", "receipt", "event_loop")
LABELS = {
    "claim": "claim + load (claim UPDATE, deliveries, devices and their token decrypt)",
    "encrypt": "encrypt (Web Push RFC 8291 + VAPID JWT)",
    "http": "HTTP to the provider (transport, aiohttp request, SSRF guard)",
    "http_io": "HTTP I/O callbacks on the loop (aiohttp parsing; provider or webhook)",
    "record": "record (outcomes, roll-up)",
    "receipt": "receipt (rows, signed POST, its record)",
    "event_loop": "event loop itself",
    "task_overhead": "django-q2 (pusher, monitor, task unpickle and result)",
    "other": "other (imports, GC, Django setup)",
}


def py_spy() -> str | None:
    """The py-spy executable beside this Python, or on PATH; None if there is none."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy record on a process tree, from `start()` to `stop()`, as raw collapsed stacks."""

    def __init__(self, pid: int, output: Path, rate: int = 100) -> None:
        self.pid, self.output, self.rate = pid, output, rate
        self.proc: subprocess.Popen | None = None
        self.error: str | None = None

    def start(self) -> Profiler:
        exe = py_spy()
        if exe is None:
            self.error = "py-spy is not installed"
            return self
        command = [exe, "record", "--pid", str(self.pid), "--subprocesses", "--nonblocking"]
        command += ["--rate", str(self.rate), "--format", "raw", "--output", str(self.output)]
        self.log = open(self.output.with_suffix(".log"), "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> dict[str, Any]:
        """Stop py-spy (it writes its file on SIGINT) and return the shares per step."""
        if self.proc is None:
            return {"error": self.error}
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
        if not self.output.exists():
            return {"error": f"py-spy wrote no profile (see {self.output.with_suffix('.log')})"}
        return {"file": str(self.output), **shares(self.output.read_text())}


def _frames(line: str) -> tuple[list[tuple[str, str]], int]:
    stack, _, count = line.rpartition(" ")
    frames = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        frames.append((name.strip(), where.rstrip(")")))
    return frames, int(count)


def wait_of(frames: list[tuple[str, str]]) -> str | None:
    """The kind of wait a sample is (not CPU), or None for a sample of CPU."""
    for kind, fragment, name in WAITS:
        if not name and any(fragment in where for _, where in frames):
            return kind
    leaf_name, leaf_where = frames[-1]
    for kind, fragment, name in WAITS:
        if name and fragment in leaf_where and leaf_name.rpartition(".")[2] == name:
            return kind
    return None


def step_of(frames: list[tuple[str, str]]) -> str:
    """The step a sample's stack (outermost frame first) belongs to."""
    # Keymaster's own functions first, anywhere in the stack; only a stack with none of them
    # goes to the library it is in (the loop's callbacks, django-q2's processes).
    for rules in (RULES[:-3], RULES[-3:]):
        for name, where in reversed(frames):
            path = where.replace("\\", "/")
            for step, fragment, names in rules:
                if fragment in path and (names is None or name in names):
                    return step
    return "other"


def shares(raw: str, top: int = 25) -> dict[str, Any]:
    """Samples per step and their shares; the hottest functions, by own and by total samples.

    Shares are of the CPU samples: the waits (`WAITS`) are counted apart, in `not_cpu`.
    """
    per_step: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        if not line.strip() or not line.rstrip()[-1:].isdigit():
            continue
        frames, count = _frames(line)
        frames = [f for f in frames if f[1]]  # drop py-spy's "process ..." / "thread ..." frames
        if not frames:
            continue
        wait = wait_of(frames)
        if wait is not None:
            waits[wait] += count
            continue
        samples += count
        per_step[step_of(frames)] += count
        own[_label(frames[-1])] += count
        for label in {_label(f) for f in frames}:
            total[label] += count
    share = {k: round(v / samples, 4) for k, v in per_step.most_common()} if samples else {}
    return {
        "samples": samples,
        "not_cpu": dict(waits.most_common()),
        "per_step": dict(per_step.most_common()),
        "share": share,
        "top_own": [(k, round(v / samples, 4)) for k, v in own.most_common(top)],
        "top_total": [
            (k, round(v / samples, 4))
            for k, v in total.most_common(top * 4)
            if "/push/" in k or "/keymaster/" in k
        ][:top],
    }


def _label(frame: tuple[str, str]) -> str:
    name, where = frame
    path, _, _line = where.rpartition(":")
    for marker in ("site-packages/", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    if path.startswith(("wt/", "main/")):
        path = path.split("/", 2)[-1]
    return f"{name} ({'/' + path if not path.startswith('/') else path})"


def per_message(profile: dict[str, Any], workers_ms: float | None) -> dict[str, float]:
    """Each step's share of the workers' CPU per delivered message, in ms."""
    if not workers_ms or not profile.get("share"):
        return {}
    return {step: round(share * workers_ms, 4) for step, share in profile["share"].items()}
