"""Fixtures shared by the push tests: an app with push enabled, and users enrolled in it.

A test module that needs another app (a quota, a name the Console shows) overrides `app`
with a fixture of its own; the provider fakes are the suite's (tests/conftest.py).
"""

from __future__ import annotations

import pytest

from tests.factories import enroll, make_push_app, make_user


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
