"""An app admin learns nothing about people outside their app (#22, item 4).

Enrolling or adding an admin by email or user_id is an invitation: the answer is the same 202
whether the person exists, is a user of another app, is already in this one, or does not exist;
nobody joins an app or becomes its admin until they accept.
"""

from __future__ import annotations

import uuid

import pytest

from accounts.models import AppAdmin, Enrollment, Invitation
from tests.factories import (
    enable_push,
    enroll,
    fcm_token,
    make_admin,
    make_app,
    make_user,
    user_client,
)

pytestmark = pytest.mark.django_db


def _answer(client, path: str, body: dict) -> tuple[int, dict, set[str]]:
    response = client.post(path, body, format="json")
    # Everything but the fields the caller sent and the app's own id.
    return response.status_code, response.json(), set(response.headers) - {"Content-Length"}


@pytest.mark.parametrize("endpoint", ["enrollments", "admins"])
def test_the_answer_is_the_same_whether_or_not_the_email_has_an_account(endpoint):
    app, _ = make_app()
    other, _ = make_app()
    admin = user_client(make_admin(app))
    someone_elses = make_user(email="victim@example.com")
    enroll(other, someone_elses)
    path = f"/api/apps/{app.client_id}/{endpoint}"

    known = _answer(admin, path, {"email": "victim@example.com"})
    unknown = _answer(admin, path, {"email": "nobody-here@example.com"})
    assert known[0] == unknown[0] == 202
    assert {k: v for k, v in known[1].items() if k != "email"} == {
        k: v for k, v in unknown[1].items() if k != "email"
    }
    assert known[2] == unknown[2]
    assert "user_id" not in known[1]

    by_id = _answer(admin, path, {"user_id": str(someone_elses.id)})
    by_unknown_id = _answer(admin, path, {"user_id": str(uuid.uuid4())})
    assert by_id[0] == by_unknown_id[0] == 202
    assert set(by_id[1]) == set(by_unknown_id[1]) == {"app_id", "user_id", "status"}
    assert "email" not in by_id[1]


def test_a_user_of_another_app_is_not_made_admin_or_enrolled_without_accepting():
    app, _ = make_app()
    other, _ = make_app()
    victim = make_user()
    enroll(other, victim)
    admin = user_client(make_admin(app))
    admin.post(f"/api/apps/{app.client_id}/admins", {"email": victim.email}, format="json")
    admin.post(f"/api/apps/{app.client_id}/enrollments", {"email": victim.email}, format="json")
    assert not AppAdmin.objects.filter(app=app, user=victim).exists()
    assert not Enrollment.objects.filter(app=app, user=victim).exists()
    # The victim sees the invitations and may decline them.
    victim_client = user_client(victim)
    assert len(victim_client.get("/api/invitations").json()["invitations"]) == 2
    assert victim_client.delete(f"/api/invitations/{app.client_id}").status_code == 204
    assert victim_client.post(f"/api/invitations/{app.client_id}/accept").status_code == 404
    assert not Invitation.objects.exists()


def test_an_invitation_to_an_unknown_email_waits_for_its_person():
    app, _ = make_app()
    admin = user_client(make_admin(app))
    admin.post(
        f"/api/apps/{app.client_id}/enrollments", {"email": "Later@Example.com"}, format="json"
    )
    newcomer = make_user(email="later@example.com")
    assert user_client(newcomer).post(f"/api/invitations/{app.client_id}/accept").json() == {
        "app_id": app.client_id,
        "roles": ["user"],
    }
    assert Enrollment.objects.filter(app=app, user=newcomer).exists()


def test_registering_a_device_accepts_an_invitation_as_a_user_only():
    app, _ = make_app()
    enable_push(app)
    admin = user_client(make_admin(app))
    person = make_user()
    body = {"app_id": app.client_id, "platform": "android", "push_token": fcm_token(1)}
    assert (
        user_client(person).post("/push/devices/register", body, format="json").status_code == 403
    )
    admin.post(f"/api/apps/{app.client_id}/admins", {"email": person.email}, format="json")
    # An admin invitation is not accepted by registering: still not enrolled.
    assert (
        user_client(person).post("/push/devices/register", body, format="json").status_code == 403
    )
    admin.post(f"/api/apps/{app.client_id}/enrollments", {"email": person.email}, format="json")
    assert (
        user_client(person).post("/push/devices/register", body, format="json").status_code == 201
    )
    assert Enrollment.objects.filter(app=app, user=person).exists()
    assert not AppAdmin.objects.filter(app=app, user=person).exists()


def test_nobody_accepts_someone_elses_invitation():
    app, _ = make_app()
    admin = user_client(make_admin(app))
    admin.post(f"/api/apps/{app.client_id}/admins", {"email": "owner@example.com"}, format="json")
    intruder = user_client(make_user())
    assert intruder.post(f"/api/invitations/{app.client_id}/accept").status_code == 404
    assert intruder.get("/api/invitations").json()["invitations"] == []
