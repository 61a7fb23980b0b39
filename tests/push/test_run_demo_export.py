"""`make run` prints an export block: pasted into a shell, the README's curl lines work."""

from __future__ import annotations

import base64
import subprocess

import pytest
from django.test import Client

from accounts.services import app_create, user_create
from push.management.commands.run_demo import export_block

pytestmark = pytest.mark.django_db


def test_the_export_block_sets_what_the_readmes_curl_lines_use():
    admin = user_create(email="admin@keymaster.local", password="adm-'pass word", is_staff=True)
    user = user_create(email="user@keymaster.local", password="usr-pass")
    app, secret = app_create(name="Demo App", admin=admin)
    block = export_block(
        app=app, secret=secret, admin=(admin, "adm-'pass word"), user=(user, "usr-pass")
    )
    names = ["B", "APP_ID", "CLIENT_ID", "CLIENT_SECRET", "ADMIN_EMAIL", "ADMIN_PASSWORD"]
    names += ["USER_ID", "USER_EMAIL", "USER_PASSWORD"]
    script = block + "\n" + "".join(f'printf "%s\\n" "${name}"\n' for name in names)
    shown = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    values = dict(zip(names, shown, strict=True))
    assert values["B"] == "http://127.0.0.1:8000"
    assert values["APP_ID"] == values["CLIENT_ID"] == app.client_id
    assert values["ADMIN_PASSWORD"] == "adm-'pass word"  # quoted for the shell
    assert values["USER_ID"] == str(user.pk)
    # The values do what the README's lines do with them.
    client = Client()
    token = client.post(
        "/oauth/token",
        "grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=_basic(values["CLIENT_ID"], values["CLIENT_SECRET"]),
    )
    assert token.status_code == 200, token.content
    for email, password in (("ADMIN_EMAIL", "ADMIN_PASSWORD"), ("USER_EMAIL", "USER_PASSWORD")):
        answer = client.post(
            "/auth/token",
            {"email": values[email], "password": values[password]},
            content_type="application/json",
        )
        assert answer.status_code == 200, answer.content


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
