"""The served OpenAPI schema states the validation rules the fuzz test once found missing.

tests/security/test_fuzz.py holds the whole schema to the server (schemathesis' positive and
negative data checks); these pin the rules it found unstated, with a request each.
"""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from tests.factories import app_client, make_admin, make_app, make_user, user_client

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        return APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()


def _component(schema: dict, name: str) -> dict:
    return schema["components"]["schemas"][name]


def _operation(schema: dict, path: str, method: str = "post") -> dict:
    return schema["paths"][path][method]


def test_idempotency_key_has_its_length_and_characters(schema):
    [header] = [
        p for p in _operation(schema, "/push/send")["parameters"] if p["name"] == "Idempotency-Key"
    ]
    assert header["schema"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[ -~]+$",
    }
    refused = app_client(make_app()[0]).post(
        "/push/send", {}, format="json", HTTP_IDEMPOTENCY_KEY="é"
    )
    assert refused.status_code == 400 and not re.match(header["schema"]["pattern"], "é")


def test_urls_must_be_https_to_a_host_name(schema):
    webhook_url = _component(schema, "PatchedConfigInRequest")["properties"]["webhook_url"]
    webhook, blank = webhook_url["oneOf"]  # a URL, or "" to stop receipts
    endpoint = _component(schema, "SubscribeInRequest")["properties"]["endpoint"]
    for url_schema in (webhook, endpoint):
        pattern = re.compile(url_schema["pattern"])
        assert pattern.search("https://push.example.com/send/abc")
        for refused in ("http://push.example.com/", "https://127.0.0.1/", "https://localhost/"):
            assert not pattern.search(refused)
    assert blank["maxLength"] == 0 and webhook_url["nullable"] is True


def test_push_token_is_a_token_string_or_a_subscription_object_for_web(schema):
    register = _component(schema, "RegisterInRequest")
    token, subscription = register["properties"]["push_token"]["oneOf"]
    assert token["type"] == "string" and not re.search(token["pattern"], "{json")
    assert subscription["required"] == ["endpoint", "keys"]
    assert register["oneOf"][1]["properties"]["platform"] == {"type": "string", "pattern": "^web$"}


def test_enrollments_need_exactly_one_of_email_or_user_id(schema):
    operation = _operation(schema, "/api/apps/{app_id}/enrollments")
    assert operation["requestBody"]["required"] is True
    assert _component(schema, "UserRefInRequest")["oneOf"] == [
        {"required": ["email"]},
        {"required": ["user_id"]},
    ]


def test_an_unknown_but_well_formed_email_is_an_invitation_and_a_404_only_for_staff(schema):
    app = make_app()[0]
    answer = user_client(make_admin(app)).post(
        f"/api/apps/{app.app_id}/enrollments", {"email": "nobody@example.com"}, format="json"
    )
    assert answer.status_code == 202  # the same as for an address with an account
    assert "202" in _operation(schema, "/api/apps/{app_id}/enrollments")["responses"]
    staff = user_client(make_user(staff=True))
    created = staff.post("/api/apps", {"name": "X", "admin_email": "nobody@example.com"})
    assert created.status_code == 404
    assert "404" in _operation(schema, "/api/apps")["responses"]


def test_subscribe_requires_app_id_without_a_default_app(schema):
    assert "app_id" in _component(schema, "SubscribeInRequest")["required"]


def test_lists_of_recipients_are_non_empty_and_unique(schema):
    user_ids = _component(schema, "BulkInRequest")["properties"]["user_ids"]
    assert user_ids["minItems"] == 1 and user_ids["uniqueItems"] is True
    assert _component(schema, "BatchInRequest")["properties"]["notifications"]["minItems"] == 1


def test_links_lead_sends_to_real_users(schema):
    listed = _operation(schema, "/push/devices/{id}", "get")["responses"]["200"]
    link = listed["links"]["SendToFirstDevicesUser"]
    assert link["operationId"] == "push_send_create"
    assert link["requestBody"] == {"user_id": "$response.body#/devices/0/user_id"}
    invited = _operation(schema, "/api/apps/{app_id}/enrollments")["responses"]["202"]
    assert "links" not in invited  # an invitation enrolls nobody yet


def test_muting_an_app_needs_muted_though_it_is_a_patch(schema):
    operation = _operation(schema, "/account/apps/{app_id}", "patch")
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/AppMuteInRequest") and operation["requestBody"]["required"] is True
    assert _component(schema, "AppMuteInRequest")["required"] == ["muted"]
    app = make_app()[0]
    user = make_user()
    refused = user_client(user).patch(f"/account/apps/{app.app_id}", {}, format="json")
    assert refused.status_code == 400 and "muted" in refused.json()["error"]["fields"]


def test_an_open_is_reported_by_exactly_one_of_token_or_notification_id(schema):
    assert _component(schema, "OpenedInRequest")["oneOf"] == [
        {"required": ["token"]},
        {"required": ["notification_id"]},
    ]
    assert APIClient().post("/push/opened", {}, format="json").status_code == 400


def test_broadcast_platforms_topics_origins_and_data_values_say_their_rules(schema):
    broadcast = _component(schema, "BroadcastInRequest")["properties"]
    assert broadcast["platforms"]["minItems"] == 1
    topic = re.compile(broadcast["topic"]["pattern"])
    assert topic.search("news.eu-1") and not topic.search("") and not topic.search("a b")
    origin = re.compile(
        _component(schema, "PatchedConfigInRequest")["properties"]["allowed_origins"]["items"][
            "pattern"
        ]
    )
    for accepted in (
        "https://app.example.com",
        "https://app.example.com:8443",
        "http://localhost:3000",
    ):
        assert origin.search(accepted)
    for refused in ("", "http://app.example.com", "https://app.example.com/path", "https://"):
        assert not origin.search(refused)
    data_value = _component(schema, "SendInRequest")["properties"]["data"]["additionalProperties"]
    assert {alternative["type"] for alternative in data_value["anyOf"]} == {
        "string",
        "number",
        "boolean",
        "object",
        "array",
    }  # null is refused


def test_links_reach_sends_cancels_broadcasts_and_topics(schema):
    devices = _operation(schema, "/account/devices", "get")["responses"]["200"]["links"]
    assert devices["SendToUser"]["requestBody"] == {"user_id": "$response.body#/user_id"}
    sent = _operation(schema, "/push/send")["responses"]["202"]["links"]
    assert sent["CancelNotification"]["operationId"] == "push_notifications_cancel_create"
    broadcast = _operation(schema, "/push/send/broadcast")["responses"]["202"]["links"]
    assert {link["operationId"] for link in broadcast.values()} == {
        "push_broadcasts_retrieve",
        "push_broadcasts_cancel_create",
    }
    topics = _operation(schema, "/push/topics", "get")["responses"]["200"]["links"]
    assert topics["ListFirstTopicsMembers"]["parameters"] == {
        "topic": "$response.body#/topics/0/topic"
    }
    user = make_user()
    assert user_client(user).get("/account/devices").json()["user_id"] == str(user.id)
