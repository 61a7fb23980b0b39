"""The floor: a minimal asyncio sender written only to find what the hardware allows.

No database and no queue: RFC 8291 aes128gcm encryption per message (http_ece, as pywebpush
does, with a fresh ephemeral key and salt), one VAPID JWT per push-service origin signed once,
one OAuth access token fetched once through google-auth, one pooled aiohttp client (HTTP/1.1
keep-alive), and a fixed number of requests in flight. `run(spec)` runs it with spec["workers"]
processes, each sending its share (and, if asked, once more from a single process).

With spec["floor_receipts"] (``{"url": ..., "secret": "whsec_..."}``) every message the provider
accepts is followed by the receipt Keymaster's contract adds: the guide's JSON, signed as
Keymaster signs it, POSTed to the webhook fake over the same pooled client. That is the network
work the guide requires per message with still no database, no queue and no state: the most a
sender can do that keeps the contract, on the same box.

A sender process is `python -m bench.floor SHARD.json`: it prepares, prints "ready", then for
each line "webpush" or "fcm" on stdin sends its share and prints one JSON line of results.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2 import service_account
from py_vapid import Vapid

from bench.workload import (
    check_spec,
    fake_counts,
    fcm_data,
    provider_result,
    webpush_origins,
    webpush_payload,
)
from push.transports.webhook import signature_headers

ROOT = Path(__file__).resolve().parents[1]
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
IN_FLIGHT = 64  # requests in flight per process and provider
VAPID_LIFETIME = 12 * 3600  # pywebpush's default; RFC 8292 allows up to 24 hours
TIMEOUT_SECONDS = 1800
PHASES = ("webpush", "fcm")
Item = TypeVar("Item")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sender:
    """One process's sender: the keys, the token and the pooled client, prepared once."""

    def __init__(self, shard: dict[str, Any]) -> None:
        self.shard = shard
        self.payload = webpush_payload(shard)
        vapid = Vapid.from_pem(shard["vapid_private_key_pem"].encode())
        expires = int(time.time()) + VAPID_LIFETIME
        self.vapid_headers = {
            origin: {
                **vapid.sign({"sub": shard["vapid_subject"], "aud": origin, "exp": expires}),
                "TTL": "86400",
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
            }
            for origin in webpush_origins(shard)
        }
        self.fcm_url, self.fcm_headers = self._fcm_target(shard)
        message = {
            "token": "\0",
            "notification": {"title": shard["title"], "body": shard["body"]},
            "data": fcm_data(shard),
        }
        before, after = json.dumps({"message": message}).split(json.dumps("\0"))
        self.fcm_body = (before.encode(), after.encode())
        self.receipts = shard.get("floor_receipts")
        self.receipts_ok = 0
        self.session: aiohttp.ClientSession | None = None

    @staticmethod
    def _fcm_target(shard: dict[str, Any]) -> tuple[str, dict[str, str]]:
        credential = service_account.Credentials.from_service_account_file(
            shard["fcm_service_account_file"], scopes=[FCM_SCOPE]
        )
        credential.refresh(GoogleAuthRequest())
        url = f"{shard['fcm_url'].rstrip('/')}/v1/projects/{credential.project_id}/messages:send"
        headers = {
            "Authorization": f"Bearer {credential.token}",
            "Content-Type": "application/json",
        }
        return url, headers

    def encrypt(self, subscription: dict[str, Any]) -> bytes:
        """Encrypt the payload for one subscription (RFC 8291 aes128gcm)."""
        keys = subscription["keys"]
        return http_ece.encrypt(
            self.payload,
            salt=os.urandom(16),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            dh=b64url_decode(keys["p256dh"]),
            auth_secret=b64url_decode(keys["auth"]),
            version="aes128gcm",
        )

    async def send_webpush(self, subscription: dict[str, Any]) -> int:
        """Send one Web Push message; return the HTTP status (0 when no answer came)."""
        parts = urlsplit(subscription["endpoint"])
        headers = self.vapid_headers[f"{parts.scheme}://{parts.netloc}"]
        status = await self._post(subscription["endpoint"], self.encrypt(subscription), headers)
        return await self.receipted(status)

    async def send_fcm(self, token: str) -> int:
        """Send one FCM message; return the HTTP status (0 when no answer came)."""
        before, after = self.fcm_body
        body = before + json.dumps(token).encode() + after
        return await self.receipted(await self._post(self.fcm_url, body, self.fcm_headers))

    async def receipted(self, status: int) -> int:
        """After a provider's 2xx, POST the signed receipt (when asked to); return `status`."""
        if self.receipts and 200 <= status < 300:
            receipt_id = str(uuid.uuid4())
            body = json.dumps(
                {
                    "notification_id": receipt_id,
                    "user_id": str(uuid.uuid4()),
                    "device_id": str(uuid.uuid4()),
                    "app_id": str(uuid.uuid4()),
                    "status": "delivered",
                    "error": None,
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
                separators=(",", ":"),
            ).encode()
            headers = {
                "Content-Type": "application/json",
                **signature_headers(self.receipts["secret"], receipt_id, body, int(time.time())),
            }
            if 200 <= await self._post(self.receipts["url"], body, headers) < 300:
                self.receipts_ok += 1
        return status

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        assert self.session is not None
        try:
            async with self.session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status
        except (TimeoutError, aiohttp.ClientError):
            return 0


async def send_all(
    items: Iterable[Item], send: Callable[[Item], Awaitable[int]], in_flight: int
) -> Counter[int]:
    """Send every item with at most `in_flight` requests outstanding; count answers by status."""
    statuses: Counter[int] = Counter()
    pending = iter(items)

    async def lane() -> None:
        for item in pending:  # one iterator shared by every lane: each item is sent once
            statuses[await send(item)] += 1

    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return statuses


async def serve(shard: dict[str, Any]) -> None:
    """Prepare, say ready, then run each phase asked for on stdin."""
    sender = Sender(shard)
    in_flight = int(shard.get("floor_in_flight", IN_FLIGHT))
    connector = aiohttp.TCPConnector(limit=in_flight * 2, limit_per_host=in_flight)
    timeout = aiohttp.ClientTimeout(total=30)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sender.session = session
        print("ready", flush=True)
        while phase := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if phase not in PHASES:
                break
            items, send = (
                (shard["webpush_subscriptions"], sender.send_webpush)
                if phase == "webpush"
                else (shard["fcm_tokens"], sender.send_fcm)
            )
            cpu_before, receipts_before = _cpu_seconds(), sender.receipts_ok
            start = time.time()
            statuses = await send_all(items, send, in_flight)
            end = time.time()
            report = {
                "messages": len(items),
                "ok": sum(n for status, n in statuses.items() if 200 <= status < 300),
                "statuses": {str(k): v for k, v in statuses.items()},
                "receipts_ok": sender.receipts_ok - receipts_before,
                "start": start,
                "end": end,
                "cpu_seconds": _cpu_seconds() - cpu_before,
                "peak_rss_mb": _peak_rss_mb(),
            }
            print(json.dumps(report), flush=True)


def _peak_rss_mb() -> float:
    """Return this process's peak RSS: VmHWM, since ru_maxrss carries the parent's across exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_processes(spec: dict[str, Any], processes: int) -> dict[str, Any]:
    """Run both phases with `processes` sender processes, each sending every n-th message."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as work:
        children = []
        try:
            for index in range(processes):
                shard = {
                    **spec,
                    "fcm_tokens": spec["fcm_tokens"][index::processes],
                    "webpush_subscriptions": spec["webpush_subscriptions"][index::processes],
                }
                path = Path(work) / f"shard-{index}.json"
                path.touch(mode=0o600)  # it holds the VAPID private key
                path.write_text(json.dumps(shard))
                children.append(_start_child(path))
            for child in children:
                _expect_ready(child)
            phases = {phase: _run_phase(children, phase) for phase in PHASES}
        finally:
            for child in children:
                _stop_child(child)
    peak = max(r["peak_rss_mb"] for phase in phases.values() for r in phase["reports"])
    cpu = sum(r["cpu_seconds"] for phase in phases.values() for r in phase["reports"])
    result: dict[str, Any] = {phase: phases[phase]["result"] for phase in PHASES}
    result["processes"] = {
        f"floor-{i}": {
            "cpu_seconds": round(sum(phases[p]["reports"][i]["cpu_seconds"] for p in PHASES), 3),
            "peak_rss_mb": round(max(phases[p]["reports"][i]["peak_rss_mb"] for p in PHASES), 1),
        }
        for i in range(processes)
    }
    result["process_count"] = processes
    result["summary"] = {"cpu_seconds": round(cpu, 3), "peak_rss_mb_per_process": round(peak, 1)}
    return result


def _start_child(shard_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.floor", str(shard_path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _expect_ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"floor sender did not start (exit {child.poll()}): {line!r}")


def _run_phase(children: list[subprocess.Popen[str]], phase: str) -> dict[str, Any]:
    """Start `phase` in every child at once and collect their reports."""
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{phase}\n")
        child.stdin.flush()
    reports = []
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"floor sender died during {phase} (exit {child.poll()})")
        reports.append(json.loads(line))
    seconds = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    statuses: Counter[str] = Counter()
    for report in reports:
        statuses.update(report["statuses"])
    result = provider_result(
        sum(r["messages"] for r in reports),
        sum(r["ok"] for r in reports),
        seconds,
        statuses=dict(statuses),
        cpu_seconds=round(sum(r["cpu_seconds"] for r in reports), 3),
        receipts_ok=sum(r["receipts_ok"] for r in reports),
    )
    return {"result": result, "reports": reports}


def _stop_child(child: subprocess.Popen[str]) -> None:
    if child.poll() is None and child.stdin is not None:
        try:
            child.stdin.write("quit\n")
            child.stdin.close()
        except BrokenPipeError:
            pass
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(10)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Send one message to every FCM token and subscription with spec["workers"] processes.

    With spec["floor_single_process"] true (and more than one worker) it first sends the same
    messages again from one process and reports that run under `single_process`: the fakes
    then receive two messages per target. `fake_check` is what the fakes accepted meanwhile,
    read from their /_control/stats.
    """
    check_spec(spec)
    workers = int(spec.get("workers", 1))
    before = fake_counts(spec)
    single = None
    if spec.get("floor_single_process") and workers > 1:
        single = run_processes(spec, 1)
    used = run_processes(spec, workers)
    after = fake_counts(spec)
    in_flight = int(spec.get("floor_in_flight", IN_FLIGHT))
    receipts = "a signed receipt POSTed after each 2xx; " if spec.get("floor_receipts") else ""
    notes = (
        f"asyncio + aiohttp (HTTP/1.1 keep-alive), {in_flight} requests in flight per process "
        "and provider, aes128gcm via http_ece with a fresh ephemeral key per message, VAPID JWT "
        "signed once per origin, one OAuth token per process; Web Push phase then FCM phase, "
        f"{receipts}{workers} sender process(es): Web Push {used['webpush']['per_second']}/s, "
        f"FCM {used['fcm']['per_second']}/s."
    )
    if single:
        notes += (
            f" One process: Web Push {single['webpush']['per_second']}/s, "
            f"FCM {single['fcm']['per_second']}/s."
        )
    result = {
        "webpush": used["webpush"],
        "fcm": used["fcm"],
        "processes": used["processes"],
        "notes": notes,
        "process_count": used["process_count"],
        "fake_check": {key: after[key] - before[key] for key in after},
    }
    if single:
        result["single_process"] = single
    return result


def main(argv: list[str]) -> None:
    """Run one sender process on the shard file given."""
    shard = json.loads(Path(argv[0]).read_text())
    asyncio.run(serve(shard))


if __name__ == "__main__":
    main(sys.argv[1:])
