"""In a real browser: an admin schedules a test send, finds it listed and cancels it; an admin
invites a person, who accepts on their Account page and is enrolled."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Enrollment, Invitation
from push.models import Notification
from tests.e2e.browser import expect, screenshots, sign_in
from tests.factories import (
    PASSWORD,
    enable_push,
    enroll,
    make_admin,
    make_app,
    make_user,
    register,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _open_tab(page, name):
    page.get_by_role("navigation", name="App sections").get_by_role("link", name=name).click()


def test_schedule_a_test_send_find_it_listed_and_cancel_it(page, live_server, providers):
    app = make_app(name="GymOps")[0]
    enable_push(app)
    member = make_user(email="member@example.com")
    enroll(app, member)
    register(member, app)
    admin = make_admin(app)
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server.url}/console/apps/{app.app_id}/notifications/")

    when = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
    page.get_by_label("Send to (email of an enrolled user)").fill(member.email)
    page.get_by_label("Title").fill("Tomorrow's rota")
    page.get_by_label("Send at (UTC, optional)").fill(when.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Send test notification").click()
    said = f"Test notification scheduled for {when:%Y-%m-%d %H:%M} UTC."
    expect(page.get_by_role("status").filter(has_text=said)).to_be_visible()
    notification = Notification.objects.get(app=app)
    assert notification.send_at == when

    # Listed on the Scheduled tab, due at that time; cancel it there.
    _open_tab(page, "Scheduled")
    row = page.locator("#scheduled tbody tr").filter(has_text="Tomorrow's rota")
    expect(row).to_have_count(1)
    screenshots(page, "console-scheduled")
    row.get_by_text("Cancel…").click()
    row.get_by_role("button", name="Yes, cancel this notification").click()
    expect(page).to_have_url(re.compile(r"/scheduled/$"))
    expect(page.get_by_role("status").filter(has_text="Notification canceled")).to_be_visible()
    expect(page.get_by_text("Nothing is scheduled.")).to_be_visible()

    # The Notifications tab shows it canceled, and the status filter finds it.
    _open_tab(page, "Notifications")
    page.get_by_label("Status").select_option("canceled")
    page.get_by_role("button", name="Filter").click()
    listed = page.locator("#notifications tbody tr").filter(has_text="Tomorrow's rota")
    expect(listed.locator(".badge")).to_have_text("Canceled")
    notification.refresh_from_db()
    assert notification.status == "canceled"


def test_invite_a_person_who_accepts_on_the_account_page(page, live_server, chromium):
    app = make_app(name="GymOps")[0]
    admin = make_admin(app)
    person = make_user(email="newcomer@example.com")
    sign_in(page, live_server, admin.email, PASSWORD)
    page.goto(f"{live_server.url}/console/apps/{app.app_id}/users/")
    page.get_by_label("Email addresses").fill(person.email)
    page.get_by_role("button", name="Invite", exact=True).click()
    said = f"Invitation sent to {person.email}."
    expect(page.get_by_role("status").filter(has_text=said)).to_be_visible()
    expect(page.locator("#invitations").get_by_role("cell", name=person.email)).to_be_visible()
    assert not Enrollment.objects.filter(app=app).exists()

    # The person, in their own browser, accepts on the Account page.
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    theirs = context.new_page()
    sign_in(theirs, live_server, person.email, PASSWORD)
    theirs.goto(f"{live_server.url}/account")
    invitations = theirs.locator("#invitations")
    expect(invitations).to_contain_text("Join GymOps")
    invitations.get_by_role("button", name="Accept the invitation to GymOps").click()
    expect(
        theirs.get_by_role("status").filter(has_text="You are now enrolled in GymOps.")
    ).to_be_visible()
    expect(theirs.locator("#invitations")).to_have_count(0)
    context.close()
    assert Enrollment.objects.filter(app=app, user=person).exists()
    assert not Invitation.objects.exists()

    # The admin's Users tab lists them enrolled, and no invitation waits.
    page.reload()
    expect(page.locator("#enrolled").get_by_role("cell", name=person.email)).to_be_visible()
    expect(page.get_by_text("No invitation is waiting.")).to_be_visible()
