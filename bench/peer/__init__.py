"""The peer: the delivery workload sent the way a team would without Keymaster.

django-push-notifications 3.3.0 in a minimal Django project of its own (`bench.peer.settings`),
devices as its GCMDevice / WebPushDevice rows, one django-q2 task per send processed by
`qcluster` workers. `run(spec)` runs it in a separate process (`bench.peer.driver`), because
Django can hold only one settings module per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.workload import check_spec, fake_counts

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 3600


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Send one message to every FCM token and Web Push subscription; return the measurements.

    The result also carries `fake_check`: what the fakes accepted during the run, read from
    their /_control/stats, to compare with the senders' own count of 2xx answers.
    """
    check_spec(spec)
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    before = fake_counts(spec)
    with tempfile.TemporaryDirectory(prefix="bench-peer-run-") as work:
        spec_path, result_path = Path(work) / "spec.json", Path(work) / "result.json"
        spec_path.touch(mode=0o600)  # it holds the VAPID private key
        spec_path.write_text(json.dumps(spec))
        completed = subprocess.run(
            [sys.executable, "-m", "bench.peer.driver", str(spec_path), str(result_path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
        if completed.returncode != 0 or not result_path.exists():
            log = Path(work) / "qcluster.log"
            cluster = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"peer driver failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
                f"\nqcluster log:\n{cluster}"
            )
        result = json.loads(result_path.read_text())
    after = fake_counts(spec)
    result["fake_check"] = {key: after[key] - before[key] for key in after}
    return result
