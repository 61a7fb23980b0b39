"""Security headers on every page and API answer (issue 22, item 9), and no inline code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import PASSWORD, make_admin, make_app, make_user

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def _directives(header: str) -> dict[str, list[str]]:
    parts = [part.split() for part in header.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


def _signed_in(user) -> Client:
    client = Client()
    assert client.post("/login", {"username": user.email, "password": PASSWORD}).status_code == 302
    return client


def _pages() -> dict[str, Client]:
    app, _ = make_app()
    admin = make_admin(app)
    staff = make_user(staff=True)
    staff.is_superuser = True
    staff.save()
    person = make_user()
    return {
        "/login": Client(),
        "/console/": _signed_in(admin),
        f"/console/apps/{app.app_id}/": _signed_in(admin),
        "/account": _signed_in(person),
        "/admin/login/": Client(),
        "/admin/": _signed_in(staff),
        "/api/docs/": Client(),
    }


def test_every_page_has_a_content_security_policy_without_inline_code():
    for path, client in _pages().items():
        response = client.get(path, follow=True)
        assert response.status_code == 200, path
        policy = _directives(response["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"], path
        assert policy["style-src"] == ["'self'"], path
        assert policy["object-src"] == ["'none'"], path
        assert policy["frame-ancestors"] == ["'none'"], path
        assert "'unsafe-inline'" not in response["Content-Security-Policy"], path


def test_api_answers_carry_nosniff_referrer_and_permissions_policies():
    client = Client()
    for path in ("/healthz", "/api/apps", "/api/schema/", "/nothing-here"):
        response = client.get(path)
        assert response["X-Content-Type-Options"] == "nosniff", path
        assert response["Referrer-Policy"] == "same-origin", path
        assert "camera=()" in response["Permissions-Policy"], path
        assert "geolocation=()" in response["Permissions-Policy"], path
        assert "Content-Security-Policy" in response, path


def test_pages_carry_referrer_and_permissions_policies():
    response = Client().get("/login")
    assert response["Referrer-Policy"] == "same-origin"
    assert "microphone=()" in response["Permissions-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"


# An inline <script> (one without src), a <style> element, a style="" attribute, an on...=""
# handler or a javascript: URL: each would be refused by the policy, so none may be written.
_INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:", re.I
)


def test_no_template_holds_inline_script_style_or_handlers():
    templates = sorted((ROOT / "templates").rglob("*.html"))
    assert len(templates) > 10, "the templates were not found: the scan would pass on nothing"
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in templates
        for match in _INLINE.finditer(path.read_text())
    ]
    assert found == []
    # The pattern itself catches what it is meant to (else found == [] proves nothing).
    for inline in ("<script>x()</script>", "<style>", '<a style="x">', '<a onclick="x">'):
        assert _INLINE.search(inline), inline
    assert not _INLINE.search('<script src="/static/a.js"></script>')


def test_swagger_ui_loads_its_start_up_script_from_a_file():
    body = Client().get("/api/docs/").content.decode()
    scripts = re.findall(r"<script[^>]*>", body)
    assert scripts, body
    assert all("src=" in tag for tag in scripts)
