"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live server.

Without Chromium (or Playwright) these tests skip on a developer's machine and fail in CI
(`CI` set), where `apt-get install -y chromium` provides the browser.
"""

from __future__ import annotations

import pytest
from django.db import connections

from tests.e2e.browser import CHROMIUM_ARGS, chromium_executable, sync_playwright


@pytest.fixture
def chromium(monkeypatch):
    """A browser per test: Playwright's sync API keeps an event loop running in this thread
    while it is open, and that must not outlive the test (later tests call asyncio.run)."""
    executable = chromium_executable()
    # The ORM calls a test makes between browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # While Playwright's loop runs, Django hands this thread other (context-local) database
        # connections; close them now, or they outlive the test and block dropping the test DB.
        connections.close_all()


@pytest.fixture
def page(chromium, live_server):
    """A desktop-sized page that may show notifications; JavaScript errors fail the test."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.grant_permissions(["notifications"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
