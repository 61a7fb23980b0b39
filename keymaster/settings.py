"""Keymaster settings, all read from the environment (see .env.example for each one's meaning)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _positive_int(name: str, default: int) -> int:
    """Read an integer setting that must be ≥ 1, stopping start-up with its name otherwise."""
    try:
        value = env.int(name, default=default)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer: {exc}") from exc
    if value < 1:
        raise ImproperlyConfigured(f"{name} must be a positive integer, got {value}")
    return value


def _csv(name: str) -> list[str]:
    return [item.strip() for item in env.str(name, default="").split(",") if item.strip()]


DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set the SECRET_KEY environment variable "
            "to a long random string (see .env.example)."
        )
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0123456789abcdef"  # noqa: S105

ALLOWED_HOSTS = _csv("ALLOWED_HOSTS") or (["127.0.0.1", "localhost", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = _csv("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "csp",
    "corsheaders",
    "keymaster",
    "accounts",
    "push",
]

MIDDLEWARE = [
    # Outermost: every response gets its X-Request-ID, every request is counted and timed.
    "keymaster.logs.RequestIdMiddleware",
    "keymaster.metrics.HttpMetricsMiddleware",
    # First, so an oversized body is refused before anything else runs or reads it.
    "keymaster.middleware.RequestSizeLimitMiddleware",
    # Before anything that answers: a preflight gets its CORS answer here (push.cors).
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy and Permissions-Policy on every answer, pages and API alike.
    "csp.middleware.CSPMiddleware",
    "keymaster.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "keymaster.urls"
WSGI_APPLICATION = "keymaster.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite is the zero-setup default for `make run`; production and CI use PostgreSQL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the qcluster worker write at the same time: WAL lets readers go on
    # while one writes, IMMEDIATE makes writers queue on the busy timeout instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Server-side binding lets psycopg prepare the statements a connection runs again and
    # again (after 5 runs), so PostgreSQL stops planning each send's queries anew. Turn it off
    # behind a pooler that cannot keep prepared statements (PgBouncer before 1.21).
    if env.bool("DB_SERVER_SIDE_BINDING", default=True):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=5
        )
    # A bounded pool per process (Django's psycopg_pool option) instead of a connection per
    # thread. Under the Procfile's ASGI server each request's sync code runs in a thread of its
    # own, so per-thread persistent connections are opened per request and closed only when
    # collected: 393 at once from 4 web processes in the benchmark (bench/README.md, sixth
    # pass). 0 (the default): off, connections per thread as before. The web server turns it
    # on for its own processes (keymaster/gunicorn_conf.py, WEB_DB_POOL_SIZE, 4); the qcluster
    # workers, long-lived threads, keep their persistent connections.
    if pool_size := env.int("DB_POOL_MAX_SIZE", default=0):
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django: a pool replaces persistent ones
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": pool_size,
            "timeout": 10,
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Nothing shared may live in one process's memory, so there is no per-process cache: quotas,
# rate limits and guess throttles are counters in the database (keymaster.ratelimit).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (all on when DEBUG is off: `manage.py check --deploy` reports nothing) ---------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# SecurityMiddleware sends these two; set here so no default change can drop them.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# No inline script or style anywhere (templates load static files only): a script injected into
# a page cannot run, and a page cannot be framed or post its forms elsewhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'"],
        "manifest-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Browser features no Keymaster page uses, switched off (keymaster.middleware).
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)
# Request bodies past this are refused with 413 unread (keymaster.middleware). The largest
# valid request is a batch of 500 notifications, each a 256-character title, a 4096-character
# body and 4 KB of data: about 10.9 MB of UTF-8 JSON when every character takes 4 bytes.
REQUEST_MAX_BYTES = _positive_int("REQUEST_MAX_BYTES", 16 * 1024 * 1024)
# Django's own check, made when `request.body` is read (DRF's JSON parser reads it, forms too):
# the same limit, or a valid 4 MB batch would be refused.
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["keymaster.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "keymaster.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "keymaster.openapi.KeymasterAutoSchema",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Keymaster API",
    "DESCRIPTION": "Push notification broker: devices, sends, receipts, and the tokens to call it.",
    "VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # `platform` of a device and `platforms` of a broadcast: one enum, one name.
    "ENUM_NAME_OVERRIDES": {"PlatformEnum": "push.models.Platform"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "keymaster.openapi.postprocess_links",
        "push.api.cors.postprocess_cors",
    ],
}

# --- Tokens ---------------------------------------------------------------------------------
JWT_ISSUER = env.str("JWT_ISSUER", default="keymaster")
SIMPLE_JWT = {
    "ALGORITHM": "HS256",  # pinned: tokens signed any other way (or `alg: none`) are refused
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default=SECRET_KEY),
    "ISSUER": JWT_ISSUER,
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=_positive_int("JWT_ACCESS_LIFETIME", 900)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=_positive_int("JWT_REFRESH_LIFETIME", 86_400)),
    "UPDATE_LAST_LOGIN": False,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "LEEWAY": 0,
}
JWT_CLIENT_LIFETIME = _positive_int("JWT_CLIENT_LIFETIME", 3600)
# The cookie the Account page's own JavaScript authenticates with (second seed).
ACCESS_TOKEN_COOKIE = "access_token"

# Guessing protection for passwords, client secrets and the token endpoints: attempts per
# window, counted in the database so every process shares the count.
AUTH_THROTTLE_ATTEMPTS = _positive_int("AUTH_THROTTLE_ATTEMPTS", 10)
AUTH_THROTTLE_WINDOW = _positive_int("AUTH_THROTTLE_WINDOW", 300)


def _networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in _csv(name)]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must list IP addresses or CIDRs: {exc}") from exc


# The proxies in front of Keymaster (addresses or CIDRs): only when a request comes from one is
# its X-Forwarded-For read for the client's address (guess throttles). Empty: REMOTE_ADDR.
TRUSTED_PROXIES = _networks("TRUSTED_PROXIES")

# --- Push -----------------------------------------------------------------------------------
PUSH_MAX_BATCH_SIZE = _positive_int("PUSH_MAX_BATCH_SIZE", 500)
PUSH_DEFAULT_DAILY_QUOTA = _positive_int("PUSH_DEFAULT_DAILY_QUOTA", 10_000)
PUSH_REGISTRATIONS_PER_HOUR = _positive_int("PUSH_REGISTRATIONS_PER_HOUR", 10)
PUSH_DEFAULT_APP_ID = env.str("PUSH_DEFAULT_APP_ID", default="")
PUSH_VAPID_SUBJECT = env.str("PUSH_VAPID_SUBJECT", default="mailto:push@keymaster.invalid")
# MultiFernet keys for push tokens and other secrets at rest, newest first (comma-separated).
TOKEN_ENCRYPTION_KEYS = _csv("TOKEN_ENCRYPTION_KEYS")
# Key for the HMAC that finds a token again without decrypting every row.
TOKEN_LOOKUP_KEY = env.str("TOKEN_LOOKUP_KEY", default="")
# Lookup keys being rotated out (comma-separated): tokens stored under them are still found
# until `manage.py rotate_encryption_keys` recomputes every lookup HMAC with TOKEN_LOOKUP_KEY.
TOKEN_LOOKUP_OLD_KEYS = _csv("TOKEN_LOOKUP_OLD_KEYS")
if not TOKEN_ENCRYPTION_KEYS or not TOKEN_LOOKUP_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEYS and TOKEN_LOOKUP_KEY are required when DEBUG is off "
            "(see .env.example for how to generate them)."
        )
    TOKEN_ENCRYPTION_KEYS = TOKEN_ENCRYPTION_KEYS or [
        "Bgw5VGbHxtTbpvJ6tGVfrYyBWbiTEu2cnxeUt7ylnFk="
    ]
    TOKEN_LOOKUP_KEY = TOKEN_LOOKUP_KEY or "dev-only-lookup-key"  # noqa: S105
# Hosts (names, addresses, CIDRs) that outbound calls may reach even though they are internal,
# and over plain http: for local testing only.
OUTBOUND_ALLOWED_HOSTS = env.str("OUTBOUND_ALLOWED_HOSTS", default="")
# Deliveries (and receipts) per queued task: enough to keep many requests in flight per task.
PUSH_DELIVERY_CHUNK = _positive_int("PUSH_DELIVERY_CHUNK", 250)
PUSH_RECEIPT_CHUNK = _positive_int("PUSH_RECEIPT_CHUNK", 250)
# Recipients a broadcast's fan-out makes notifications for per transaction.
PUSH_BROADCAST_CHUNK = _positive_int("PUSH_BROADCAST_CHUNK", 5000)
# Seconds to wait for FCM or a push service before the attempt counts as a timeout (retried).
PUSH_SEND_TIMEOUT = env.float("PUSH_SEND_TIMEOUT", default=10.0)
# A claim's lease: a worker renews the leases of the claims it holds every third of it while
# it works, so a claim runs out only when its worker died; the sweeper then takes it back.
PUSH_CLAIM_SECONDS = _positive_int("PUSH_CLAIM_SECONDS", 15)
# Each worker process sweeps (dead claims, due retries, stalled queued work) this often.
PUSH_SWEEP_SECONDS = _positive_int("PUSH_SWEEP_SECONDS", 5)
# Outcomes are recorded as they arrive, in groups: at most PUSH_RECORD_EVERY at once, and none
# waits longer than PUSH_RECORD_MS. At most PUSH_RECORD_WINDOW messages of a task are in flight
# or answered-but-not-recorded at any instant: the most a killed worker can send twice.
PUSH_RECORD_EVERY = _positive_int("PUSH_RECORD_EVERY", 100)
PUSH_RECORD_MS = _positive_int("PUSH_RECORD_MS", 200)
PUSH_RECORD_WINDOW = _positive_int("PUSH_RECORD_WINDOW", 100)
PUSH_MAX_ATTEMPTS = _positive_int("PUSH_MAX_ATTEMPTS", 50)
# Seconds a task waits for the database to come back (a restart, a failover) before it fails;
# well under Q_TIMEOUT, so the task is not killed meanwhile.
DB_OUTAGE_WAIT = env.float("DB_OUTAGE_WAIT", default=30.0)
# CORS for apps' own web pages (push.cors): only the endpoints a browser calls, only origins
# some app allows (its push config's allowed_origins), Bearer tokens only, never cookies.
CORS_URLS_REGEX = r"^/(auth/token|auth/token/refresh|push/devices/register|push/subscribe|push/opened|push/devices/[0-9a-fA-F-]{36}|account/devices)$"  # noqa: E501
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = ("authorization", "content-type")
CORS_ALLOW_METHODS = ("DELETE", "GET", "OPTIONS", "POST")
CORS_EXPOSE_HEADERS = ("Retry-After",)
CORS_PREFLIGHT_MAX_AGE = 600
FCM_API_URL = env.str("FCM_API_URL", default="https://fcm.googleapis.com")
FCM_CREDENTIALS_FILE = env.str("FCM_CREDENTIALS_FILE", default="")

# --- Tasks (django-q2, ORM broker: durable, a task survives a killed worker) ----------------
Q_CLUSTER = {
    "name": "keymaster",
    "orm": "default",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=120),
    # retry must exceed timeout, or a slow task is handed out twice while still running. A
    # killed cluster's tasks come back only after `retry`: recovery does not wait for them (the
    # sweeper in each worker queues stalled work again, push/delivery/sweeper.py).
    "retry": env.int("Q_RETRY", default=180),
    "max_attempts": 5,
    # A worker is replaced after `recycle` tasks, or sooner once its RSS passes `max_rss` (KiB):
    # a leak is caught by what it leaks. Each replacement imports the delivery code again and
    # opens new connections and a new OAuth token, so not every 500 tasks (django-q2's default:
    # every ~20 s at 50% load, where each small send is a task); the benchmark's soak compares
    # the replaced workers' RSS generation by generation (bench/README.md, item 25).
    "recycle": env.int("Q_RECYCLE", default=5000),
    "max_rss": env.int("Q_MAX_RSS_KB", default=300_000),
    "ack_failures": True,
    # Keep no successful results: each saved result is a write per task.
    "save_limit": -1,
    "bulk": 10,
    "poll": 0.2,
    "catch_up": False,
    "label": "Tasks",
}


# --- Operations (README "Operations") ---------------------------------------------------------
def _non_negative_int(name: str, default: int) -> int:
    """Read an integer setting that must be ≥ 0 (0 turns its feature off)."""
    try:
        value = env.int(name, default=default)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer: {exc}") from exc
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be 0 or more, got {value}")
    return value


# `/metrics` answers only this bearer token; unset, only requests from loopback.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where every process (gunicorn workers, qcluster) writes its counts for `/metrics` to add up.
# Read by prometheus_client itself from the environment, before it is first imported.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
# `/readyz` answers 503 once the oldest due delivery has waited this long.
READY_MAX_LAG_SECONDS = _positive_int("READY_MAX_LAG_SECONDS", 300)
# ... and when no qcluster worker has beaten for this long; each worker beats this often.
READY_WORKER_SECONDS = _positive_int("READY_WORKER_SECONDS", 60)
WORKER_HEARTBEAT_SECONDS = _positive_int("WORKER_HEARTBEAT_SECONDS", 15)
# Days an ended notification (its deliveries, receipts and their attempts) is kept.
RETENTION_DAYS = _positive_int("RETENTION_DAYS", 30)
AUDIT_RETENTION_DAYS = _positive_int("AUDIT_RETENTION_DAYS", 365)
# Rows the prune deletes per statement (each a short transaction; it sleeps between them).
RETENTION_BATCH = _positive_int("RETENTION_BATCH", 2000)
# Days after a device's token was last registered that the daily task removes it; 0: never.
DEVICE_STALE_DAYS = _non_negative_int("DEVICE_STALE_DAYS", 270)

LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"log_ids": {"()": "keymaster.logs.LogIdsFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # One object per line: time, level, logger, message, and the bound ids (keymaster.logs).
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["log_ids"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # httpx logs every request at INFO: one line per push message is noise, not information.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}
