"""A person manages their devices on the Account page and turns on this browser's notifications."""

from __future__ import annotations

import json
import re

import pytest

from push.models import Device
from tests.e2e.browser import expect, screenshots, sign_in, tab_to, unlabelled_controls
from tests.factories import PASSWORD, enable_push, enroll, make_app, make_user, register
from tests.push.subscriptions import browser_subscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def person():
    return make_user(email="person@example.com")


@pytest.fixture
def keymaster_app(settings):
    """Keymaster's own app, whose VAPID key browsers subscribe with."""
    app = make_app(name="Keymaster")[0]
    enable_push(app)
    settings.PUSH_DEFAULT_APP_ID = str(app.app_id)
    return app


def test_a_person_sees_devices_by_app_and_revokes_one(page, live_server, person):
    gym, shop = make_app(name="GymOps")[0], make_app(name="ShopFloor")[0]
    for app in (gym, shop):
        enable_push(app)
        enroll(app, person)
    phone = register(person, gym, platform="ios")
    tablet = register(person, gym, platform="android")
    laptop = register(person, shop, token=browser_subscription(), platform="web")
    for device, label in (
        (phone, "Safari on iPhone"),
        (tablet, "Chrome on Android"),
        (laptop, "Firefox on Linux"),
    ):
        Device.objects.filter(pk=device.pk).update(label=label)

    sign_in(page, live_server, person.email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/account$"))
    gym_section = page.locator("section", has=page.get_by_role("heading", name="GymOps"))
    shop_section = page.locator("section", has=page.get_by_role("heading", name="ShopFloor"))
    expect(gym_section.get_by_role("row")).to_have_count(3)  # header + two devices
    expect(shop_section.get_by_role("cell", name="Firefox on Linux")).to_be_visible()
    expect(gym_section.get_by_role("cell", name="Safari on iPhone")).to_be_visible()
    expect(gym_section.locator("time[data-relative]").first).to_have_text(re.compile("now|second"))
    # Times are in the viewer's locale, with UTC on hover.
    registered = gym_section.locator("time[data-local]").first
    expect(registered).to_have_attribute("title", re.compile(r"UTC$"))
    expect(registered).not_to_have_text(re.compile("UTC"))
    screenshots(page, "account")

    assert unlabelled_controls(page) == []

    # Revoke with the keyboard alone: open the confirmation, then confirm.
    row = gym_section.get_by_role("row").filter(has_text="Safari on iPhone")
    tab_to(page, row.get_by_text("Revoke…"))
    page.keyboard.press("Enter")
    confirm = row.get_by_role("button", name="Yes, revoke this device")
    expect(confirm).to_be_visible()
    page.keyboard.press("Tab")
    expect(confirm).to_be_focused()
    screenshots(page, "account-revoke-confirm")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Device revoked")).to_be_visible()
    expect(page.get_by_role("cell", name="Safari on iPhone")).to_have_count(0)
    assert not Device.objects.filter(pk=phone.pk).exists()
    assert Device.objects.filter(pk__in=[tablet.pk, laptop.pk]).count() == 2


def test_a_person_without_devices_is_told_how_to_register_one(page, live_server, person):
    sign_in(page, live_server, person.email, PASSWORD)
    expect(page.get_by_role("heading", name="No devices yet")).to_be_visible()
    screenshots(page, "account-empty")


def test_enable_notifications_posts_a_subscription_or_says_why_not(
    page, live_server, person, keymaster_app
):
    posted: list[dict] = []
    page.on(
        "request",
        lambda request: (
            posted.append(json.loads(request.post_data or "{}"))
            if request.url.endswith("/push/subscribe") and request.method == "POST"
            else None
        ),
    )
    sign_in(page, live_server, person.email, PASSWORD)
    page.get_by_role("button", name="Enable notifications in this browser").click()
    status = page.locator("#browser-push-status")
    expect(status).to_have_text(
        re.compile("on in this browser|unavailable|not support|not allow"), timeout=45_000
    )
    if "on in this browser" in status.inner_text():
        # A push service answered: the subscription reached the server and is listed.
        assert len(posted) == 1
        assert set(posted[0]) == {"endpoint", "expirationTime", "keys"}
        assert set(posted[0]["keys"]) == {"p256dh", "auth"}
        assert (
            Device.objects.filter(user=person, app=keymaster_app, transport="webpush").count() == 1
        )
    else:
        # Offline (as here): nothing was posted, and the page says why in words.
        assert posted == []
        assert not Device.objects.filter(user=person).exists()
    # Either way the service worker is registered at the site root, covering every page.
    scope = page.evaluate("navigator.serviceWorker.getRegistration('/').then(r => r && r.scope)")
    assert scope == f"{live_server.url}/"
    screenshots(page, "account-enable")


def test_the_page_posts_a_subscription_the_server_stores(page, live_server, person, keymaster_app):
    sign_in(page, live_server, person.email, PASSWORD)
    subscription = browser_subscription("https://push.example.net/wpush/v2/e2e-browser")
    answer = page.evaluate("sub => window.keymasterPostSubscription(sub)", subscription)
    assert answer == {"ok": True, "count": 1}
    device = Device.objects.get(user=person, app=keymaster_app)
    assert (device.platform, device.transport) == ("web", "webpush")
    assert json.loads(device.token)["endpoint"] == subscription["endpoint"]
    # The same subscription again is an upsert, not a second device.
    again = page.evaluate("sub => window.keymasterPostSubscription(sub)", subscription)
    assert again == {"ok": True, "count": 1}
    page.reload()
    expect(page.get_by_role("heading", name="Keymaster")).to_be_visible()
    expect(page.get_by_role("cell", name="Chrome on Linux")).to_be_visible()


def test_a_refused_subscription_is_explained_in_words(page, live_server, person, keymaster_app):
    sign_in(page, live_server, person.email, PASSWORD)
    bad = {"endpoint": "http://10.0.0.1/push", "keys": {"p256dh": "x", "auth": "y"}}
    message = page.evaluate(
        "sub => window.keymasterPostSubscription(sub).then(() => 'stored', e => e.message)", bad
    )
    assert "endpoint" in message and "HTTP" not in message
    assert not Device.objects.filter(user=person).exists()


def test_the_service_worker_shows_a_pushed_notification(page, live_server, person):
    sign_in(page, live_server, person.email, PASSWORD)
    scope = page.evaluate(
        "navigator.serviceWorker.register('/sw.js', {scope: '/'})"
        ".then(() => navigator.serviceWorker.ready).then(r => r.scope)"
    )
    assert scope == f"{live_server.url}/"
    # The DevTools protocol hands the worker a push event, as a push service would.
    cdp = page.context.new_cdp_session(page)
    registrations: list[dict] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    for _ in range(50):
        if registrations:
            break
        page.wait_for_timeout(100)  # events arrive while Playwright waits
    payload = {
        "title": "Shift approved",
        "body": "See you Monday",
        "data": {"route": "/schedule"},
        "notification_id": "7d6f1c9e-0000-4000-8000-000000000001",
    }
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": live_server.url,
            "registrationId": registrations[0]["registrationId"],
            "data": json.dumps(payload),
        },
    )
    shown = page.wait_for_function(
        """() => navigator.serviceWorker.ready
            .then(r => r.getNotifications())
            .then(list => list.length ? list.map(n => ({title: n.title, body: n.body, tag: n.tag,
                                                        data: n.data})) : null)"""
    ).json_value()
    assert shown == [
        {
            "title": "Shift approved",
            "body": "See you Monday",
            "tag": payload["notification_id"],
            "data": {"route": "/schedule", "notification_id": payload["notification_id"]},
        }
    ]


def test_this_browsers_own_subscription_is_marked(page, live_server, person):
    app = make_app(name="GymOps")[0]
    enable_push(app)
    enroll(app, person)
    mine = browser_subscription("https://push.example.net/wpush/v2/this-one")
    other = browser_subscription("https://push.example.net/wpush/v2/another")
    for token, label in ((mine, "Chrome on Linux"), (other, "Firefox on Windows")):
        device = register(person, app, token=token, platform="web")
        Device.objects.filter(pk=device.pk).update(label=label)
    # The one seam: the browser's push subscription (headless Chromium has no push service).
    page.add_init_script(
        "navigator.serviceWorker.getRegistration = async () => ({pushManager: {"
        f"getSubscription: async () => ({{endpoint: {json.dumps(mine['endpoint'])}}})}}}});"
    )
    sign_in(page, live_server, person.email, PASSWORD)
    page.goto(f"{live_server.url}/account")
    badge = page.get_by_text("This browser", exact=True)
    expect(badge).to_have_count(2)  # one badge per web device, shown only on the match
    expect(page.locator(".this-browser:visible")).to_have_count(1)
    expect(
        page.get_by_role("row", name=re.compile("Chrome on Linux")).locator(".this-browser")
    ).to_be_visible()
    expect(
        page.get_by_role("row", name=re.compile("Firefox on Windows")).locator(".this-browser")
    ).to_be_hidden()
