"""GET /healthz, and the settings that must stop start-up when missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import DatabaseError
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_healthz_is_200_when_the_database_answers():
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "up"


@pytest.mark.django_db
def test_healthz_is_503_when_the_database_does_not(monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def broken(self, sql, params=None):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", broken)
    assert APIClient().get("/healthz").status_code == 503


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_secret_key_with_debug_off_stops_with_its_name():
    result = _manage("check", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_check_deploy_is_clean_with_debug_off():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="x" * 64 + "-not-a-dev-key-" + "y" * 20,
        TOKEN_ENCRYPTION_KEYS="Bgw5VGbHxtTbpvJ6tGVfrYyBWbiTEu2cnxeUt7ylnFk=",
        TOKEN_LOOKUP_KEY="lookup-key",
        ALLOWED_HOSTS="keymaster.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
