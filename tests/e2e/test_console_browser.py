"""An admin runs an app's push setup from the Console, in a real browser."""

from __future__ import annotations

import json
import re

import pytest

from push.models import AuditEvent, Notification, PushConfig
from push.services.devices import device_register
from tests.drain import drain
from tests.e2e.browser import expect, screenshots, sign_in, tab_to, unlabelled_controls
from tests.factories import PASSWORD, enroll, make_admin, make_app, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gym(providers):
    app = make_app(name="GymOps")[0]
    admin = make_admin(app)
    member = make_user(email="member@example.com")
    enroll(app, member)
    return app, admin, member


def _web_device(app, member, fake_webpush):
    """The member's browser: a real subscription at the fake push service, with the app's key."""
    key = PushConfig.objects.get(app=app).vapid_public_key
    subscription = fake_webpush.new_subscription(application_server_key=key)
    device_register(
        user=member,
        app_id=app.app_id,
        platform="web",
        push_token=subscription,
        label="Firefox on Linux",
    )
    return subscription


def test_admin_enables_push_configures_it_and_sends_a_test(page, live_server, gym, providers):
    app, admin, member = gym
    sign_in(page, live_server, admin.email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/console/$"))
    expect(page.get_by_role("link", name="GymOps")).to_be_visible()
    screenshots(page, "console-apps")

    page.get_by_role("link", name="GymOps").click()
    expect(page.get_by_text(str(app.app_id))).to_be_visible()
    screenshots(page, "console-overview")
    page.get_by_role("link", name="Notifications", exact=True).click()

    # Enable: the first time shows the new secret and VAPID key, each with a copy button.
    switch = page.get_by_role("switch", name="Push notifications")
    expect(switch).to_have_attribute("aria-checked", "false")
    tab_to(page, switch)
    page.keyboard.press("Enter")
    expect(page.get_by_role("switch", name="Push notifications")).to_have_attribute(
        "aria-checked", "true"
    )
    config = PushConfig.objects.get(app=app)
    expect(page.locator("#new-webhook-secret")).to_have_text(config.webhook_secret)
    expect(page.locator("#new-vapid-key")).to_have_text(config.vapid_public_key)
    page.get_by_role("button", name="Copy secret").click()
    expect(page.get_by_role("button", name=re.compile("Copied|by hand"))).to_be_visible()

    # Bad settings are explained next to the field, in words.
    page.get_by_label("Daily quota").fill("0")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings_daily_quota_error")).to_have_text(
        "The daily quota must be at least 1."
    )
    expect(page.get_by_label("Daily quota")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Webhook URL").fill("http://hooks.example.com/push")
    page.get_by_label("Daily quota").fill("500")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings_webhook_url_error")).to_contain_text("Not allowed")
    screenshots(page, "console-notifications-errors")
    assert PushConfig.objects.get(app=app).daily_quota != 500

    webhook = f"{providers['webhook'].url}/hooks/push-receipts"
    page.get_by_label("Webhook URL").fill(webhook)
    page.get_by_label("Daily quota").fill("500")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    config.refresh_from_db()
    assert (config.webhook_url, config.daily_quota) == (webhook, 500)

    # A test notification to an enrolled user with one registered browser.
    subscription = _web_device(app, member, providers["webpush"])
    page.get_by_label("Send to (email of an enrolled user)").fill("nobody@example.com")
    page.get_by_role("button", name="Send test notification").click()
    expect(page.locator("#test_email_error")).to_have_text(
        "No Keymaster user has this email address."
    )
    page.get_by_label("Send to (email of an enrolled user)").fill(member.email)
    page.get_by_label("Title").fill("Your shift starts in 30 min")
    page.get_by_role("button", name="Send test notification").click()
    result = page.locator("#test-result")
    expect(result.locator("[data-status]")).to_have_attribute("data-status", "queued")
    screenshots(page, "console-notifications-queued")

    # The delivery worker's queued tasks run here, in-process; the page polls for the result.
    assert drain() == 1  # the delivery chunk; its receipt goes out from the same task
    expect(result.locator("[data-status]")).to_have_attribute(
        "data-status", "delivered", timeout=10_000
    )
    expect(result.get_by_text("Delivered").first).to_be_visible()
    notification = Notification.objects.get(app=app)
    assert notification.status == "delivered"
    received = providers["webpush"].received(subscription)
    assert [json.loads(message.payload)["title"] for message in received] == [
        "Your shift starts in 30 min"
    ]

    page.reload()
    assert unlabelled_controls(page) == []
    receipts = page.locator("#receipts")
    expect(receipts.get_by_text("HTTP 200")).to_be_visible()
    expect(page.locator("#usage svg.chart rect.bar.delivered")).to_have_count(1)
    screenshots(page, "console-notifications")
    actions = set(AuditEvent.objects.filter(app=app).values_list("action", flat=True))
    assert actions == {"config.update", "notification.test_send"}
