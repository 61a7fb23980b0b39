"""The Console's scheduled sends and broadcasts: schedule a test, list, cancel, counts, filters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from push.models import AuditEvent, Broadcast, Delivery, DeliveryStatus, Notification
from push.services.broadcasts import BroadcastDraft, broadcast_send
from tests.drain import drain
from tests.factories import enable_push, enroll, make_app, make_user, register

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    app = make_app(name="GymOps")[0]
    enable_push(app, daily_quota=50)
    return app


@pytest.fixture
def ann(app):
    user = make_user(email="ann@example.com")
    enroll(app, user)
    register(user, app)
    return user


def url(app, suffix=""):
    return f"/console/apps/{app.app_id}/{suffix}"


def page_after(browser, response):
    assert response.status_code == 302
    return browser.get(response.url).content.decode()


def _later(hours: float = 2) -> datetime:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0)


def _schedule_test(browser, app, when: datetime, **fields):
    form = {"email": "ann@example.com", "title": "Later", "body": "Soon", **fields}
    form["send_at"] = when.strftime("%Y-%m-%dT%H:%M")
    return browser.post(url(app, "notifications/test"), form)


def _last_event(app):
    return AuditEvent.objects.filter(app=app).latest("id")


def test_the_test_send_schedules_for_a_utc_time_and_is_listed_as_scheduled(app, browser, ann):
    form = browser.get(url(app, "notifications/")).content.decode()
    assert 'type="datetime-local"' in form and "Send at (UTC, optional)" in form
    when = _later()
    response = _schedule_test(browser, app, when)
    notification = Notification.objects.get(app=app)
    assert response.url == url(app, f"notifications/{notification.id}/")
    assert notification.send_at == when and notification.is_scheduled()
    page = browser.get(response.url).content.decode()
    assert f"Test notification scheduled for {when:%Y-%m-%d %H:%M} UTC." in page
    assert '<span class="badge status-scheduled">Scheduled</span>' in page
    assert "data-poll" not in page  # nothing to follow before it is due
    assert _last_event(app).detail["send_at"] == when.isoformat()
    # Not sent by a worker polling now; listed on the Scheduled tab and by the status filter.
    drain(due_only=True)
    assert Delivery.objects.get().status == DeliveryStatus.QUEUED
    tab = browser.get(url(app, "scheduled/")).content.decode()
    assert f"notifications/{notification.id}/cancel" in tab and "ann@example.com" in tab
    only = browser.get(url(app, "notifications/?status=scheduled")).content.decode()
    assert f"notifications/{notification.id}/" in only
    due = browser.get(url(app, "notifications/?status=queued")).content.decode()
    assert f"notifications/{notification.id}/" not in due


def test_a_send_at_too_far_or_malformed_is_refused_naming_the_field(app, browser, ann):
    far = page_after(browser, _schedule_test(browser, app, _later(hours=24 * 31)))
    assert "Pick a time at most 30 days ahead." in far
    bad = page_after(
        browser,
        browser.post(
            url(app, "notifications/test"),
            {"email": ann.email, "title": "t", "body": "b", "send_at": "tomorrow"},
        ),
    )
    assert "Enter a date and time in UTC, like 2026-12-24 08:00." in bad
    assert not Notification.objects.exists()


def test_cancel_a_scheduled_notification_from_the_tab(app, browser, ann):
    _schedule_test(browser, app, _later())
    notification = Notification.objects.get()
    tab = url(app, "scheduled/")
    response = browser.post(url(app, f"notifications/{notification.id}/cancel"), {"back": tab})
    assert response.url == tab
    page = browser.get(tab).content.decode()
    assert "Notification canceled: it will not be sent." in page and "Nothing is scheduled." in page
    notification.refresh_from_db()
    assert notification.status == "canceled"
    assert Delivery.objects.get().status == DeliveryStatus.CANCELED
    event = _last_event(app)
    assert event.action == "notification.cancel"
    assert event.detail == {"notification_id": str(notification.id)}
    shown = browser.get(url(app, "notifications/?status=canceled")).content.decode()
    assert "status-canceled" in shown and f"notifications/{notification.id}/" in shown


def test_a_notification_already_sent_cannot_be_canceled_and_the_page_says_why(
    app, browser, ann, providers
):
    browser.post(url(app, "notifications/test"), {"email": ann.email, "title": "t", "body": "b"})
    notification = Notification.objects.get()
    drain()
    back = url(app, f"notifications/{notification.id}/")
    page = page_after(
        browser, browser.post(url(app, f"notifications/{notification.id}/cancel"), {"back": back})
    )
    assert "can no longer be canceled" in page
    assert Notification.objects.get().status == "delivered"
    # An address outside the app is never a redirect target.
    elsewhere = browser.post(
        url(app, f"notifications/{notification.id}/cancel"), {"back": "https://evil.example/"}
    )
    assert elsewhere.url == url(app, "scheduled/")


def _broadcast(app, **fields):
    return broadcast_send(
        app=app, draft=BroadcastDraft(title="Big news", body="b", **fields)
    ).broadcast_id


def test_broadcasts_are_listed_with_counts_that_follow_them_and_can_be_canceled(app, browser):
    for n in range(3):
        user = make_user(email=f"u{n}@example.com")
        enroll(app, user)
        register(user, app)
    broadcast_id = _broadcast(app, send_at=_later())
    counts_url = url(app, f"broadcasts/{broadcast_id}/counts")
    tab = browser.get(url(app, "scheduled/")).content.decode()
    assert "Big news" in tab and f'data-counts-url="{counts_url}"' in tab
    assert "keymaster/broadcasts.js" in tab and "<script>" not in tab
    assert browser.get(counts_url).json() == {
        "status": "fanning_out",
        "counts": {
            s: 0 for s in ("scheduled", "queued", "delivered", "failed", "canceled", "muted")
        },
    }
    drain(due_only=True)  # the fan-out writes one scheduled notification per recipient
    answer = browser.get(counts_url).json()
    assert answer["status"] == "scheduled" and answer["counts"]["scheduled"] == 3
    # The notifications list filters by broadcast.
    listed = browser.get(url(app, f"notifications/?broadcast={broadcast_id}")).content.decode()
    assert listed.count("Big news") == 3
    response = browser.post(url(app, f"broadcasts/{broadcast_id}/cancel"))
    assert response.url == url(app, "scheduled/")
    assert "Broadcast canceled" in browser.get(response.url).content.decode()
    assert Broadcast.objects.get().status == "canceled"
    assert browser.get(counts_url).json()["counts"]["canceled"] == 3
    event = AuditEvent.objects.filter(app=app).latest("id")
    assert event.action == "broadcast.cancel" and event.detail == {
        "broadcast_id": str(broadcast_id)
    }
    ended = browser.get(url(app, "scheduled/")).content.decode()
    assert (
        "data-counts-url" not in ended
        and "broadcasts/" + str(broadcast_id) + "/cancel" not in ended
    )


def test_muted_notifications_are_a_status_filter(app, browser, ann):
    from accounts.services import enrollment_mute

    enrollment_mute(user=ann, app_id=app.app_id, muted=True)
    browser.post(url(app, "notifications/test"), {"email": ann.email, "title": "t", "body": "b"})
    muted = browser.get(url(app, "notifications/?status=muted")).content.decode()
    assert "status-muted" in muted and "ann@example.com" in muted
    assert (
        "ann@example.com"
        not in browser.get(url(app, "notifications/?status=delivered"))
        .content.decode()
        .split('id="notifications"')[1]
    )


def test_the_cancel_question_names_a_removed_recipient(app, browser, ann):
    _schedule_test(browser, app, _later())
    Notification.objects.update(user_id=uuid.uuid4())  # the recipient's account is gone
    page = browser.get(url(app, "scheduled/")).content.decode()
    assert "Cancel “Later” to a removed user? It will not be sent." in page
