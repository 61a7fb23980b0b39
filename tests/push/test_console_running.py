"""Running an app from the Console: create, rename, rotate, enroll, admins; every list's filters."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import App, AppAdmin, Enrollment, Invitation
from accounts.tokens import user_access_token_issue
from push.models import AuditEvent, Delivery, Notification, Receipt, ReceiptAttempt
from push.pages.console_users import INVITED_MESSAGE
from tests.factories import enable_push, enroll, make_admin, make_app, make_user, register

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    return make_app(name="GymOps")[0]


def url(app, suffix=""):
    return f"/console/apps/{app.app_id}/{suffix}"


def last_event(app):
    return AuditEvent.objects.filter(app=app).latest("id")


def page_after(browser, response):
    assert response.status_code == 302
    return browser.get(response.url).content.decode()


# --- create, rename, rotate -----------------------------------------------------------------


def test_staff_create_an_app_and_see_its_secret_once():
    staff = Client()
    staff.force_login(make_user(staff=True))
    response = staff.post("/console/apps/new", {"name": "  Rota  "})
    app = App.objects.get(name="Rota")
    assert response.url == f"/console/apps/{app.app_id}/"
    first = staff.get(response.url).content.decode()
    secret = first.split('id="client-secret-value" class="wrap">')[1].split("<")[0]
    assert secret.startswith("kms_") and app.check_client_secret(secret)
    assert 'data-copy="client-secret-value"' in first
    assert secret not in staff.get(response.url).content.decode()
    assert last_event(app).action == "app.create"


def test_an_app_admin_may_not_create_apps(browser):
    assert browser.post("/console/apps/new", {"name": "Mine"}).status_code == 403
    assert not App.objects.filter(name="Mine").exists()


def test_an_empty_name_is_named_at_the_top_of_the_form():
    staff = Client()
    staff.force_login(make_user(staff=True))
    page = page_after(staff, staff.post("/console/apps/new", {"name": "   "}))
    assert "data-form-error" in page and "Enter a name for the app." in page
    assert not App.objects.exists()


def test_rename_is_audited(app, browser):
    browser.post(url(app, "rename"), {"name": "GymOps EU"})
    app.refresh_from_db()
    assert app.name == "GymOps EU"
    assert last_event(app).detail == {"old": "GymOps", "new": "GymOps EU"}


def test_rotating_the_client_secret_shows_the_new_one_once_and_old_tokens_stop(app, browser):
    response = browser.post(url(app, "client-secret/rotate"))
    page = page_after(browser, response)
    secret = page.split('id="client-secret-value" class="wrap">')[1].split("<")[0]
    app.refresh_from_db()
    assert app.check_client_secret(secret)
    assert last_event(app).action == "client_secret.rotate"
    assert secret not in browser.get(url(app)).content.decode()


# --- enrollments and admins -----------------------------------------------------------------


def test_enroll_many_at_once_invites_each_and_says_the_same_for_unknown_addresses(app, browser):
    make_user(email="ann@example.com")
    make_user(email="bo@example.com")
    response = browser.post(
        url(app, "users/enroll"), {"emails": "Ann@example.com, bo@example.com\nghost@example.com"}
    )
    page = page_after(browser, response)
    said = INVITED_MESSAGE.format(emails="ann@example.com, bo@example.com, ghost@example.com")
    assert said in page
    # Nobody is enrolled until they accept; every address waits alike, account or not.
    assert not Enrollment.objects.filter(app=app).exists()
    invited = set(Invitation.objects.filter(app=app, role="user").values_list("email", flat=True))
    assert invited == {"ann@example.com", "bo@example.com", "ghost@example.com"}
    pending = page.split('id="invitations"')[1].split("</section>")[0]
    assert all(email in pending for email in invited) and "Revoke…" in pending
    assert last_event(app).action == "invitation.create"
    assert last_event(app).detail == {
        "role": "user",
        "emails": ["ann@example.com", "bo@example.com", "ghost@example.com"],
    }
    # The answer is word for word the same when no address has an account.
    alone = page_after(browser, browser.post(url(app, "users/enroll"), {"emails": "x@nowhere.io"}))
    assert INVITED_MESSAGE.format(emails="x@nowhere.io") in alone


def test_an_invited_user_accepts_on_the_account_page_and_is_enrolled(app, browser):
    ann = make_user(email="ann@example.com")
    browser.post(url(app, "users/enroll"), {"emails": "ann@example.com"})
    person = Client()
    person.force_login(ann)
    account = person.get("/account").content.decode()
    assert 'id="invitations"' in account and "Join <strong>GymOps</strong>" in account
    response = person.post(f"/account/invitations/{app.app_id}/accept")
    assert response.status_code == 302 and response.url == "/account#invitations"
    assert "You are now enrolled in GymOps." in person.get(response.url).content.decode()
    assert Enrollment.objects.filter(app=app, user=ann).exists()
    assert not Invitation.objects.filter(app=app).exists()
    # Nothing left to accept: a 404, and the section is gone.
    assert person.post(f"/account/invitations/{app.app_id}/accept").status_code == 404
    assert 'id="invitations"' not in person.get("/account").content.decode()


def test_an_invited_user_declines_and_is_not_enrolled(app, browser):
    bo = make_user(email="bo@example.com")
    browser.post(url(app, "users/enroll"), {"emails": "bo@example.com"})
    person = Client()
    person.force_login(bo)
    page = page_after(person, person.post(f"/account/invitations/{app.app_id}/decline"))
    assert "Invitation declined." in page
    assert not Invitation.objects.exists() and not Enrollment.objects.exists()
    assert person.post(f"/account/invitations/{app.app_id}/decline").status_code == 404


def test_revoke_a_pending_invitation(app, browser):
    browser.post(url(app, "users/enroll"), {"emails": "late@example.com"})
    invitation = Invitation.objects.get(app=app)
    page = page_after(browser, browser.post(url(app, f"users/invitations/{invitation.id}/revoke")))
    assert "Invitation revoked." in page and "No invitation is waiting." in page
    assert not Invitation.objects.exists()
    assert last_event(app).action == "invitation.revoke"
    assert last_event(app).detail == {"email": "late@example.com", "role": "user"}
    # Another app's invitation is not this admin's to revoke.
    other = make_app(name="Other")[0]
    theirs = Invitation.objects.create(app=other, email="x@example.com", role="user")
    gone = browser.post(url(app, f"users/invitations/{theirs.id}/revoke"))
    assert gone.status_code == 404 and Invitation.objects.filter(pk=theirs.pk).exists()


def test_enroll_names_every_bad_address_at_once(app, browser):
    page = page_after(
        browser, browser.post(url(app, "users/enroll"), {"emails": "a@b.io, nope, @x"})
    )
    assert "Not an email address: nope, @x." in page and 'aria-invalid="true"' in page
    assert not Enrollment.objects.exists()


def test_remove_an_enrollment(app, browser):
    user = make_user(email="gone@example.com")
    enroll(app, user)
    browser.post(url(app, f"users/{user.id}/unenroll"))
    assert not Enrollment.objects.filter(app=app).exists()
    assert last_event(app).detail == {"email": "gone@example.com"}


def test_invite_an_admin_who_accepts_then_remove_them(app, browser, admin):
    helper = make_user(email="helper@example.com")
    page = page_after(browser, browser.post(url(app, "users/admins/add"), {"email": helper.email}))
    assert INVITED_MESSAGE.format(emails=helper.email) in page
    # Being made an admin always needs the person's acceptance.
    assert not AppAdmin.objects.filter(app=app, user=helper).exists()
    person = Client()
    person.force_login(helper)
    assert "Be an admin of <strong>GymOps</strong>" in person.get("/account").content.decode()
    accepted = page_after(person, person.post(f"/account/invitations/{app.app_id}/accept"))
    assert "You are now an admin in GymOps." in accepted
    assert AppAdmin.objects.filter(app=app, user=helper).exists()
    browser.post(url(app, f"users/admins/{helper.id}/remove"))
    assert not AppAdmin.objects.filter(app=app, user=helper).exists()
    assert [e.action for e in AuditEvent.objects.filter(app=app).order_by("id")] == [
        "invitation.create",
        "admin.remove",
    ]
    # Removing yourself leaves you at the app list, which no longer shows the app.
    response = browser.post(url(app, f"users/admins/{admin.id}/remove"))
    assert response.url == "/console/"


def test_the_users_tab_lists_filters_and_pages_enrollments(app, browser):
    for n in range(23):
        enroll(app, make_user(email=f"member{n:02}@example.com"))
    page = browser.get(url(app, "users/")).content.decode()
    assert "Page 1 of 2 (23 users)" in page
    assert "member22@example.com" in browser.get(url(app, "users/?page=2")).content.decode()
    only = browser.get(url(app, "users/?email=member07")).content.decode()
    assert "member07@example.com" in only and "member08@example.com" not in only


# --- the lists' filters -----------------------------------------------------------------------


def _notification(app, user, status="delivered", days_ago=0, title="Hello"):
    created = timezone.now() - dt.timedelta(days=days_ago)
    return Notification.objects.create(
        app=app, user_id=user.id, title=title, body="b", status=status, created_at=created
    )


def test_notifications_filter_by_id_email_status_and_dates(app, browser):
    ann, bo = make_user(email="ann@example.com"), make_user(email="bo@example.com")
    old = _notification(app, ann, days_ago=10, title="Old one")
    failed = _notification(app, bo, status="failed", title="Failed one")
    _notification(app, ann, title="Fresh one")
    tab = url(app, "notifications/")

    def titles(query):
        page = browser.get(tab + "?" + query).content.decode()
        return {t for t in ("Old one", "Failed one", "Fresh one") if t in page}

    assert titles("") == {"Old one", "Failed one", "Fresh one"}
    assert titles(f"notification_id={old.id}") == {"Old one"}
    assert titles("email=BO@") == {"Failed one"}
    assert titles("status=failed") == {"Failed one"}
    since = (timezone.now() - dt.timedelta(days=2)).date().isoformat()
    assert titles(f"since={since}") == {"Failed one", "Fresh one"}
    until = (timezone.now() - dt.timedelta(days=5)).date().isoformat()
    assert titles(f"until={until}") == {"Old one"}
    assert titles("status=bogus&since=yesterday") == {"Old one", "Failed one", "Fresh one"}
    assert url(app, f"notifications/{failed.id}/") in browser.get(tab).content.decode()


def _receipt(app, notification, status, attempts=1):
    delivery = Delivery.objects.create(
        notification=notification, app=app, device_ref=notification.id, platform="web"
    )
    receipt = Receipt.objects.create(
        app=app,
        delivery=delivery,
        webhook_id=f"msg_{delivery.id}",
        payload="{}",
        status=status,
        attempts=attempts,
    )
    ReceiptAttempt.objects.create(receipt=receipt, status_code=503 if attempts else 200)
    return receipt


def test_receipts_filter_by_status_notification_and_failing_now(app, browser):
    user = make_user()
    n1, n2 = _notification(app, user), _notification(app, user)
    ok = _receipt(app, n1, "delivered")
    retrying = _receipt(app, n2, "pending", attempts=2)
    gave_up = _receipt(app, n2, "failed", attempts=8)
    tab = url(app, "receipts/")

    def shown(query):
        page = browser.get(tab + "?" + query).content.decode()
        return {r.webhook_id for r in (ok, retrying, gave_up) if r.webhook_id in page}

    assert shown("") == {ok.webhook_id, retrying.webhook_id, gave_up.webhook_id}
    assert shown("status=failed") == {gave_up.webhook_id}
    assert shown(f"notification_id={n1.id}") == {ok.webhook_id}
    assert shown("failing=on") == {retrying.webhook_id}
    assert url(app, f"notifications/{n2.id}/") in browser.get(tab).content.decode()


def test_audit_filters_by_actor_and_action(app, browser, admin):
    other = make_admin(app)
    browser.post(url(app, "rename"), {"name": "One"})
    helper = Client()
    helper.force_login(other)
    helper.post(url(app, "rename"), {"name": "Two"})
    helper.post(url(app, "client-secret/rotate"))
    tab = url(app, "audit/")
    by_other = browser.get(tab + f"?actor={other.email}").content.decode()
    assert by_other.count("Renamed the app") == 1 and "Rotated the client secret" in by_other
    renames = browser.get(tab + "?action=app.rename").content.decode()
    assert renames.count("Renamed the app") == 2 and "Rotated the client secret" not in renames


# --- the notification's page --------------------------------------------------------------------


def test_the_notification_page_shows_content_outcomes_and_receipts(app, browser):
    enable_push(app)
    user = make_user(email="ann@example.com")
    enroll(app, user)
    register(user, app, platform="android")
    notification = Notification.objects.create(
        app=app, user_id=user.id, title="Shift", body="Starts soon", data={"route": "/rota"}
    )
    receipt = _receipt(app, notification, "pending", attempts=1)
    Delivery.objects.filter(pk=receipt.delivery_id).update(
        status="failed", attempts=3, error="UNAVAILABLE", error_detail="FCM is down"
    )
    page = browser.get(url(app, f"notifications/{notification.id}/")).content.decode()
    for text in (
        "Shift",
        "Starts soon",
        "/rota",
        "ann@example.com",
        "Your backend (an API client)",
    ):
        assert text in page
    assert "3 attempts" in page and "UNAVAILABLE" in page and "FCM is down" in page
    assert receipt.webhook_id in page and "HTTP 503" in page and "next retry" in page
    assert f"receipts/{receipt.id}/redeliver" in page


# --- the API's reads of the webhook secret are audited -----------------------------------------


def test_reading_the_config_through_the_api_is_audited(app, admin):
    enable_push(app)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {user_access_token_issue(admin)}")
    assert api.get(f"/push/config/{app.app_id}").status_code == 200
    event = last_event(app)
    assert (event.action, event.actor, event.detail) == (
        "webhook_secret.read",
        admin,
        {"via": "api"},
    )


# --- the account's password ----------------------------------------------------------------------


def test_password_change_needs_the_old_one_and_signs_other_sessions_out():
    from tests.factories import PASSWORD

    user = make_user(email="ann@example.com")
    here, elsewhere = Client(), Client()
    here.login(username=user.email, password=PASSWORD)
    elsewhere.login(username=user.email, password=PASSWORD)
    wrong = {"old_password": "nope", "new_password1": "N3w-pass-phrase", "new_password2": "x"}
    page = page_after(here, here.post("/account/password", wrong))
    assert "data-form-error" in page and "old password was entered incorrectly" in page
    assert "nope" not in page  # passwords never come back in the page
    user.refresh_from_db()
    assert user.check_password(PASSWORD)  # refused: the password is unchanged
    assert elsewhere.get("/account").status_code == 200  # and no session was signed out
    good = {
        "old_password": PASSWORD,
        "new_password1": "N3w-pass-phrase",
        "new_password2": "N3w-pass-phrase",
    }
    here.post("/account/password", good)
    user.refresh_from_db()
    assert user.check_password("N3w-pass-phrase")
    assert here.get("/account").status_code == 200
    assert elsewhere.get("/account").status_code == 302


# --- a test send to one device ------------------------------------------------------------------


def test_a_test_send_can_target_one_device_of_the_user(app, browser):
    enable_push(app)
    user = make_user(email="ann@example.com")
    enroll(app, user)
    phone, tablet = register(user, app), register(user, app, platform="ios")
    devices_tab = browser.get(url(app, "devices/")).content.decode()
    link = url(app, f"notifications/?test_device={phone.id}")
    assert link in devices_tab
    form = browser.get(link).content.decode()
    assert 'value="ann@example.com"' in form and f'value="{phone.id}"' in form
    assert "Only to <strong>" in form
    response = browser.post(
        url(app, "notifications/test"),
        {"email": user.email, "title": "Hi", "body": "One", "device": str(phone.id)},
    )
    notification = Notification.objects.get(app=app)
    assert response.url == url(app, f"notifications/{notification.id}/")
    assert list(
        Delivery.objects.filter(notification=notification).values_list("device_id", flat=True)
    ) == [phone.id]
    assert last_event(app).detail["device_id"] == str(phone.id)
    # Without a device, every device of the user; a device of someone else is refused.
    browser.post(
        url(app, "notifications/test"), {"email": user.email, "title": "Hi", "body": "All"}
    )
    assert Delivery.objects.filter(notification__body="All").count() == 2
    stranger = make_user()
    enroll(app, stranger)
    theirs = register(stranger, app)
    page = page_after(
        browser,
        browser.post(
            url(app, "notifications/test"),
            {"email": user.email, "title": "Hi", "body": "x", "device": str(theirs.id)},
        ),
    )
    assert "That device is not one of ann@example.com&#x27;s in GymOps." in page
    assert not Notification.objects.filter(body="x").exists()
    assert tablet.id  # registered, and left out of the one-device send above
