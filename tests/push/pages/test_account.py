"""The Account page, the front door and the service worker (Django test client)."""

from __future__ import annotations

import pytest
from django.test import Client

from push.models import Device
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


def test_front_door_sends_each_person_where_they_work(app):
    assert Client().get("/").url == "/login"
    client = Client()
    client.force_login(make_admin(app))
    assert client.get("/").url == "/console/"
    client.force_login(make_user())
    assert client.get("/").url == "/account"


@pytest.fixture
def person(app):
    enable_push(app)
    user = make_user(email="person@example.com")
    enroll(app, user)
    return user


def test_account_lists_devices_by_app_and_refreshes_the_cookie(app, person, settings):
    second = make_app(name="Another app")[0]
    enable_push(second)
    enroll(second, person)
    register(person, app, platform="ios")
    register(person, second, platform="android")
    Device.objects.filter(user=person).update(label="Safari on iPhone")
    client = Client()
    client.force_login(person)
    response = client.get("/account")
    page = response.content.decode()
    assert response.status_code == 200
    assert page.index("Another app") < page.index("GymOps")
    assert page.count("Safari on iPhone") >= 2 and "iOS" in page and "Android" in page
    assert "now" in page  # last seen, as naturaltime
    cookie = response.cookies[settings.ACCESS_TOKEN_COOKIE]
    assert cookie.value and cookie["httponly"]


def test_account_without_devices_says_how_to_register_one(person):
    client = Client()
    client.force_login(person)
    assert "No devices yet" in client.get("/account").content.decode()


def test_account_needs_sign_in():
    response = Client().get("/account")
    assert response.status_code == 302 and response.url.startswith("/login")


def test_a_person_revokes_their_own_device_only(app, person):
    mine = register(person, app)
    stranger = make_user()
    enroll(app, stranger)
    theirs = register(stranger, app)
    client = Client()
    client.force_login(person)
    assert client.post(f"/account/revoke/{theirs.id}").status_code == 404
    assert Device.objects.filter(pk=theirs.pk).exists()
    response = client.post(f"/account/revoke/{mine.id}")
    assert response.status_code == 302 and response.url == "/account"
    assert not Device.objects.filter(pk=mine.pk).exists()
    assert client.get(f"/account/revoke/{theirs.id}").status_code == 405


def test_revoke_needs_the_csrf_token(app, person):
    device = register(person, app)
    client = Client(enforce_csrf_checks=True)
    client.force_login(person)
    assert client.post(f"/account/revoke/{device.id}").status_code == 403
    assert Device.objects.filter(pk=device.pk).exists()


def test_account_offers_browser_push_with_the_default_apps_vapid_key(app, person, settings):
    stranger = Client()
    stranger.force_login(make_user())
    settings.PUSH_DEFAULT_APP_ID = ""
    assert "No app you belong to sends" in stranger.get("/account").content.decode()
    settings.PUSH_DEFAULT_APP_ID = str(app.app_id)
    page = stranger.get("/account").content.decode()
    assert f'data-vapid-key="{push_config_for(app).vapid_public_key}"' in page
    assert "Enable notifications in this browser" in page
    assert f"can receive <strong>{app.name}</strong>" in page


def test_the_browser_card_lets_a_member_of_several_apps_pick_one(app, person, settings):
    settings.PUSH_DEFAULT_APP_ID = ""
    second = make_push_app()
    enroll(second, person)
    client = Client()
    client.force_login(person)
    page = client.get("/account").content.decode()
    assert '<select id="push-app">' in page
    for each in (app, second):
        key = push_config_for(each).vapid_public_key
        assert f'<option value="{each.app_id}" data-vapid-key="{key}">{each.name}</option>' in page


def test_people_who_administer_nothing_see_no_console_link(app, person):
    client = Client()
    client.force_login(person)
    assert 'href="/console/"' not in client.get("/account").content.decode()
    admin = Client()
    admin.force_login(make_admin(app))
    assert 'href="/console/"' in admin.get("/account").content.decode()


def test_service_worker_is_served_from_the_root():
    response = Client().get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/"
    assert b'addEventListener("push"' in response.content


def test_account_page_mutes_and_unmutes_an_app(app, person):
    register(person, app)
    client = Client()
    client.force_login(person)
    page = client.get("/account").content.decode()
    assert "Notifications from GymOps are on." in page
    assert client.post(f"/account/mute/{app.app_id}", {"muted": "1"}).url == "/account"
    assert person.enrollments.get(app=app).muted
    page = client.get("/account").content.decode()
    assert "GymOps is muted." in page and 'aria-checked="false"' in page
    client.post(f"/account/mute/{app.app_id}", {"muted": "0"})
    assert not person.enrollments.get(app=app).muted
    other = make_app(name="Not mine")[0]
    assert client.post(f"/account/mute/{other.app_id}", {"muted": "1"}).status_code == 404
