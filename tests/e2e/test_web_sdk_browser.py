"""An app's own site (a second origin on 127.0.0.1) uses the browser SDK and service worker.

Real Chromium; Keymaster is pytest-django's live server (http://localhost:<port>). The real
push service is unreachable here, so the page's `PushManager` returns a subscription made at
the local Web Push fake, and the worker's push event is delivered through the DevTools
protocol with the payload that fake decrypted.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings

from accounts.tokens import user_tokens_issue
from push.models import Delivery, Device, PushConfig
from tests.drain import drain
from tests.e2e.browser import expect, sign_in
from tests.factories import (
    PASSWORD,
    app_client,
    enable_push,
    enroll,
    make_admin,
    make_app,
    make_user,
)

pytestmark = pytest.mark.django_db(transaction=True)

STATIC = settings.BASE_DIR / "static" / "keymaster"
# The page's PushManager, answering with the fake's subscription (FAKE_SUBSCRIPTION).
FAKE_PUSH_MANAGER = """
(() => {
  const json = FAKE_SUBSCRIPTION;
  let current = null;
  const subscription = {
    endpoint: json.endpoint, expirationTime: null, options: {applicationServerKey: null},
    toJSON: () => json,
    unsubscribe: async () => { current = null; return true; },
  };
  PushManager.prototype.getSubscription = async function () { return current; };
  PushManager.prototype.subscribe = async function (options) {
    window.subscribedWithKey = Array.from(new Uint8Array(options.applicationServerKey));
    current = subscription;
    return subscription;
  };
})();
"""
SUBSCRIBE = """async ([baseUrl, appId, vapidPublicKey, token]) => {
  const sdk = await import("/keymaster-push.js");
  try {
    const deviceId = await sdk.subscribe({
      baseUrl, appId, vapidPublicKey, getAccessToken: async () => token,
    });
    return {deviceId, status: await sdk.status()};
  } catch (error) {
    return {code: error.code, message: error.message};
  }
}"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def site(tmp_path):
    """The app's own site: a page, the SDK and the service worker copied to its origin."""
    (tmp_path / "index.html").write_text("<!doctype html><title>GymOps</title><h1>GymOps</h1>")
    for name in ("keymaster-push.js", "keymaster-sw.js"):
        shutil.copy(STATIC / name, tmp_path / name)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def gym(providers):
    app = make_app(name="GymOps")[0]
    config = enable_push(app, track_opens=True)
    member = make_user(email="member@example.com")
    enroll(app, member)
    return app, config, member


def _site_page(chromium, site, subscription):
    context = chromium.new_context()
    context.grant_permissions(["notifications"], origin=site)
    context.add_init_script(
        FAKE_PUSH_MANAGER.replace("FAKE_SUBSCRIPTION", json.dumps(subscription))
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site}/index.html")
    return context, page, errors


def _subscribe(page, live_server, app, config, member):
    token = user_tokens_issue(member)["access"]
    args = [live_server.url, str(app.app_id), config.vapid_public_key, token]
    return page.evaluate(SUBSCRIBE, args)


def _registration_id(page, site):
    cdp = page.context.new_cdp_session(page)
    registrations: list[dict] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    for _ in range(50):
        mine = [r for r in registrations if r["scopeURL"].startswith(site) and not r["isDeleted"]]
        if mine:
            return cdp, mine[0]["registrationId"]
        page.wait_for_timeout(100)  # events arrive while Playwright waits
    raise AssertionError(f"no service worker registration for {site}: {registrations}")


def test_an_allowed_site_subscribes_shows_a_push_and_reports_the_click(
    chromium, live_server, site, gym, providers
):
    app, config, member = gym
    PushConfig.objects.filter(app=app).update(allowed_origins=[site])
    subscription = providers["webpush"].new_subscription(config.vapid_public_key)
    context, page, errors = _site_page(chromium, site, subscription)

    result = _subscribe(page, live_server, app, config, member)

    assert "deviceId" in result, result
    assert result["status"] == "subscribed"
    device = Device.objects.get(pk=result["deviceId"])
    assert (device.user_id, device.platform, device.transport) == (member.pk, "web", "webpush")
    assert json.loads(device.token)["endpoint"] == subscription["endpoint"]
    key = page.evaluate("window.subscribedWithKey")
    assert bytes(key) == _b64url(config.vapid_public_key)

    # Keymaster sends; the fake push service decrypts what a browser would receive.
    data = {"url": f"{site}/index.html?from=push", "icon": f"{site}/icon.png", "shift": 42}
    response = app_client(app).post(
        "/push/send",
        {"user_id": str(member.id), "title": "Shift approved", "body": "Monday", "data": data},
        format="json",
    )
    notification_id = response.json()["notification_id"]
    drain()
    [received] = providers["webpush"].received()
    payload = json.loads(received.payload)
    assert payload["notification_id"] == notification_id and payload["open_token"]

    # The worker's push handler, given that payload through the DevTools protocol.
    cdp, registration_id = _registration_id(page, site)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": site, "registrationId": registration_id, "data": received.payload.decode()},
    )
    # Polled from here: the handler shows the notification some time after the push arrives.
    shown = None
    for _ in range(150):
        shown = page.evaluate(
            """() => navigator.serviceWorker.ready.then(r => r.getNotifications())
                .then(list => list.length ? list.map(n => ({title: n.title, body: n.body,
                      icon: n.icon, tag: n.tag, data: n.data})) : null)"""
        )
        if shown:
            break
        page.wait_for_timeout(100)
    assert shown == [
        {
            "title": "Shift approved",
            "body": "Monday",
            "icon": f"{site}/icon.png",
            "tag": notification_id,
            "data": {
                **data,
                "notification_id": notification_id,
                "open_token": payload["open_token"],
            },
        }
    ]

    # Its click handler, run in the worker with the notification it showed.
    [worker] = [w for w in context.service_workers if w.url.startswith(site)]
    worker.evaluate(
        """async () => {
          const [notification] = await self.registration.getNotifications();
          let work = Promise.resolve();
          self.keymasterNotificationClick({notification, waitUntil: p => { work = p; }});
          await work.catch(() => {});  // opening a window needs a real click: not here
        }"""
    )
    delivery = Delivery.objects.get(notification_id=notification_id)
    for _ in range(50):
        delivery.refresh_from_db()
        if delivery.opened_at:
            break
        page.wait_for_timeout(100)
    assert delivery.opened_at is not None
    assert page.evaluate("navigator.serviceWorker.ready.then(r => r.getNotifications())") == []

    # Unsubscribing removes the device from Keymaster (a cross-origin DELETE) and the browser.
    page.evaluate(
        """async () => {
          const sdk = await import("/keymaster-push.js");
          await sdk.unsubscribe();
          window.statusAfter = await sdk.status();
        }"""
    )
    assert not Device.objects.filter(pk=device.pk).exists()
    assert page.evaluate("window.statusAfter") == "default"

    # The admin sees the open in the Console.
    admin = make_admin(app)
    console = chromium.new_context().new_page()
    sign_in(console, live_server, admin.email, PASSWORD)
    console.goto(f"{live_server.url}/console/apps/{app.app_id}/notifications/{notification_id}/")
    opened = console.locator("[data-opened]")
    assert opened.inner_text().strip() not in ("", "—")
    context.close()
    assert not errors, errors


def test_a_site_no_app_allows_is_blocked_by_the_browser(
    chromium, live_server, site, gym, providers
):
    app, config, member = gym
    subscription = providers["webpush"].new_subscription(config.vapid_public_key)
    context, page, _ = _site_page(chromium, site, subscription)

    result = _subscribe(page, live_server, app, config, member)

    assert result["code"] == "keymaster_unreachable"
    assert "allowed origins" in result["message"]
    # The fetch itself, as the page sees it: the browser blocks the answer.
    failure = page.evaluate(
        """url => fetch(url + "/push/devices/register", {method: "POST",
              headers: {"Authorization": "Bearer x", "Content-Type": "application/json"},
              body: "{}"}).then(r => "answered " + r.status, e => e.name + ": " + e.message)""",
        live_server.url,
    )
    assert failure == "TypeError: Failed to fetch"
    assert not Device.objects.exists()
    context.close()


def test_a_site_another_app_allows_gets_origin_not_allowed(
    chromium, live_server, site, gym, providers
):
    app, config, member = gym
    other = make_app(name="Other")[0]
    enable_push(other, allowed_origins=[site])
    subscription = providers["webpush"].new_subscription(config.vapid_public_key)
    context, page, _ = _site_page(chromium, site, subscription)

    result = _subscribe(page, live_server, app, config, member)

    assert result["code"] == "origin_not_allowed"
    assert site in result["message"]
    assert not Device.objects.exists()
    context.close()


def _b64url(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_the_console_sets_allowed_origins_and_counts_body_bytes(page, live_server, gym):
    app, _, _ = gym
    admin = make_admin(app)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server.url}/console/apps/{app.app_id}/settings/")

    page.get_by_label("Allowed origins").fill("https://app.example.com\nhttp://evil.example.com")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings_allowed_origins_error")).to_contain_text("must use https")
    page.get_by_label("Allowed origins").fill("https://App.example.com/\nhttp://localhost:5173")
    page.get_by_label("Track opens").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    config = PushConfig.objects.get(app=app)
    assert config.allowed_origins == ["https://app.example.com", "http://localhost:5173"]
    assert config.track_opens

    page.goto(f"{live_server.url}/console/apps/{app.app_id}/notifications/")
    body = page.get_by_label("Body")
    body.fill("é" * 3000)  # 6,000 bytes: shown, not cut
    assert body.input_value() == "é" * 3000
    expect(page.locator("[id$=body_bytes]")).to_have_text("6,000 / 4,096 bytes")


def test_the_sdk_says_what_is_wrong(chromium, live_server, site, gym, providers):
    app, config, member = gym
    PushConfig.objects.filter(app=app).update(allowed_origins=[site])
    subscription = providers["webpush"].new_subscription(config.vapid_public_key)

    # Push switched off for the app: Keymaster's 403 push_disabled, with what to do.
    PushConfig.objects.filter(app=app).update(enabled=False)
    context, page, _ = _site_page(chromium, site, subscription)
    result = _subscribe(page, live_server, app, config, member)
    assert result["code"] == "push_disabled" and "Console" in result["message"]
    context.close()

    # Notifications blocked for the site.
    context = chromium.new_context()
    context.add_init_script(
        FAKE_PUSH_MANAGER.replace("FAKE_SUBSCRIPTION", json.dumps(subscription))
    )
    page = context.new_page()
    page.goto(f"{site}/index.html")
    page.evaluate("() => { Notification.requestPermission = async () => 'denied'; }")
    result = _subscribe(page, live_server, app, config, member)
    assert result["code"] == "permission_denied" and "site settings" in result["message"]

    # A browser without Push (status() says so; subscribe() explains it).
    page.evaluate("() => { delete window.PushManager; }")
    assert (
        page.evaluate("async () => (await import('/keymaster-push.js')).status()") == "unsupported"
    )
    result = _subscribe(page, live_server, app, config, member)
    assert result["code"] == "unsupported"
    context.close()
    assert not Device.objects.exists()
