"""Every page passes axe-core with no violation, and none scrolls sideways on a 390 px phone.

axe-core runs from the copy that axe-playwright-python ships in its wheel (no network needed).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Invitation
from push.models import Delivery, Notification, Receipt, ReceiptAttempt
from push.services.broadcasts import BroadcastDraft, broadcast_send
from push.services.notifications import NotificationDraft, notifications_send
from tests.e2e.browser import run_axe, screenshots, sign_in
from tests.factories import PASSWORD, enable_push, enroll, make_admin, make_app, make_user, register

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def busy_app(providers):
    """An app with a device, a notification delivered and a receipt with a failed attempt."""
    app = make_app(name="GymOps")[0]
    enable_push(app, webhook_url=f"{providers['webhook'].url}/hooks")
    member = make_user(email="member@example.com")
    enroll(app, member)
    device = register(member, app, platform="android")
    notification = Notification.objects.create(
        app=app, user_id=member.id, title="Shift", body="Soon", data={"k": "v"}, status="delivered"
    )
    delivery = Delivery.objects.create(
        notification=notification,
        app=app,
        device=device,
        device_ref=device.id,
        platform="android",
        status="delivered",
        attempts=1,
    )
    receipt = Receipt.objects.create(
        app=app, delivery=delivery, webhook_id="msg_1", payload="{}", status="pending", attempts=1
    )
    ReceiptAttempt.objects.create(receipt=receipt, status_code=503, duration_ms=12)
    # The Scheduled tab's tables and the Users tab's invitations, each with a row to check.
    later = timezone.now() + timedelta(hours=2)
    draft = NotificationDraft(user_id=member.id, title="Later", body="Soon", send_at=later)
    notifications_send(app=app, drafts=[draft])
    broadcast_send(app=app, draft=BroadcastDraft(title="All hands", body="b", send_at=later))
    Invitation.objects.create(app=app, email="newcomer@example.com", role="user")
    Invitation.objects.create(app=app, email=member.email, role="admin")
    return app, member, notification


def _pages(app, notification):
    base = f"/console/apps/{app.app_id}/"
    return [
        "/console/",
        base,
        base + "settings/",
        base + "devices/",
        base + "notifications/",
        base + f"notifications/{notification.id}/",
        base + "scheduled/",
        base + "receipts/",
        base + "users/",
        base + "audit/",
        "/account",
    ]


def _check(page, url):
    problems = []
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        violations = run_axe(page)
        problems += [f"{url} at {width}px: {v}" for v in violations]
        if width == 390:
            wide = page.evaluate("() => document.documentElement.scrollWidth")
            if wide > 390:
                problems.append(f"{url} scrolls sideways at 390px ({wide}px wide)")
    return problems


def test_every_console_and_account_page(page, live_server, busy_app):
    app, _, notification = busy_app
    admin = make_admin(app)
    sign_in(page, live_server, admin.email, PASSWORD)
    problems = []
    for path in _pages(app, notification):
        problems += _check(page, live_server.url + path)
    assert problems == []
    page.goto(f"{live_server.url}/console/apps/{app.app_id}/")
    screenshots(page, "console-overview-busy")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert _day_labels_overlap(page) == [], width


_LABEL_BOXES = """() => {
  const card = document.querySelector("#usage").getBoundingClientRect();
  const labels = Array.from(document.querySelectorAll("svg.chart text.axis"))
    .filter(t => t.getAttribute("dy") === null && getComputedStyle(t).display !== "none");
  return {card: [card.left, card.right], boxes: labels.map(t => {
    const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.right];
  })};
}"""


def _day_labels_overlap(page):
    # The chart's day labels: each inside the card, none touching the next.
    found = page.evaluate(_LABEL_BOXES)
    (left, right), boxes = found["card"], sorted(found["boxes"], key=lambda b: b[1])
    problems = [text for text, start, end in boxes if start < left or end > right]
    problems += [
        f"{a[0]} / {b[0]}" for a, b in zip(boxes, boxes[1:], strict=False) if a[2] + 2 > b[1]
    ]
    return problems


def test_the_pages_people_see_before_and_outside_the_console(page, live_server, busy_app):
    _, member, _ = busy_app
    problems = _check(page, live_server.url + "/login")
    # An empty sign-in says what is missing, and the page with that error passes too.
    page.get_by_role("button", name="Sign in").click()
    assert "Enter your email address and your password." in page.content()
    sign_in(page, live_server, member.email, PASSWORD)
    for path in ("/account", "/console/"):  # a user's Account, and the Console's 403 page
        problems += _check(page, live_server.url + path)
    assert problems == []


def test_axe_does_report_a_violation(page):
    """The checks above mean something: the same axe run finds an image without alt text."""
    page.set_content(
        '<!doctype html><html lang="en"><title>t</title><main><img src="x.png"></main>'
    )
    assert any(line.startswith("image-alt") for line in run_axe(page))
