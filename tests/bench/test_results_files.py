"""Results files: a second run of the day is written beside the first, never over it."""

from __future__ import annotations

import datetime as dt
import json

from bench import harness


def test_runs_of_one_day_get_their_own_files(tmp_path):
    today = dt.date.today().isoformat()

    paths = [harness.write({"run": n}, tmp_path) for n in range(3)]

    assert [p.name for p in paths] == [f"{today}.json", f"{today}-2.json", f"{today}-3.json"]
    assert [json.loads(p.read_text())["run"] for p in paths] == [0, 1, 2]


def test_a_named_run_is_written_under_its_name(tmp_path):
    path = harness.write({"run": 1}, tmp_path, "fifth")

    assert path == tmp_path / "fifth.json"
    assert json.loads(path.read_text())["plots"] == []


def test_recycled_workers_are_compared_generation_by_generation():
    # The cluster's own processes last the whole soak; workers come and go, each peaking
    # higher than the one before when the delivery code leaks.
    series = {
        # A round's samples are a few milliseconds apart.
        "workers:1": [(0.52, 60.0), (300.5, 60.1), (600.47, 60.1)],
        "web:2": [(0.5, 98.0), (600.5, 98.2)],
    }
    for n, born in enumerate(range(0, 600, 100)):
        series[f"workers:{10 + n}"] = [(born + 0.5, 90.0), (born + 80.5, 95.0 + 2 * n)]

    generations = harness.worker_generations(series)

    assert generations == {
        "count": 6,
        "median_lifetime_s": 80.0,
        "first_peak_mb": 97.0,
        "last_peak_mb": 103.0,
        "max_peak_mb": 105.0,
        "growth_pct": 6.19,
    }


def test_a_soak_without_recycled_workers_says_so():
    assert harness.worker_generations({"workers:1": [(0.5, 60.0), (600.5, 60.0)]}) == {"count": 0}
