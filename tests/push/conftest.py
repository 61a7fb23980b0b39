"""Fixtures shared by the push tests: an app with push enabled, and users enrolled in it.

A test module that needs another app (a quota, a name the Console shows) overrides `app`
with a fixture of its own; `admin` and `browser` then follow that module's app. The provider
fakes are the suite's (tests/conftest.py).
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import enroll, make_admin, make_push_app, make_user


@pytest.fixture
def app():
    """An app with push enabled and the defaults of the guide."""
    return make_push_app()


@pytest.fixture
def users(app):
    """Three users enrolled in `app`."""
    users = [make_user() for _ in range(3)]
    enroll(app, *users)
    return users


@pytest.fixture
def admin(app):
    """An admin of `app`."""
    return make_admin(app)


@pytest.fixture
def browser(admin):
    """A Console session signed in as `admin`."""
    client = Client()
    client.force_login(admin)
    return client
