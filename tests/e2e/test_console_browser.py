"""An admin runs an app from the Console, in a real browser: create it, set it up, enroll a
user, send a test and follow it to the device and the webhook; paging, filters and forms."""

from __future__ import annotations

import json
import re

import pytest

from accounts.models import App
from accounts.services import invitation_accept
from push.models import AuditEvent, Notification, PushConfig
from push.services.devices import device_register
from tests.drain import drain
from tests.e2e.browser import (
    expect,
    in_viewport,
    screenshots,
    sign_in,
    tab_to,
    unlabelled_controls,
)
from tests.factories import PASSWORD, enable_push, enroll, make_admin, make_app, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gym(providers):
    app = make_app(name="GymOps")[0]
    admin = make_admin(app)
    member = make_user(email="member@example.com")
    enroll(app, member)
    return app, admin, member


def _web_device(app, member, fake_webpush):
    """The member's browser registers: a real subscription at the fake push service."""
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


def _open_tab(page, name):
    page.get_by_role("navigation", name="App sections").get_by_role("link", name=name).click()


def test_staff_create_an_app_enroll_a_user_and_follow_a_test_send(page, live_server, providers):
    staff = make_user(email="ops@example.com", staff=True)
    member = make_user(email="member@example.com")
    sign_in(page, live_server, staff.email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/console/$"))

    # Create: the client secret is shown once, with a copy button.
    page.get_by_label("App name").fill("GymOps")
    page.get_by_role("button", name="Create app").click()
    app = App.objects.get(name="GymOps")
    secret = page.locator("#client-secret-value").inner_text()
    assert app.check_client_secret(secret)
    page.get_by_role("button", name="Copy secret").click()
    expect(page.get_by_role("button", name=re.compile("Copied|by hand"))).to_be_visible()
    screenshots(page, "console-overview")
    page.reload()
    expect(page.locator("#client-secret-value")).to_have_count(0)

    # Settings: push on (the first time shows the webhook secret and VAPID key), a webhook.
    _open_tab(page, "Settings")
    expect(page).to_have_url(re.compile(r"/settings/$"))
    switch = page.get_by_role("switch", name="Push notifications")
    tab_to(page, switch)
    page.keyboard.press("Enter")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(page.locator("#new-webhook-secret")).to_have_text(
        PushConfig.objects.get(app=app).webhook_secret
    )
    webhook = f"{providers['webhook'].url}/hooks/push-receipts"
    page.get_by_label("Webhook URL").fill(webhook)
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    screenshots(page, "console-settings")

    # Users: invite by email; the page says the same whether or not the address has an account.
    _open_tab(page, "Users")
    page.get_by_label("Email addresses").fill(f"{member.email}\nnobody@example.com")
    page.get_by_role("button", name="Invite", exact=True).click()
    said = f"Invitation sent to {member.email}, nobody@example.com."
    expect(page.get_by_role("status").filter(has_text=said)).to_be_visible()
    expect(page.get_by_role("cell", name=member.email)).to_be_visible()
    # The member accepts (on their Account page: test_scheduling_browser.py does it there).
    invitation_accept(user=member, app_id=str(app.app_id))
    page.reload()
    expect(page.locator("#enrolled").get_by_role("cell", name=member.email)).to_be_visible()
    screenshots(page, "console-users")

    # The member's browser registers; the admin sends a test from the Notifications tab.
    subscription = _web_device(app, member, providers["webpush"])
    _open_tab(page, "Devices")
    page.get_by_role("link", name=re.compile("Send a test")).click()
    expect(page.get_by_text("Only to Firefox on Linux")).to_be_visible()
    expect(page.get_by_label("Send to (email of an enrolled user)")).to_have_value(member.email)
    page.get_by_label("Title").fill("Your shift starts in 30 min")
    expect(page.locator("[data-preview-title]")).to_have_text("Your shift starts in 30 min")
    page.get_by_role("button", name="Send test notification").click()
    notification = Notification.objects.get(app=app)
    expect(page).to_have_url(re.compile(rf"/notifications/{notification.id}/$"))
    expect(page.get_by_text("The Console (test send by ops@example.com)")).to_be_visible()

    # The worker delivers, then POSTs the receipt; the page, polling, reloads and shows both.
    expect(page.locator("section[data-status]")).to_have_attribute("data-status", "queued")
    drain()
    expect(page.locator("section[data-status]")).to_have_attribute(
        "data-status", "delivered", timeout=10_000
    )
    page.reload()
    assert Notification.objects.count() == 1  # a reload of the result does not send again
    expect(page.get_by_role("heading", name=re.compile("Firefox on Linux"))).to_be_visible()
    expect(page.get_by_text("1 attempt with the push service")).to_be_visible()
    expect(page.get_by_text("HTTP 200")).to_be_visible()
    assert unlabelled_controls(page) == []
    screenshots(page, "console-notification")
    received = providers["webpush"].received(subscription)
    assert [json.loads(m.payload)["title"] for m in received] == ["Your shift starts in 30 min"]

    _open_tab(page, "Audit")
    expect(page.get_by_role("cell", name=re.compile("Sent a test notification"))).to_be_visible()
    actions = set(AuditEvent.objects.filter(app=app).values_list("action", flat=True))
    assert {"app.create", "config.update", "invitation.create", "notification.test_send"} <= actions


def test_a_failed_form_shows_its_errors_where_the_eye_is(page, live_server, gym):
    app, admin, _ = gym
    enable_push(app)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server.url}/console/apps/{app.app_id}/settings/")
    page.get_by_label("Webhook URL").fill("http://hooks.example.com/push")
    page.get_by_label("Daily quota").fill("0")
    page.get_by_role("button", name="Save settings").click()
    summary = page.locator("[data-form-error]")
    expect(summary).to_contain_text("2 things need fixing")
    expect(summary).to_contain_text("Webhook URL")
    expect(summary).to_contain_text("Daily quota")
    assert in_viewport(page, summary)
    expect(page.get_by_label("Webhook URL")).to_be_focused()
    screenshots(page, "console-settings-errors")
    # The error page is a GET: reloading it posts nothing again.
    page.reload()
    assert (
        not AuditEvent.objects.filter(app=app, action="config.update")
        .exclude(detail__enabled=True)
        .exists()
    )

    # The FCM upload sits at the bottom of the page: its error is still where the eye is.
    page.get_by_role("button", name="Upload service account").click()
    expect(page.locator("#fcm_file_error")).to_be_visible()
    assert in_viewport(page, page.locator("#fcm [data-form-error]"))
    expect(page.get_by_label("Service account key file (JSON)")).to_be_focused()


def test_turning_push_off_asks_first_and_escape_closes_a_confirmation(page, live_server, gym):
    app, admin, _ = gym
    enable_push(app)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server.url}/console/apps/{app.app_id}/settings/")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("switch", name="Push notifications").click()
    expect(page.get_by_role("switch", name="Push notifications")).to_have_attribute(
        "aria-checked", "true"
    )
    assert PushConfig.objects.get(app=app).enabled
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("switch", name="Push notifications").click()
    expect(page.get_by_role("switch", name="Push notifications")).to_have_attribute(
        "aria-checked", "false"
    )
    assert not PushConfig.objects.get(app=app).enabled

    page.get_by_text("Rotate secret…").click()
    expect(page.get_by_role("button", name="Yes, rotate the webhook secret")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Yes, rotate the webhook secret")).to_be_hidden()


def test_notifications_page_and_filter_in_the_browser(page, live_server, gym):
    app, admin, member = gym
    for n in range(23):
        Notification.objects.create(
            app=app, user_id=member.id, title=f"Shift {n:02}", body="b", status="delivered"
        )
    Notification.objects.create(
        app=app, user_id=member.id, title="Broken", body="b", status="failed"
    )
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server.url}/console/apps/{app.app_id}/notifications/")
    expect(page.get_by_text("Page 1 of 2 (24 notifications)")).to_be_visible()
    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(re.compile(r"page=2"))
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name="Broken")).to_be_visible()
    expect(page.get_by_role("link", name="Shift 00")).to_have_count(0)
    page.get_by_role("link", name="Broken").click()
    expect(page.get_by_role("heading", name=re.compile("Broken"))).to_be_visible()
