"""Figures for the README: tests write them to artifacts/reliability/<topic>.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "reliability"


def figures_record(topic: str, section: str, figures: dict[str, Any]) -> None:
    """Write one section of a topic's figures, keeping the sections other tests wrote."""
    path = ARTIFACTS / f"{topic}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        recorded = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        recorded = {}
    recorded[section] = figures
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
