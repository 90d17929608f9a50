"""JIM settings, read from environment variables.

Safe by default: ``DEBUG`` is off unless ``DEBUG=true``, and with it off JIM refuses to
start without ``SECRET_KEY`` and ``JIM_ENCRYPTION_KEY`` from the environment, and turns
on secure cookies, HSTS, the HTTPS redirect and the security headers, so that
``manage.py check --deploy`` is clean. No key is written in the repository. Bad values
fail loudly at start with ``ImproperlyConfigured`` rather than at first use.
docs/security.md says how to run JIM in production.

Environment:
    DEBUG                 true/false (default false). true for development and the demo:
                          tracebacks in the browser, plain-http cookies, no HSTS.
    SECRET_KEY            Django's secret key (signs sessions and CSRF tokens); required
                          when DEBUG is off. With DEBUG on and none given, a random key
                          per process (sessions end when the server restarts).
    JIM_ENCRYPTION_KEY    the key that encrypts connected-system secrets at rest (at
                          least 32 characters; never derived from SECRET_KEY); required
                          when DEBUG is off. With DEBUG on and none given, secrets can
                          be neither stored nor read.
    JIM_ENCRYPTION_KEY_PREVIOUS  comma-separated older keys, tried when reading secrets
                          (rotation: ``jim rotate-secrets`` re-encrypts with the current
                          key). An old SECRET_KEY here reads what JIM stored before it
                          had its own encryption key.
    ALLOWED_HOSTS         comma-separated host names (default localhost names).
    CSRF_TRUSTED_ORIGINS  comma-separated origins (https://jim.example.org) trusted for
                          unsafe requests when a proxy changes the host or scheme.
    JIM_SECURE_PROXY_SSL_HEADER  HEADER=value (like HTTP_X_FORWARDED_PROTO=https): the
                          header a TLS-terminating proxy sets on requests that came in
                          over https. Only set it behind such a proxy.
    JIM_SSL_REDIRECT      true/false (default true when DEBUG is off): redirect http to
                          https. Turn it off only when the proxy redirects itself.
    JIM_HSTS_SECONDS      Strict-Transport-Security max-age when DEBUG is off (default
                          31536000, a year; 0 sends no HSTS header).
    JIM_HSTS_INCLUDE_SUBDOMAINS, JIM_HSTS_PRELOAD  true/false (default true).
    DATABASE_URL          postgres://user:pass@host:port/name; SQLite when unset.
    JIM_Q_WORKERS         django-q2 worker count (default 2).
    JIM_REDIS_URL         use Redis as the django-q2 broker instead of the ORM.
    JIM_LOG_LEVEL         the root logger's level (default WARNING).
    JIM_EXPRESSION_MAX_TEXT       characters of text one evaluation of an expression
                                  may build (default 1,000,000); see docs/expressions.md.
    JIM_EXPRESSION_MAX_ITEMS      list, tuple and dict items it may build (default 100,000).
    JIM_EXPRESSION_TIME_LIMIT_MS  how long it may run, in milliseconds (default 1,000).
    JIM_LOGIN_MAX_FAILURES        failed sign-ins per account before it is locked (default 5).
    JIM_LOGIN_MAX_FAILURES_PER_ADDRESS   … per client address (default 20).
    JIM_LOGIN_LOCKOUT_MINUTES     the window failures are counted in (default 15).
    JIM_API_KEY_DAYS              an API key's default lifetime in days (default 90).
    JIM_API_KEY_MAX_DAYS          the longest lifetime an API key may be given (default 365).
    JIM_PREVIEW_RETENTION_DAYS    how long preview activities are kept (default 7).
    JIM_HISTORY_RETENTION_DAYS    how long the value history of MVOs and CSOs is kept
                                  (default 365).
    JIM_EXPORT_RETENTION_DAYS     how long what an export run sent is kept, so the run
                                  can be undone (default 90).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.env import (
    env_bool,
    env_header,
    env_int,
    env_list,
    env_secret,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = env_secret(
    "SECRET_KEY",
    required=not DEBUG,
    min_length=1,
    generate="python3 -c 'import secrets; print(secrets.token_urlsafe(50))'",
) or secrets.token_urlsafe(50)

#: The current key of stored secrets, and the older ones still accepted for reading
#: (core/crypto.py).
JIM_ENCRYPTION_KEY = env_secret(
    "JIM_ENCRYPTION_KEY",
    required=not DEBUG,
    min_length=32,
    generate="python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
)
JIM_ENCRYPTION_KEY_PREVIOUS = env_list("JIM_ENCRYPTION_KEY_PREVIOUS", default=[])

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTP security. Always: no MIME sniffing, no framing, no referrer to other sites,
# cookies out of JavaScript's reach. With DEBUG off: cookies only over https, HSTS,
# and http redirected to https (docs/security.md).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env_bool("JIM_SSL_REDIRECT", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = env_header("JIM_SECURE_PROXY_SSL_HEADER")
SECURE_HSTS_SECONDS = 0 if DEBUG else env_int("JIM_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("JIM_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("JIM_HSTS_PRELOAD", default=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    "django_q",
    "jim_project",
    "access",
    "audit",
    "history",
    "connectors",
    "metaverse",
    "exports",
    "runs",
    "console",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "audit.context.AuditContextMiddleware",
]

ROOT_URLCONF = "jim_project.urls"

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

WSGI_APPLICATION = "jim_project.wsgi.application"

DATABASES = {
    "default": parse_database_url(
        os.environ.get("DATABASE_URL", ""), default_sqlite=BASE_DIR / "db.sqlite3"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite (the demo): the web server and the django-q2 workers write one file. A
    # transaction takes the write lock when it begins and waits for it (up to 30 s),
    # instead of failing with "database is locked" at its first write after a read.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.DjangoModelPermissions"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "JIM API",
    "DESCRIPTION": "The REST API of JIM, the identity synchronisation engine.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "PendingExportChangeTypeEnum": "exports.choices.PendingExportChangeType",
        "ObjectChangeTypeEnum": "connectors.choices.ObjectChangeType",
        "AttributeChangeTypeEnum": "exports.choices.AttributeChangeType",
        "PendingExportStatusEnum": "exports.choices.PendingExportStatus",
        "AttributeChangeStatusEnum": "exports.choices.AttributeChangeStatus",
    },
}

_redis_url = os.environ.get("JIM_REDIS_URL", "")
Q_CLUSTER = {
    "name": "jim",
    "workers": env_int("JIM_Q_WORKERS", default=2),
    "timeout": env_int("JIM_Q_TIMEOUT", default=6 * 3600),
    "retry": env_int("JIM_Q_TIMEOUT", default=6 * 3600) + 60,
    "max_attempts": 1,
    "catch_up": False,
    "label": "Run queue",
    **({"redis": _redis_url} if _redis_url else {"orm": "default"}),
}

# The budget of one expression evaluation (metaverse/expression_budget.py): what
# exceeds it fails that object with expression_error, never the run.
JIM_EXPRESSION_MAX_TEXT = env_int("JIM_EXPRESSION_MAX_TEXT", default=1_000_000)
JIM_EXPRESSION_MAX_ITEMS = env_int("JIM_EXPRESSION_MAX_ITEMS", default=100_000)
JIM_EXPRESSION_TIME_LIMIT_MS = env_int("JIM_EXPRESSION_TIME_LIMIT_MS", default=1_000)
for _name in (
    "JIM_EXPRESSION_MAX_TEXT",
    "JIM_EXPRESSION_MAX_ITEMS",
    "JIM_EXPRESSION_TIME_LIMIT_MS",
):
    if globals()[_name] < 1:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"{_name} must be at least 1.")

# Sign-in throttling and API keys (access/throttling.py, access/keys.py).
JIM_LOGIN_MAX_FAILURES = env_int("JIM_LOGIN_MAX_FAILURES", default=5)
JIM_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("JIM_LOGIN_MAX_FAILURES_PER_ADDRESS", default=20)
JIM_LOGIN_LOCKOUT_MINUTES = env_int("JIM_LOGIN_LOCKOUT_MINUTES", default=15)
JIM_API_KEY_DAYS = env_int("JIM_API_KEY_DAYS", default=90)

# Retention, in days, of what housekeeping prunes (runs/housekeeping.py).
JIM_PREVIEW_RETENTION_DAYS = env_int("JIM_PREVIEW_RETENTION_DAYS", default=7)
JIM_HISTORY_RETENTION_DAYS = env_int("JIM_HISTORY_RETENTION_DAYS", default=365)
JIM_EXPORT_RETENTION_DAYS = env_int("JIM_EXPORT_RETENTION_DAYS", default=90)
JIM_API_KEY_MAX_DAYS = env_int("JIM_API_KEY_MAX_DAYS", default=365)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("JIM_LOG_LEVEL", "WARNING")},
}
