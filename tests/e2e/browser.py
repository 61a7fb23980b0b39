"""What the browser tests share: launching Chromium, signing in, and screenshots.

Screenshots go to artifacts/screenshots/<page>-<width>.png (ignored by git).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # reported by `chromium_executable`: a skip here, a failure in CI
    expect = sync_playwright = None

SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
WIDTHS = (390, 1280)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

__all__ = [
    "chromium_executable",
    "expect",
    "in_viewport",
    "run_axe",
    "screenshots",
    "sign_in",
    "sync_playwright",
    "tab_to",
    "unlabelled_controls",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests")
    pytest.skip(reason)


def chromium_executable() -> str:
    """Return Debian's Chromium; skip the test without it (or Playwright), fail in CI."""
    executable = shutil.which("chromium")
    if not executable:
        _unavailable("Chromium is not installed (apt-get install -y chromium)")
    if sync_playwright is None:
        _unavailable("Playwright is not installed (make install: it is in requirements-dev.txt)")
    return executable


def sign_in(page: Any, live_server: Any, email: str, password: str) -> None:
    """Sign in through the login form, as a person would."""
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def screenshots(page: Any, name: str) -> None:
    """Save the whole page at phone and desktop widths, then go back to desktop."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(100)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


_UNLABELLED = """() => Array.from(document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button, summary"
  )).filter(el => {
    const label = Array.from(el.labels || []).map(l => l.textContent).join("")
      || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
      || (["BUTTON", "SUMMARY"].includes(el.tagName) ? el.textContent : "");
    return !label.trim();
  }).map(el => el.outerHTML.slice(0, 120))"""


def unlabelled_controls(page: Any) -> list[str]:
    """Return the form controls on the page that have no accessible name."""
    return page.evaluate(_UNLABELLED)


def tab_to(page: Any, locator: Any, presses: int = 80) -> None:
    """Press Tab from the top of the page until `locator` has focus (proves it is reachable)."""
    page.locator("body").focus()
    for _ in range(presses):
        page.keyboard.press("Tab")
        if locator.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{locator} is not reachable with the keyboard")


def in_viewport(page: Any, locator: Any) -> bool:
    """Return whether `locator`'s top is inside the window as the person sees it now."""
    box = locator.bounding_box()
    height = page.evaluate("() => window.innerHeight")
    return box is not None and 0 <= box["y"] < height


def run_axe(page: Any) -> list[str]:
    """Return axe-core's violations on the page as "rule: first target" lines (none is a pass)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in results.response["violations"]
    ]
