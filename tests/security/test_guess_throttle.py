"""The guess throttle slows guessing without letting a stranger lock anyone out (#22, item 2).

Every request here carries its own REMOTE_ADDR, so "the attacker" and "the owner" are two
addresses on the internet. N = AUTH_THROTTLE_ATTEMPTS (3 here).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts import throttles
from tests.factories import PASSWORD, make_app, make_user
from tests.figures import figures_record

pytestmark = pytest.mark.django_db

N = 3
ATTACKER, OWNER = "203.0.113.66", "198.51.100.7"


@pytest.fixture(autouse=True)
def _small_limit(settings):
    settings.AUTH_THROTTLE_ATTEMPTS = N
    settings.TRUSTED_PROXIES = []


def _token(client_id: str, secret: str, address: str, **headers) -> int:
    body = urlencode({"grant_type": "client_credentials"})
    body += "&" + urlencode({"client_id": client_id, "client_secret": secret})
    response = APIClient().post(
        "/oauth/token",
        body,
        content_type="application/x-www-form-urlencoded",
        REMOTE_ADDR=address,
        **headers,
    )
    return response.status_code


def _login(email: str, password: str, address: str) -> int:
    body = {"email": email, "password": password}
    return APIClient().post("/auth/token", body, format="json", REMOTE_ADDR=address).status_code


def _admin_login(email: str, password: str, address: str) -> tuple[int, str]:
    response = Client(REMOTE_ADDR=address).post(
        "/admin/login/?next=/admin/", {"username": email, "password": password}
    )
    return response.status_code, response.content.decode()


def test_a_strangers_guesses_never_lock_out_the_owner_at_another_address():
    app, secret = make_app()
    attacker = [_token(app.client_id, f"kms_guess{i}", ATTACKER) for i in range(N + 2)]
    assert attacker == [401] * N + [429, 429]
    # The attacker's own address is held even with the right secret: guessing stays slow...
    assert _token(app.client_id, secret, ATTACKER) == 429
    # ...and the app's backend, elsewhere, is not touched by it.
    assert _token(app.client_id, secret, OWNER) == 200

    user = make_user()
    people = [_login(user.email, f"wrong-{i}", ATTACKER) for i in range(N + 1)]
    assert people == [401] * N + [429]
    assert _login(user.email, PASSWORD, OWNER) == 200
    figures_record(
        "throttle",
        "stranger_vs_owner",
        {
            "limit_per_subject_and_address": N,
            "attacker_answers": attacker,
            "attacker_with_right_secret": 429,
            "owner_from_another_address": 200,
        },
    )


def test_address_hopping_is_held_to_ten_times_n_and_known_addresses_still_get_in():
    app, secret = make_app()
    assert _token(app.client_id, secret, OWNER) == 200  # the backend's usual address
    # 10 × N failures from ever new addresses (N each), e.g. an IPv6 guesser or a botnet.
    answers = [
        _token(app.client_id, "kms_guess", f"192.0.2.{n}") for n in range(1, 11) for _ in range(N)
    ]
    assert answers == [401] * (10 * N)
    assert _token(app.client_id, "kms_guess", "192.0.2.200") == 429  # a new address: held
    assert _token(app.client_id, secret, "192.0.2.201") == 429  # even with the secret
    assert _token(app.client_id, secret, OWNER) == 200  # the known address: never held
    figures_record(
        "throttle",
        "address_hopping",
        {"failures_before_new_addresses_are_held": 10 * N, "known_address_answer": 200},
    )


def test_a_busy_nat_does_not_lock_out_people_who_signed_in_from_it():
    regular = make_user()
    assert _login(regular.email, PASSWORD, ATTACKER) == 200  # a colleague behind the same NAT
    # 5 × N failures from that address, over many accounts.
    for n in range(5 * N):
        assert _login(f"nobody{n}@example.com", "wrong", ATTACKER) == 401
    assert _login("someone-new@example.com", "wrong", ATTACKER) == 429
    assert _login(regular.email, PASSWORD, ATTACKER) == 200


@pytest.mark.parametrize(
    "spell",
    [str.upper, lambda s: s.replace("-", ""), lambda s: "{" + s + "}", lambda s: f"urn:uuid:{s}"],
)
def test_client_id_spellings_count_as_one(spell):
    app, secret = make_app()
    for _ in range(N):
        assert _token(spell(app.client_id), "kms_guess", ATTACKER) == 401
    assert _token(app.client_id, secret, ATTACKER) == 429
    assert throttles.client_subject(spell(app.client_id)) == throttles.client_subject(app.client_id)


def test_admin_login_is_under_the_same_throttle():
    staff = make_user(staff=True)
    for _ in range(N):
        status, body = _admin_login(staff.email, "wrong-password", ATTACKER)
        assert status == 200 and "Too many failed" not in body
    status, body = _admin_login(staff.email, PASSWORD, ATTACKER)
    assert status == 200 and "Too many failed sign-in attempts" in body
    # The staff member at their own address signs in.
    status, _ = _admin_login(staff.email, PASSWORD, OWNER)
    assert status == 302


def test_forwarded_for_is_read_only_from_trusted_proxies(settings, rf):
    spoofed = rf.get("/", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="10.9.8.7")
    assert throttles.client_address(spoofed) == ATTACKER
    settings.TRUSTED_PROXIES = [__import__("ipaddress").ip_network("10.0.0.0/8")]
    # Through the proxy: the rightmost address the proxy did not add itself is the client's.
    proxied = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"1.2.3.4, {OWNER}")
    assert throttles.client_address(proxied) == OWNER
    chained = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"{OWNER}, 10.0.0.5")
    assert throttles.client_address(chained) == OWNER
    assert throttles.client_address(rf.get("/", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"


def test_spoofed_forwarded_for_does_not_reset_the_count():
    app, _ = make_app()
    answers = [
        _token(app.client_id, "kms_guess", ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        for n in range(N + 1)
    ]
    assert answers == [401] * N + [429]


def test_ipv6_addresses_count_by_their_slash_64(rf):
    one = rf.get("/", REMOTE_ADDR="2001:db8:1:2::1")
    other = rf.get("/", REMOTE_ADDR="2001:db8:1:2:ffff::9")
    assert throttles.client_address(one) == throttles.client_address(other) == "2001:db8:1:2::/64"
    assert throttles.client_address(rf.get("/", REMOTE_ADDR="::ffff:192.0.2.1")) == "192.0.2.1"


def test_unknown_client_ids_are_throttled_too():
    missing = str(uuid.uuid4())
    answers = [_token(missing, "kms_guess", ATTACKER) for _ in range(N + 1)]
    assert answers == [401] * N + [429]


def test_the_hourly_prune_keeps_known_addresses_for_their_window():
    import time

    from keymaster.ratelimit import counters_prune

    app, secret = make_app()
    assert _token(app.client_id, secret, OWNER) == 200
    # Four days on (past the prune's 3-day horizon for short windows), the success is kept...
    counters_prune(older_than=3 * 86400, now=time.time() + 4 * 86400)
    for n in range(1, 11):
        for _ in range(N):
            _token(app.client_id, "kms_guess", f"192.0.2.{n}")
    assert _token(app.client_id, secret, OWNER) == 200
