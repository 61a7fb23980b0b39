"""Registration under many parallel requests on PostgreSQL: exact limits, one device per token.

Real HTTP from a pool of threads to pytest-django's threaded live server, each request on its
own database connection. The quota and Idempotency-Key races are in
tests/push/api/test_quota_and_idempotency.py; figures of both go to
artifacts/reliability/concurrency.json.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import requests
from django.db.models import Count

from accounts.tokens import user_tokens_issue
from keymaster import ratelimit
from keymaster.models import Counter
from push.models import Device
from tests.concurrency import burst_url, concurrently
from tests.factories import enroll, fcm_token, make_push_app, make_user
from tests.figures import figures_record

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REQUESTS = 50


def _register(url, access, app, token):
    response = requests.post(
        f"{url}/push/devices/register",
        json={"app_id": str(app.app_id), "platform": "android", "push_token": token},
        headers={"Authorization": f"Bearer {access}"},
        timeout=60,
    )
    return response.status_code, response.headers.get("Retry-After"), response.json()


def _duplicate_devices() -> int:
    """Devices that share (app, token) with another: the unique constraint should keep it 0."""
    groups = Device.objects.values("app", "token_hmac").annotate(n=Count("id")).filter(n__gt=1)
    return sum(group["n"] - 1 for group in groups)


@pytest.fixture
def app():
    return make_push_app()


def test_fifty_parallel_registrations_never_pass_the_hourly_limit(
    live_server, app, settings, monkeypatch
):
    user = make_user()
    enroll(app, user)
    # One fixed instant for the limiter: the run cannot straddle two hourly windows.
    instant = time.time()
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: instant))
    limit = settings.PUSH_REGISTRATIONS_PER_HOUR
    assert limit == 10  # the guide's figure

    url, access = burst_url(live_server), user_tokens_issue(user)["access"]
    answers = concurrently(REQUESTS, lambda i: _register(url, access, app, fcm_token(f"limit-{i}")))

    codes = [code for code, _, _ in answers]
    assert codes.count(201) == limit and codes.count(429) == REQUESTS - limit, codes
    retry_afters = [int(retry) for code, retry, _ in answers if code == 429]
    assert all(0 < seconds <= 3600 for seconds in retry_afters)
    assert {body["error"]["code"] for code, _, body in answers if code == 429} == {"rate_limited"}
    assert Device.objects.filter(user=user, app=app).count() == limit
    assert Counter.objects.get(key=f"register:{user.pk}").count == limit
    figures_record(
        "concurrency",
        "registration_rate_limit",
        {
            "concurrent_requests": REQUESTS,
            "limit": limit,
            "succeeded": codes.count(201),
            "refused_429": codes.count(429),
            "devices_created": Device.objects.filter(user=user, app=app).count(),
            "over_limit": max(0, codes.count(201) - limit),
        },
    )


def test_fifty_parallel_registrations_of_one_token_make_one_device(live_server, app, settings):
    # The race under test is the upsert; the limit (10 an hour, above) would refuse 40 of them.
    settings.PUSH_REGISTRATIONS_PER_HOUR = REQUESTS
    user = make_user()
    enroll(app, user)
    token = fcm_token("same-token")

    url, access = burst_url(live_server), user_tokens_issue(user)["access"]
    answers = concurrently(REQUESTS, lambda _: _register(url, access, app, token))

    codes = [code for code, _, _ in answers]
    assert codes.count(201) == 1 and codes.count(200) == REQUESTS - 1, codes
    [device_id] = {body["device_id"] for _, _, body in answers}
    [device] = Device.objects.filter(app=app)
    assert str(device.id) == device_id and device.user == user and device.token == token
    assert _duplicate_devices() == 0
    figures_record(
        "concurrency",
        "same_token_one_user",
        {
            "concurrent_requests": REQUESTS,
            "answered_201": codes.count(201),
            "answered_200": codes.count(200),
            "distinct_device_ids": 1,
            "device_rows": Device.objects.filter(app=app).count(),
            "duplicate_devices": _duplicate_devices(),
        },
    )


def test_one_token_registered_by_two_users_at_once_is_one_device_of_one_of_them(
    live_server, app, settings
):
    # The README: re-registering a token moves it to the registering user (a phone that
    # changed hands). Racing, the last write wins; never two rows.
    settings.PUSH_REGISTRATIONS_PER_HOUR = REQUESTS
    users = [make_user(), make_user()]
    enroll(app, *users)
    token = fcm_token("shared-phone")

    url, accesses = burst_url(live_server), [user_tokens_issue(u)["access"] for u in users]
    answers = concurrently(REQUESTS, lambda i: _register(url, accesses[i % 2], app, token))

    codes = [code for code, _, _ in answers]
    assert codes.count(201) == 1 and codes.count(200) == REQUESTS - 1, codes
    [device_id] = {body["device_id"] for _, _, body in answers}
    [device] = Device.objects.filter(app=app)
    assert str(device.id) == device_id and device.user in users and device.token == token
    assert _duplicate_devices() == 0
    figures_record(
        "concurrency",
        "same_token_two_users",
        {
            "concurrent_requests": REQUESTS,
            "answered_201": codes.count(201),
            "answered_200": codes.count(200),
            "device_rows": Device.objects.filter(app=app).count(),
            "duplicate_devices": _duplicate_devices(),
        },
    )
