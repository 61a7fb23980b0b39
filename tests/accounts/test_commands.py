"""The scripting commands: create_user, create_app, enroll."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import App, AppAdmin, Enrollment, User

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_user_create_app_enroll():
    _run("create_user", "boss@example.com", "--password", "pw-123456", "--staff")
    assert User.objects.get(email="boss@example.com").is_staff
    printed = json.loads(_run("create_app", "GymOps", "--admin", "boss@example.com"))
    assert set(printed) == {"app_id", "client_id", "client_secret"}
    app = App.objects.get(app_id=printed["app_id"])
    assert app.check_client_secret(printed["client_secret"])
    assert AppAdmin.objects.filter(app=app, user__email="boss@example.com").exists()
    _run("create_user", "member@example.com", "--password", "pw-123456")
    assert "enrolled" in _run("enroll", printed["app_id"], "member@example.com")
    assert Enrollment.objects.filter(app=app, user__email="member@example.com").exists()


def test_duplicate_user_is_a_clear_error():
    _run("create_user", "a@example.com", "--password", "pw")
    with pytest.raises(CommandError, match="already exists"):
        _run("create_user", "a@example.com", "--password", "pw")


def test_enroll_unknown_app_is_a_clear_error():
    _run("create_user", "a@example.com", "--password", "pw")
    with pytest.raises(CommandError, match="No app"):
        _run("enroll", "not-a-uuid", "a@example.com")
