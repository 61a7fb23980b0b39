"""Django settings of the peer: a minimal project sending with django-push-notifications.

This is the project a team would write without Keymaster: the library's device models, its
documented settings, and a django-q2 task per send. Only the addresses differ from production:
everything points at the local fakes. `bench.peer.driver` fills the environment; a `qcluster`
started with the same environment shares this configuration.
"""

from __future__ import annotations

import os

import environ
import firebase_admin
from firebase_admin import credentials, messaging

SECRET_KEY = "bench-peer-not-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS: list[str] = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "push_notifications",
    "django_q",
]

DATABASES = {"default": environ.Env.db_url_config(os.environ["BENCH_PEER_DATABASE_URL"])}
# Persistent connections, as Keymaster runs them: a new connection per task would cost more
# than the send itself and would not be how anyone tuned a queue worker.
DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# The same tuned ORM broker settings as Keymaster's Q_CLUSTER (keymaster/settings.py): without
# save_limit=-1 and bulk=10 django-q2 drains about a tenth as many tasks per second.
Q_CLUSTER = {
    "name": "peer",
    "orm": "default",
    "workers": int(os.environ.get("BENCH_PEER_WORKERS", "2")),
    "timeout": 120,
    "retry": 180,
    "max_attempts": 5,
    "ack_failures": True,
    "save_limit": -1,
    "bulk": 10,
    "poll": 0.2,
    "catch_up": False,
}

# django-push-notifications' documented settings (LegacyConfig). The library only takes a
# registration_id starting with https:// as a full endpoint; the fake push service is plain
# http on loopback, so devices store the subscription id and WP_POST_URL supplies the origin
# (the library's path for ids that are not URLs). The request is the same POST to the same URL.
PUSH_NOTIFICATIONS_SETTINGS = {
    "WP_PRIVATE_KEY": os.environ.get("BENCH_PEER_VAPID_KEY_FILE"),
    "WP_CLAIMS": {"sub": os.environ.get("BENCH_PEER_VAPID_SUBJECT", "mailto:bench@example.com")},
    "WP_POST_URL": {"CHROME": os.environ.get("BENCH_PEER_WP_POST_URL", "")},
    # The library's default is 1 s; a loaded loopback fake can exceed it, which would count a
    # slow answer as a failed send instead of a slow one.
    "WP_ERROR_TIMEOUT": 10,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"django-q": {"level": "WARNING"}},
}

# firebase-admin builds its send URL from this class constant; pointing it at the fake is the
# one change production would not have. The OAuth token comes from the service account's
# token_uri, which the fake's service accounts already set to the fake.
_FCM_URL = os.environ.get("BENCH_PEER_FCM_URL")
if _FCM_URL:
    messaging._MessagingService.FCM_URL = _FCM_URL.rstrip("/") + "/v1/projects/{0}/messages:send"
_SERVICE_ACCOUNT_FILE = os.environ.get("BENCH_PEER_FCM_SERVICE_ACCOUNT_FILE")
if _SERVICE_ACCOUNT_FILE:
    # The library's README: initialise the default app in settings; GCMDevice uses it.
    try:
        firebase_admin.get_app()
    except ValueError:
        firebase_admin.initialize_app(credentials.Certificate(_SERVICE_ACCOUNT_FILE))
