"""The benchmark harness at a tiny scale: real gunicorn, qcluster, fakes and PostgreSQL.

It runs the same code as `make bench` (bench.harness.run with the SMOKE scale) and checks
only correctness — nothing lost, nothing duplicated, every delivery in the state the fakes'
answers call for, one receipt per finished delivery with signatures that verify — never a
timing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from bench import harness, report
from bench.stack import database_url_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_benchmark_smoke_loses_and_duplicates_nothing(tmp_path):
    results = harness.run(
        harness.SMOKE,
        database_url=database_url_of(settings.DATABASES["default"]),
        workdir=tmp_path,
        progress=lambda text: None,
    )
    runs = results["delivery"]
    summary = {
        name: {"problems": run["problems"], "by_status": run["by_status"]}
        for name, run in runs.items()
    }
    out = ROOT / "artifacts" / "reliability" / "bench_smoke.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))

    assert results["accept"]["ok"], results["accept"]["check"]
    for name, run in runs.items():
        assert not run["wait"]["timed_out"], name
        assert run["problems"] == dict.fromkeys(run["problems"], 0), (name, run["problems"])
        assert run["signatures"]["sampled"] > 0, name
        assert run["signatures"]["verified"] == run["signatures"]["sampled"], name
        receipts = sum(
            p.get("accept_to_receipt", {}).get("count", 0) for p in run["latency_ms"].values()
        )
        delivered = sum(v for k, v in run["by_status"].items() if k.endswith("_delivered"))
        assert receipts == delivered, name
    assert runs["mixed_max"]["deliveries"] == 2 * harness.SMOKE.mixed_users
    # The faults really happened, and each ended as the fakes' answers call for.
    faults = runs["faults"]
    assert faults["expected_from_fakes"]["invalid_token"] > 0
    assert faults["expected_from_fakes"]["throttled"] > 0
    assert faults["observed"]["invalid_token"] == faults["expected_from_fakes"]["invalid_token"]
    assert faults["observed"]["retries"] == faults["expected_from_fakes"]["throttled"]
    for name, users in (
        ("peer", harness.SMOKE.peer_users),
        ("floor", harness.SMOKE.floor_users),
        ("floor_receipts", harness.SMOKE.floor_users),
    ):
        rival = results[name]
        assert rival["available"], name
        assert "error" not in rival, rival
        counted = rival["fakes_counted"]
        assert counted["webpush_2xx"] == rival["webpush"]["ok"] == users
        assert counted["fcm_2xx"] == rival["fcm"]["ok"] == users
    # The floor with receipts POSTed one to the webhook per accepted message; the others none.
    receipted = results["floor_receipts"]
    assert receipted["webpush"]["receipts_ok"] == receipted["fcm"]["receipts_ok"] == users
    assert receipted["fakes_counted"]["webhook_requests"] == 2 * users
    assert results["floor"]["fakes_counted"]["webhook_requests"] == 0
    assert set(results["ratios"]) == {"peer", "floor", "floor_receipts"}
    # The broadcast and schedule phases (bench.audiences), tiny: every message accounted for.
    broadcast, scheduled = results["audiences"]["broadcast"], results["audiences"]["scheduled"]
    assert broadcast["status"] == 202 and broadcast["recipients"] == harness.SMOKE.broadcast_users
    assert broadcast["fan_out"]["notifications"] == harness.SMOKE.broadcast_users
    assert broadcast["pipeline"]["finished_deliveries"] == harness.SMOKE.broadcast_users
    assert scheduled["lateness_s"]["count"] == harness.SMOKE.scheduled_sends
    for phase in (broadcast, scheduled):
        assert phase["problems"] == dict.fromkeys(phase["problems"], 0), phase["problems"]
        assert phase["ok"]
    assert results["ok"]
    assert "| measure | result | target |" in report.table(results)
    assert "broadcast fan-out" in report.table(results)
    written = harness.write(results, tmp_path, "smoke")
    assert json.loads(written.read_text())["meta"]["machine"]["cores"] >= 1
    assert all((tmp_path / name).stat().st_size > 0 for name in results["plots"])
