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
