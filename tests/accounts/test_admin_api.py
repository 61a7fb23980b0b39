"""The admin API: apps, secrets, enrollments and admins, by staff and by app admins."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from accounts.models import App, Enrollment
from tests.factories import app_client, make_admin, make_app, make_user, user_client

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


def test_enroll_and_unenroll_by_email():
    app, _ = make_app()
    client = user_client(make_admin(app))
    user = make_user()
    response = client.post(
        f"/api/apps/{app.client_id}/enrollments", {"email": user.email}, format="json"
    )
    assert response.status_code == 201
    assert Enrollment.objects.filter(app=app, user=user).exists()
    again = client.post(
        f"/api/apps/{app.client_id}/enrollments", {"user_id": str(user.id)}, format="json"
    )
    assert again.status_code == 200
    assert client.delete(f"/api/apps/{app.client_id}/enrollments/{user.id}").status_code == 204
    assert not Enrollment.objects.filter(app=app, user=user).exists()
    assert client.delete(f"/api/apps/{app.client_id}/enrollments/{user.id}").status_code == 404


def test_enrolling_an_unknown_email_names_the_field():
    app, _ = make_app()
    response = user_client(make_admin(app)).post(
        f"/api/apps/{app.client_id}/enrollments", {"email": "ghost@example.com"}, format="json"
    )
    # 404, not 400: the email is well formed (as the schema promises); no user has it.
    assert response.status_code == 404
    assert "email" in response.json()["error"]["fields"]


def test_add_an_app_admin():
    app, _ = make_app()
    newcomer = make_user()
    response = user_client(make_admin(app)).post(
        f"/api/apps/{app.client_id}/admins", {"email": newcomer.email}, format="json"
    )
    assert response.status_code == 201
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
