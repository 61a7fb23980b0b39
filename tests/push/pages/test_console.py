"""The Console's app pages and tabs, each at its own URL (Django test client)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fakes.fcm import new_service_account
from push.models import (
    AuditEvent,
    Delivery,
    Device,
    Notification,
    PushConfig,
    Receipt,
    ReceiptAttempt,
    ReceiptStatus,
)
from push.selectors import delivery_outcomes_by_day
from push.services.config import push_config_for
from tests.factories import (
    enable_push,
    enroll,
    make_admin,
    make_app,
    make_push_app,
    make_user,
    register,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    return make_app(name="GymOps")[0]


def tab(app, suffix=""):
    """The Settings tab and its forms."""
    return f"/console/apps/{app.app_id}/settings/{suffix}"


def at(app, section, suffix=""):
    """Another tab of the app: devices, notifications, receipts, users, audit."""
    return f"/console/apps/{app.app_id}/{section}/{suffix}"


def actions(app):
    return list(AuditEvent.objects.filter(app=app).order_by("id").values_list("action", flat=True))


# --- who may see what ------------------------------------------------------------------------


def test_console_asks_anonymous_people_to_sign_in(app):
    response = Client().get(tab(app))
    assert response.status_code == 302
    assert response.url.startswith("/login?next=")


@pytest.mark.parametrize(
    "url_of",
    [lambda app: "/console/", tab, lambda app: f"/console/apps/{app.app_id}/"],
    ids=["console", "tab", "app"],
)
def test_console_is_forbidden_to_people_who_administer_nothing(app, url_of):
    client = Client()
    client.force_login(make_user())
    response = client.get(url_of(app))
    assert response.status_code == 403
    assert b"administers no app" in response.content
    assert client.post(tab(app, "enabled"), {"enabled": "1"}).status_code == 403
    assert not push_config_for(app).enabled


def test_an_app_admin_sees_only_their_apps(app, browser):
    other = make_app(name="Not yours")[0]
    listing = browser.get("/console/").content.decode()
    assert "GymOps" in listing and "Not yours" not in listing
    assert browser.get(tab(other)).status_code == 404
    assert browser.get(f"/console/apps/{other.app_id}/").status_code == 404
    assert browser.post(tab(other, "enabled"), {"enabled": "1"}).status_code == 404
    assert not push_config_for(other).enabled


def test_staff_see_every_app():
    make_app(name="First")
    make_app(name="Second")
    client = Client()
    client.force_login(make_user(staff=True))
    listing = client.get("/console/").content.decode()
    assert "First" in listing and "Second" in listing


def test_overview_tab_shows_the_client_id(app, browser):
    response = browser.get(f"/console/apps/{app.app_id}/")
    assert response.status_code == 200
    assert str(app.app_id) in response.content.decode()


# --- enable, settings, secret, FCM -------------------------------------------------------------


def test_first_enable_shows_the_new_secret_and_vapid_key_once(app, browser):
    page = browser.get(tab(app)).content.decode()
    assert 'role="switch" aria-checked="false"' in page

    response = browser.post(tab(app, "enabled"), {"enabled": "1"})
    assert response.status_code == 302 and response.url.endswith("#status")
    config = PushConfig.objects.get(app=app)
    assert config.enabled and config.webhook_secret.startswith("whsec_")
    first = browser.get(tab(app)).content.decode()
    assert 'aria-checked="true"' in first
    assert config.webhook_secret in first and config.vapid_public_key in first
    again = browser.get(tab(app)).content.decode()
    assert config.webhook_secret not in again and config.vapid_public_key in again
    assert actions(app) == ["config.update"]
    assert AuditEvent.objects.get(app=app).detail == {"enabled": True, "provisioned": True}


def test_disable_switches_push_off_and_is_audited(app, browser, admin):
    enable_push(app)
    browser.post(tab(app, "enabled"), {"enabled": "0"})
    assert not push_config_for(app).enabled
    event = AuditEvent.objects.filter(app=app).latest("id")
    assert (event.actor, event.detail) == (admin, {"enabled": False})


def test_settings_save_webhook_url_and_quota(app, browser):
    response = browser.post(
        tab(app, "save"), {"webhook_url": "https://8.8.8.8/hooks/push", "daily_quota": "500"}
    )
    assert response.status_code == 302
    config = push_config_for(app)
    assert (config.webhook_url, config.daily_quota) == ("https://8.8.8.8/hooks/push", 500)
    assert AuditEvent.objects.get(app=app).detail == {
        "webhook_url": "https://8.8.8.8/hooks/push",
        "daily_quota": 500,
    }


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"webhook_url": "", "daily_quota": "0"}, "daily_quota", "at least 1"),
        ({"webhook_url": "", "daily_quota": "lots"}, "daily_quota", "whole number"),
        ({"webhook_url": "", "daily_quota": ""}, "daily_quota", "how many notifications"),
        (
            {"webhook_url": "http://hooks.example.com/x", "daily_quota": "10"},
            "webhook_url",
            "Not allowed",
        ),
        (
            {"webhook_url": "https://127.0.0.1/x", "daily_quota": "10"},
            "webhook_url",
            "Not allowed",
        ),
    ],
)
def test_settings_show_inline_errors_and_change_nothing(app, browser, data, field, message):
    before = push_config_for(app).daily_quota
    response = browser.post(tab(app, "save"), data)
    # Post/Redirect/Get: the errors are shown by the next GET, not by the POST's answer.
    assert response.status_code == 302 and response.url.endswith("#settings")
    page = browser.get(response.url).content.decode()
    assert "data-form-error" in page
    # The message sits next to the field, which is marked invalid and points at it.
    assert f'id="settings_{field}_error"' in page and message in page
    assert 'aria-invalid="true"' in page
    assert push_config_for(app).daily_quota == before and push_config_for(app).webhook_url == ""
    assert actions(app) == []


def test_reveal_shows_the_secret_once_and_is_audited(app, browser):
    secret = enable_push(app).webhook_secret
    assert secret not in browser.get(tab(app)).content.decode()
    response = browser.post(tab(app, "webhook-secret/reveal"))
    assert response.url.endswith("#webhook-secret")
    assert secret in browser.get(tab(app)).content.decode()
    assert secret not in browser.get(tab(app)).content.decode()
    assert actions(app)[-1] == "webhook_secret.reveal"


def test_rotate_replaces_the_secret_and_shows_the_new_one(app, browser):
    old = enable_push(app).webhook_secret
    browser.post(tab(app, "webhook-secret/rotate"))
    new = push_config_for(app).webhook_secret
    assert new != old and new.startswith("whsec_")
    assert new in browser.get(tab(app)).content.decode()
    assert actions(app)[-1] == "webhook_secret.rotate"


def test_rotate_and_reveal_refuse_get(app, browser):
    secret = enable_push(app).webhook_secret
    assert browser.get(tab(app, "webhook-secret/rotate")).status_code == 405
    assert browser.get(tab(app, "webhook-secret/reveal")).status_code == 405
    # A GET neither rotates nor reveals: the secret is the same and nothing was audited.
    assert push_config_for(app).webhook_secret == secret
    assert not {"webhook_secret.rotate", "webhook_secret.reveal"} & set(actions(app))


def _service_account(**overrides):
    info = {
        **new_service_account("gymops-prod", "https://oauth2.googleapis.com/token"),
        "client_email": "push@gymops-prod.iam.gserviceaccount.com",
        **overrides,
    }
    return SimpleUploadedFile("key.json", json.dumps(info).encode(), "application/json")


def test_fcm_service_account_upload_shows_only_project_and_email(app, browser):
    response = browser.post(tab(app, "fcm"), {"file": _service_account()})
    assert response.status_code == 302
    page = browser.get(tab(app)).content.decode()
    assert "gymops-prod" in page and "push@gymops-prod.iam.gserviceaccount.com" in page
    assert "PRIVATE KEY" not in page
    assert actions(app) == ["fcm_service_account.set"]

    browser.post(tab(app, "fcm"), {"clear": "1"})
    assert push_config_for(app).fcm_project_id == ""
    assert actions(app)[-1] == "fcm_service_account.clear"


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (SimpleUploadedFile("key.json", b"{not json", "application/json"), "Not valid JSON"),
        (_service_account(type="authorized_user"), "Not a service account key file"),
        (SimpleUploadedFile("key.bin", b"\xff\xfe\x00", "application/octet-stream"), "not a text"),
        (None, "Choose the service account"),
    ],
)
def test_fcm_upload_errors_are_shown_on_the_file_field(app, browser, upload, message):
    response = browser.post(tab(app, "fcm"), {"file": upload} if upload else {})
    assert response.status_code == 302
    page = browser.get(response.url).content.decode()
    assert 'id="fcm_file_error"' in page and message in page
    assert push_config_for(app).fcm_project_id == "" and actions(app) == []


# --- usage and the chart -----------------------------------------------------------------------


def _delivery(app, status, created_at):
    user = make_user()
    notification = Notification.objects.create(
        app=app, user_id=user.id, title="t", body="b", created_at=created_at
    )
    return Delivery.objects.create(
        notification=notification,
        app=app,
        device_ref=notification.id,
        platform="web",
        status=status,
        created_at=created_at,
    )


def test_outcomes_by_day_groups_fourteen_utc_days_in_one_query(app, django_assert_num_queries):
    today = dt.date(2026, 3, 19)
    at = lambda day, hour: dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC)  # noqa: E731
    _delivery(app, "delivered", at(19, 0))
    _delivery(app, "delivered", at(19, 23))
    _delivery(app, "failed", at(19, 12))
    _delivery(app, "invalid_token", at(6, 8))
    _delivery(app, "delivered", at(5, 23))  # 15 days ago: outside the chart
    _delivery(app, "queued", at(18, 1))  # not an outcome yet
    _delivery(make_app()[0], "delivered", at(19, 1))  # another app
    with django_assert_num_queries(1):
        days = delivery_outcomes_by_day(app, today=today)
    assert len(days) == 14 and days[0].day == dt.date(2026, 3, 6) and days[-1].day == today
    assert (days[-1].delivered, days[-1].failed, days[-1].invalid_token) == (2, 1, 0)
    assert days[0].invalid_token == 1
    assert sum(day.total for day in days) == 4


def test_outcomes_by_day_count_the_opens_of_each_days_deliveries(app):
    today = dt.date(2026, 3, 19)
    opened = _delivery(app, "delivered", dt.datetime(2026, 3, 18, 9, tzinfo=dt.UTC))
    _delivery(app, "delivered", dt.datetime(2026, 3, 18, 10, tzinfo=dt.UTC))
    Delivery.objects.filter(pk=opened.pk).update(opened_at=timezone.now())
    days = delivery_outcomes_by_day(app, today=today)
    assert [(day.day.day, day.delivered, day.opened) for day in days[-2:]] == [
        (18, 2, 1),
        (19, 0, 0),
    ]


def test_usage_shows_today_against_quota_and_draws_the_chart(app, browser):
    enable_push(app, daily_quota=250)
    _delivery(app, "delivered", timezone.now())
    _delivery(app, "failed", timezone.now())
    page = browser.get(f"/console/apps/{app.app_id}/").content.decode()
    assert "of 250 notifications sent today" in page
    assert '<svg class="chart"' in page
    assert page.count('class="bar delivered"') == 1 and page.count('class="bar failed"') == 1


def test_usage_without_deliveries_says_so(app, browser):
    page = browser.get(f"/console/apps/{app.app_id}/").content.decode()
    assert "No deliveries in the last 14 days" in page and "<svg" not in page


# --- the test send -----------------------------------------------------------------------------


@pytest.fixture
def member(app):
    enable_push(app)
    user = make_user(email="member@example.com")
    enroll(app, user)
    register(user, app)
    return user


def test_test_send_queues_a_notification_and_shows_it(app, browser, member):
    response = browser.post(
        at(app, "notifications", "test"),
        {"email": "Member@Example.com", "title": "Hello", "body": "It works"},
    )
    assert response.status_code == 302
    notification = Notification.objects.get(app=app)
    assert (notification.user_id, notification.title, notification.status) == (
        member.id,
        "Hello",
        "queued",
    )
    # Redirected to the notification's own page: a reload shows it again, never resends.
    assert response.url == at(app, "notifications", f"{notification.id}/")
    page = browser.get(response.url).content.decode()
    assert 'data-status="queued"' in page and "It works" in page
    assert "The Console (test send by" in page
    browser.get(response.url)
    assert Notification.objects.count() == 1
    event = AuditEvent.objects.get(app=app, action="notification.test_send")
    assert event.detail == {"notification_id": str(notification.id), "to": "member@example.com"}


def test_the_polled_fragment_follows_the_notification(app, browser, member):
    browser.post(
        at(app, "notifications", "test"), {"email": member.email, "title": "Hi", "body": "There"}
    )
    notification = Notification.objects.get(app=app)
    Delivery.objects.filter(notification=notification).update(status="delivered")
    Notification.objects.filter(pk=notification.pk).update(status="delivered")
    fragment = browser.get(at(app, "notifications", f"{notification.id}/status")).content.decode()
    assert 'data-status="delivered"' in fragment and "<html" not in fragment
    other = make_push_app()
    other_admin = Client()
    other_admin.force_login(make_admin(other))
    for url in (
        f"/console/apps/{other.app_id}/notifications/{notification.id}/status",
        f"/console/apps/{other.app_id}/notifications/{notification.id}/",
    ):
        assert other_admin.get(url).status_code == 404


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("nobody@example.com", "No Keymaster user has this email address."),
        ("outsider@example.com", "outsider@example.com is not enrolled in GymOps."),
        ("not an email", "Enter a valid email address."),
    ],
)
def test_test_send_explains_a_bad_recipient(app, browser, member, email, message):
    make_user(email="outsider@example.com")
    response = browser.post(
        at(app, "notifications", "test"), {"email": email, "title": "Hi", "body": "There"}
    )
    assert response.status_code == 302 and response.url.endswith("#test-send")
    page = browser.get(response.url).content.decode()
    assert 'id="test_email_error"' in page and message in page
    assert not Notification.objects.exists()


def test_test_send_when_push_is_off_says_so(app, browser, member):
    PushConfig.objects.filter(app=app).update(enabled=False)
    response = browser.post(
        at(app, "notifications", "test"), {"email": member.email, "title": "x", "body": "y"}
    )
    page = browser.get(response.url).content.decode()
    assert "Push notifications are not enabled for this app." in page


# --- devices ------------------------------------------------------------------------------------


def test_devices_are_counted_by_platform_filtered_and_paginated(app, browser, settings):
    settings.PUSH_REGISTRATIONS_PER_HOUR = 100
    enable_push(app)
    alice, bob = make_user(email="alice@example.com"), make_user(email="bob@example.com")
    enroll(app, alice, bob)
    for _ in range(22):
        register(alice, app, platform="android")
    register(bob, app, platform="ios")
    devices = at(app, "devices")
    page = browser.get(devices).content.decode()
    assert "<strong>22</strong> Android" in page and "<strong>1</strong> iOS" in page
    assert "Page 1 of 2 (23 devices)" in page
    assert "Page 2 of 2" in browser.get(devices + "?page=2").content.decode()
    only_ios = browser.get(devices + "?platform=ios").content.decode()
    assert "bob@example.com" in only_ios and "alice@example.com</td>" not in only_ios
    by_email = browser.get(devices + "?email=BOB").content.decode()
    assert "bob@example.com</td>" in by_email and "alice@example.com</td>" not in by_email
    assert "No device matches" in browser.get(devices + "?email=zed").content.decode()


def test_no_devices_explains_how_to_register_one(app, browser):
    assert "No devices yet." in browser.get(at(app, "devices")).content.decode()


def test_admin_removes_a_device_of_their_app_and_it_is_audited(app, browser, member):
    device = Device.objects.get(app=app)
    response = browser.post(at(app, "devices", f"{device.id}/remove"))
    assert response.status_code == 302 and response.url == at(app, "devices")
    assert not Device.objects.filter(pk=device.pk).exists()
    event = AuditEvent.objects.get(app=app, action="device.remove")
    assert event.detail["device_id"] == str(device.id) and event.actor.email != member.email


def test_admin_cannot_remove_another_apps_device(app, browser):
    other = make_push_app()
    user = make_user()
    enroll(other, user)
    device = register(user, other)
    assert browser.post(at(app, "devices", f"{device.id}/remove")).status_code == 404
    assert Device.objects.filter(pk=device.pk).exists()
    assert not AuditEvent.objects.filter(action="device.remove").exists()


# --- recent notifications, receipts, audit ----------------------------------------------------


def _receipt(app, status=ReceiptStatus.FAILED):
    delivery = _delivery(app, "delivered", timezone.now())
    receipt = Receipt.objects.create(
        app=app,
        delivery=delivery,
        webhook_id=f"msg_{delivery.id}",
        payload="{}",
        status=status,
        attempts=1,
        last_status_code=503,
    )
    ReceiptAttempt.objects.create(receipt=receipt, status_code=503, duration_ms=42)
    return receipt


def test_recent_notifications_show_each_device_outcome(app, browser, member):
    browser.post(
        at(app, "notifications", "test"),
        {"email": member.email, "title": "Shift soon", "body": "b"},
    )
    Delivery.objects.filter(app=app).update(
        status="failed", error="THIRD_PARTY_AUTH_ERROR", error_detail="APNs rejected the key"
    )
    notification = Notification.objects.get(app=app)
    page = browser.get(at(app, "notifications")).content.decode()
    assert "Shift soon" in page and "member@example.com" in page
    assert at(app, "notifications", f"{notification.id}/") in page
    detail = browser.get(at(app, "notifications", f"{notification.id}/")).content.decode()
    assert "APNs rejected the key" in detail and "THIRD_PARTY_AUTH_ERROR" in detail


def test_receipts_show_attempts_and_can_be_redelivered(app, browser):
    enable_push(app)
    receipt = _receipt(app)
    page = browser.get(at(app, "receipts")).content.decode()
    assert receipt.webhook_id in page and "HTTP 503" in page and "42 ms" in page
    response = browser.post(at(app, "receipts", f"{receipt.id}/redeliver"))
    assert response.status_code == 302 and response.url == at(app, "receipts")
    receipt.refresh_from_db()
    assert receipt.status == ReceiptStatus.PENDING
    assert actions(app)[-1] == "receipt.redeliver"


def test_redeliver_goes_back_only_to_a_page_of_the_app(app, browser):
    enable_push(app)
    receipt = _receipt(app)
    redeliver = at(app, "receipts", f"{receipt.id}/redeliver")
    page = at(app, "receipts") + "?status=failed"
    assert browser.post(redeliver, {"back": page}).url == page
    assert browser.post(redeliver, {"back": "https://evil.example/"}).url == at(app, "receipts")


def test_redeliver_of_another_apps_receipt_is_404(app, browser):
    receipt = _receipt(make_app()[0])
    assert browser.post(at(app, "receipts", f"{receipt.id}/redeliver")).status_code == 404
    assert Receipt.objects.get(pk=receipt.pk).status == ReceiptStatus.FAILED


def test_audit_lists_who_did_what_and_when(app, browser, admin):
    browser.post(tab(app, "enabled"), {"enabled": "1"})
    browser.post(tab(app, "webhook-secret/rotate"))
    page = browser.get(at(app, "audit")).content.decode()
    audit = page[page.index('id="audit"') :]
    assert "Changed the push settings" in audit and "Rotated the webhook secret" in audit
    assert audit.count(admin.email) == 2
    assert "<time datetime=" in audit and 'UTC"' in audit


@pytest.mark.parametrize("section", ["devices", "notifications", "receipts", "users", "audit"])
def test_each_tab_makes_the_same_queries_for_one_row_or_many(
    app, browser, admin, settings, section
):
    settings.PUSH_REGISTRATIONS_PER_HOUR = 100
    enable_push(app)

    def add_activity():
        user = make_user()
        enroll(app, user)
        register(user, app)
        register(user, app, platform="ios")
        browser.post(
            at(app, "notifications", "test"), {"email": user.email, "title": "t", "body": "b"}
        )
        _receipt(app)

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert browser.get(at(app, section)).status_code == 200
        return len(captured.captured_queries)

    add_activity()
    one = queries()
    for _ in range(4):
        add_activity()
    assert queries() == one
