"""JIM settings, read from environment variables.

Every value has a safe default for the embedded demo (SQLite in the project folder,
DEBUG on). Bad values fail loudly at start with ``ImproperlyConfigured`` rather than
at first use.

Environment:
    SECRET_KEY            Django's secret key (required when DEBUG is off).
    DEBUG                 true/false (default true).
    ALLOWED_HOSTS         comma-separated host names (default localhost names).
    DATABASE_URL          postgres://user:pass@host:port/name; SQLite when unset.
    JIM_ENCRYPTION_KEY    key that encrypts connected-system secrets at rest;
                          derived from SECRET_KEY when unset.
    JIM_Q_WORKERS         django-q2 worker count (default 2).
    JIM_REDIS_URL         use Redis as the django-q2 broker instead of the ORM.
    JIM_EXPRESSION_MAX_TEXT       characters of text one evaluation of an expression
                                  may build (default 1,000,000); see docs/expressions.md.
    JIM_EXPRESSION_MAX_ITEMS      list, tuple and dict items it may build (default 100,000).
    JIM_EXPRESSION_TIME_LIMIT_MS  how long it may run, in milliseconds (default 1,000).
    JIM_LOGIN_MAX_FAILURES        failed sign-ins per account before it is locked (default 5).
    JIM_LOGIN_MAX_FAILURES_PER_ADDRESS   … per client address (default 20).
    JIM_LOGIN_LOCKOUT_MINUTES     the window failures are counted in (default 15).
    JIM_API_KEY_DAYS              an API key's default lifetime in days (default 90).
    JIM_API_KEY_MAX_DAYS          the longest lifetime an API key may be given (default 365).
"""

from __future__ import annotations

import os
from pathlib import Path

from core.env import env_bool, env_int, env_list, parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=True)

_DEV_SECRET_KEY = "django-insecure-jim-development-only-key-change-me"
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false.")
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

JIM_ENCRYPTION_KEY = os.environ.get("JIM_ENCRYPTION_KEY", "")

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
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "JIM API",
    "DESCRIPTION": "The REST API of JIM, the identity synchronisation engine.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
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
JIM_API_KEY_MAX_DAYS = env_int("JIM_API_KEY_MAX_DAYS", default=365)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("JIM_LOG_LEVEL", "WARNING")},
}
