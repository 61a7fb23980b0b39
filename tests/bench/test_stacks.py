"""`--stacks 2` at a tiny scale: two stacks (each its own gunicorn and qcluster) on one database.

Both take sends at once; every message must be delivered once, with its receipt, whichever
stack accepted it and whichever cluster's worker claimed it. Correctness only, never a timing.
"""

from __future__ import annotations

import dataclasses

import pytest
from django.conf import settings

from bench import harness, report
from bench.stack import database_url_of


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_stacks_on_one_database_lose_and_duplicate_nothing(tmp_path):
    scale = dataclasses.replace(harness.SMOKE, stacks=2, mixed_users=40)
    results = harness.run_stacks(
        scale,
        database_url=database_url_of(settings.DATABASES["default"]),
        workdir=tmp_path,
        progress=lambda text: None,
    )
    many = results["delivery"]["mixed_stacks"]
    assert many["stacks"] == 2
    assert not many["wait"]["timed_out"]
    assert many["problems"] == dict.fromkeys(many["problems"], 0), many["problems"]
    assert many["deliveries"] == 2 * scale.mixed_users
    delivered = {k: v for k, v in many["by_status"].items() if v}
    assert delivered == {"fcm_delivered": 40, "webpush_delivered": 40}
    assert many["signatures"]["verified"] == many["signatures"]["sampled"] > 0
    # Both web servers took sends: the bulk requests alternate between them, all accepted.
    assert many["accept"]["accepted"] == many["accept"]["requests"] >= 4
    # The second stack's processes were sampled with the first's and are gone afterwards.
    assert many["cost"]["cpu_seconds"]["web"] > 0
    assert results["stacks"]["lost"] == results["stacks"]["duplicated"] == 0
    assert results["stacks"]["ok"] and results["ok"]
    assert "2 stacks, one PostgreSQL" in report.table(results)
    per = many["cost"]["per_delivered_message"]
    assert per["statements"] > 0 and per["rows_written"] > 0 and per["wal_bytes"] > 0
    assert per["wal_bytes_database"] > 0  # pg_walinspect read this database's own records
