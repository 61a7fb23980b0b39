"""The admin API: apps, secrets, enrollments and admins, by staff and by app admins."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from accounts.models import App, Enrollment
from push.models import AuditEvent
from tests.factories import (
    app_client,
    enable_push,
    make_admin,
    make_app,
    make_user,
    user_client,
)

pytestmark = pytest.mark.django_db


def _token_status(app_id: str, secret: str) -> int:
    basic = base64.b64encode(f"{app_id}:{secret}".encode()).decode()
    return (
        APIClient()
        .post(
            "/oauth/token",
            "grant_type=client_credentials",
            content_type="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION=f"Basic {basic}",
        )
        .status_code
    )


def test_staff_creates_an_app_and_sees_the_secret_once():
    staff = make_user(staff=True)
    client = user_client(staff)
    response = client.post("/api/apps", {"name": "GymOps"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["client_id"] == body["app_id"]
    assert body["client_secret"].startswith("kms_")
    app = App.objects.get(app_id=body["app_id"])
    assert body["client_secret"] not in app.client_secret_hash
    assert "client_secret" not in client.get(f"/api/apps/{body['app_id']}").json()
    assert _token_status(body["app_id"], body["client_secret"]) == 200


def test_non_staff_cannot_create_apps():
    response = user_client(make_user()).post("/api/apps", {"name": "X"}, format="json")
    assert response.status_code == 403


def test_app_admin_lists_only_their_apps():
    app, _ = make_app()
    make_app()
    admin = make_admin(app)
    apps = user_client(admin).get("/api/apps").json()["apps"]
    assert [a["app_id"] for a in apps] == [app.client_id]


def test_staff_lists_every_app():
    make_app()
    make_app()
    assert len(user_client(make_user(staff=True)).get("/api/apps").json()["apps"]) == 2


def test_rotation_shows_a_new_secret_and_the_old_one_stops_working():
    app, old = make_app()
    admin = make_admin(app)
    response = user_client(admin).post(f"/api/apps/{app.client_id}/rotate-secret")
    assert response.status_code == 200
    new = response.json()["client_secret"]
    assert new != old
    assert _token_status(app.client_id, old) == 401
    assert _token_status(app.client_id, new) == 200


def test_admin_of_another_app_gets_404_everywhere():
    app, _ = make_app()
    other, _ = make_app()
    outsider = user_client(make_admin(other))
    assert outsider.get(f"/api/apps/{app.client_id}").status_code == 404
    assert outsider.post(f"/api/apps/{app.client_id}/rotate-secret").status_code == 404
    assert (
        outsider.post(
            f"/api/apps/{app.client_id}/enrollments", {"email": "a@b.c"}, format="json"
        ).status_code
        == 404
    )


def test_enroll_by_email_is_an_invitation_the_person_accepts():
    app, _ = make_app()
    client = user_client(make_admin(app))
    user = make_user()
    response = client.post(
        f"/api/apps/{app.client_id}/enrollments", {"email": user.email}, format="json"
    )
    assert response.status_code == 202
    assert response.json() == {"app_id": app.client_id, "email": user.email, "status": "invited"}
    assert not Enrollment.objects.filter(app=app, user=user).exists()
    accepted = user_client(user).post(f"/api/invitations/{app.client_id}/accept")
    assert accepted.status_code == 200
    assert accepted.json()["roles"] == ["user"]
    assert Enrollment.objects.filter(app=app, user=user).exists()
    assert client.delete(f"/api/apps/{app.client_id}/enrollments/{user.id}").status_code == 204
    assert not Enrollment.objects.filter(app=app, user=user).exists()
    assert client.delete(f"/api/apps/{app.client_id}/enrollments/{user.id}").status_code == 404


def test_add_an_app_admin_by_invitation():
    app, _ = make_app()
    newcomer = make_user()
    response = user_client(make_admin(app)).post(
        f"/api/apps/{app.client_id}/admins", {"email": newcomer.email}, format="json"
    )
    assert response.status_code == 202
    assert user_client(newcomer).get(f"/api/apps/{app.client_id}").status_code == 404
    pending = user_client(newcomer).get("/api/invitations").json()["invitations"]
    assert [(i["app_id"], i["role"]) for i in pending] == [(app.client_id, "admin")]
    assert user_client(newcomer).post(f"/api/invitations/{app.client_id}/accept").status_code == 200
    assert user_client(newcomer).get(f"/api/apps/{app.client_id}").status_code == 200


def test_plain_user_sees_no_apps_and_no_app():
    app, _ = make_app()
    client = user_client(make_user())
    assert client.get("/api/apps").json()["apps"] == []
    assert client.get(f"/api/apps/{app.client_id}").status_code == 404


def test_client_token_cannot_use_the_admin_api():
    app, _ = make_app()
    assert app_client(app).get(f"/api/apps/{app.client_id}").status_code == 401


def test_unknown_api_path_is_json_404():
    response = APIClient().get("/api/apps/not-a-uuid")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_rotation_revokes_client_tokens_issued_before_it():
    from datetime import timedelta

    from django.utils import timezone

    app, _ = make_app()
    old_client = app_client(app)
    assert (
        old_client.get("/push/notifications/00000000-0000-0000-0000-000000000000").status_code
        == 404
    )
    # Rotated a second later (iat has whole seconds): the token from before no longer works.
    App.objects.filter(pk=app.pk).update(secret_rotated_at=timezone.now() + timedelta(seconds=1))
    response = old_client.get("/push/notifications/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 401
    assert "rotated" in response.json()["error"]["message"]


# --- every app action through the API leaves an audit event, as the Console's do ---------------


def _events(app: App) -> list[tuple[str, object, dict]]:
    return [
        (e.action, e.actor, e.detail)
        for e in AuditEvent.objects.filter(app=app).order_by("at", "id")
    ]


def test_creating_an_app_through_the_api_is_audited():
    staff = make_user(staff=True)
    first_admin = make_user(email="ops@example.com")
    body = (
        user_client(staff)
        .post("/api/apps", {"name": "GymOps", "admin_email": first_admin.email}, format="json")
        .json()
    )
    app = App.objects.get(app_id=body["app_id"])
    assert _events(app) == [("app.create", staff, {"name": "GymOps", "admin": "ops@example.com"})]
    assert body["client_secret"] not in str(_events(app))


def test_rotating_the_client_secret_through_the_api_is_audited():
    app, _ = make_app()
    admin = make_admin(app)
    secret = user_client(admin).post(f"/api/apps/{app.app_id}/rotate-secret").json()
    assert _events(app) == [("client_secret.rotate", admin, {})]
    assert secret["client_secret"] not in str(_events(app))


def test_invitations_through_the_api_are_audited_as_asked_and_their_acceptance_too():
    app, _ = make_app()
    admin = make_admin(app)
    person = make_user(email="ann@example.com")
    client = user_client(admin)
    client.post(f"/api/apps/{app.app_id}/enrollments", {"email": "Ann@Example.com"}, format="json")
    client.post(f"/api/apps/{app.app_id}/admins", {"user_id": str(person.id)}, format="json")
    client.post(
        f"/api/apps/{app.app_id}/enrollments", {"email": "nobody@example.com"}, format="json"
    )
    accepted = user_client(person).post(f"/api/invitations/{app.app_id}/accept")
    assert accepted.status_code == 200
    assert _events(app) == [
        ("enrollment.invite", admin, {"email": "ann@example.com"}),
        ("admin.invite", admin, {"user_id": str(person.id)}),
        ("enrollment.invite", admin, {"email": "nobody@example.com"}),
        ("invitation.accept", person, {"roles": ["admin", "user"]}),
    ]


def test_removing_an_enrollment_through_the_api_is_audited():
    app, _ = make_app()
    admin = make_admin(app)
    user = make_user(email="bob@example.com")
    Enrollment.objects.create(app=app, user=user)
    client = user_client(admin)
    assert client.delete(f"/api/apps/{app.app_id}/enrollments/{user.id}").status_code == 204
    assert client.delete(f"/api/apps/{app.app_id}/enrollments/{user.id}").status_code == 404
    assert _events(app) == [("enrollment.remove", admin, {"email": "bob@example.com"})]


def test_webhook_secret_reads_and_rotation_through_the_api_are_audited():
    app, _ = make_app()
    enable_push(app)
    admin = make_admin(app)
    client = user_client(admin)
    client.get(f"/push/config/{app.app_id}")
    client.patch(f"/push/config/{app.app_id}", {"daily_quota": 50}, format="json")
    client.post(f"/push/config/{app.app_id}/rotate-webhook-secret")
    actions = [action for action, actor, _ in _events(app) if actor == admin]
    assert actions == [
        "webhook_secret.read",
        "config.update",
        "webhook_secret.read",
        "webhook_secret.rotate",
    ]
