"""The Django admin's push pages: they render for a superuser, refuse others, show no secret."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from push.delivery.deliveries import deliveries_send
from push.models import AuditEvent, Delivery, Device, Notification, PushConfig, Receipt
from push.services.notifications import NotificationDraft, notifications_send
from tests.factories import enroll, make_push_app, make_user, register

pytestmark = pytest.mark.django_db

MODELS = [PushConfig, Device, Notification, Delivery, Receipt, AuditEvent]


@pytest.fixture
def sent(providers):
    """An app with a webhook, a device and one notification delivered (with its receipt)."""
    app = make_push_app(webhook_url=f"{providers['webhook'].url}/hook")
    user = make_user()
    enroll(app, user)
    device = register(user, app)
    ids, _ = notifications_send(
        app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")]
    )
    deliveries_send(list(Delivery.objects.values_list("id", flat=True)))
    return app, device, ids[0]


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _secrets(app, device) -> list[str]:
    config = PushConfig.objects.get(app=app)
    return [device.token, device.token_hmac, config.webhook_secret, config.vapid_private_key]


def test_every_push_page_renders_for_a_superuser_without_a_secret(sent):
    app, device, _ = sent
    admin = User.objects.create_superuser("root@example.com", "pw-pw-pw-pw-1")
    client = _client(admin)
    assert Receipt.objects.exists()
    for model in MODELS:
        meta = model._meta
        listing = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert listing.status_code == 200, meta.model_name
        obj = model.objects.first()
        page = client.get(
            reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
        )
        assert page.status_code == 200, meta.model_name
        for html in (listing.content.decode(), page.content.decode()):
            for secret in _secrets(app, device):
                assert secret not in html, f"{meta.model_name} shows a secret"


def test_push_rows_cannot_be_added_or_edited_but_the_quota_can(sent):
    app, _, notification_id = sent
    client = _client(User.objects.create_superuser("root@example.com", "pw-pw-pw-pw-1"))
    assert client.get(reverse("admin:push_notification_add")).status_code == 403
    url = reverse("admin:push_notification_change", args=[notification_id])
    page = client.get(url).content.decode()
    assert 'name="title"' not in page  # shown, not an input
    assert client.post(url, {"title": "changed"}).status_code == 403
    assert Notification.objects.get(pk=notification_id).title == "t"
    config_url = reverse("admin:push_pushconfig_change", args=[app.pk])
    assert 'name="daily_quota"' in client.get(config_url).content.decode()
    assert 'name="webhook_url"' not in client.get(config_url).content.decode()


@pytest.mark.parametrize("staff", [False, True])
def test_push_pages_refuse_anyone_but_an_admin(sent, staff):
    client = _client(make_user(staff=staff))
    for model in MODELS:
        meta = model._meta
        answer = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        # Not staff: sent to the admin login; staff without permissions: forbidden.
        assert answer.status_code == (403 if staff else 302), meta.model_name
        if not staff:
            assert "/admin/login/" in answer["Location"]
