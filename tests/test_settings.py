"""Settings from the environment (core/env.py, jim_project/settings.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_int, env_list, parse_database_url

REPO = Path(__file__).resolve().parent.parent
SQLITE_DEFAULT = Path("/srv/jim/db.sqlite3")


# -- env_bool ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "Yes", "on", " true "])
def test_env_bool_reads_true(monkeypatch, raw):
    monkeypatch.setenv("JIM_FLAG", raw)
    assert env_bool("JIM_FLAG", default=False) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "OFF", ""])
def test_env_bool_reads_false(monkeypatch, raw):
    monkeypatch.setenv("JIM_FLAG", raw)
    assert env_bool("JIM_FLAG", default=True) is False


def test_env_bool_default_when_unset(monkeypatch):
    monkeypatch.delenv("JIM_FLAG", raising=False)
    assert env_bool("JIM_FLAG", default=True) is True
    assert env_bool("JIM_FLAG", default=False) is False


def test_env_bool_rejects_other_words_naming_the_variable(monkeypatch):
    monkeypatch.setenv("JIM_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"JIM_FLAG='maybe' is not a boolean"):
        env_bool("JIM_FLAG", default=False)


# -- env_int ----------------------------------------------------------------------


def test_env_int_reads_an_integer(monkeypatch):
    monkeypatch.setenv("JIM_COUNT", "42")
    assert env_int("JIM_COUNT", default=1) == 42


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_env_int_default_when_unset_or_blank(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv("JIM_COUNT", raising=False)
    else:
        monkeypatch.setenv("JIM_COUNT", raw)
    assert env_int("JIM_COUNT", default=7) == 7


def test_env_int_rejects_text(monkeypatch):
    monkeypatch.setenv("JIM_COUNT", "two")
    with pytest.raises(ImproperlyConfigured, match=r"JIM_COUNT='two' is not an integer"):
        env_int("JIM_COUNT", default=1)


def test_env_int_rejects_negative_numbers(monkeypatch):
    monkeypatch.setenv("JIM_COUNT", "-3")
    with pytest.raises(ImproperlyConfigured, match=r"JIM_COUNT='-3' must not be negative"):
        env_int("JIM_COUNT", default=1)


# -- env_list ---------------------------------------------------------------------


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("JIM_HOSTS", " jim.example.org, ,localhost,")
    assert env_list("JIM_HOSTS", default=["x"]) == ["jim.example.org", "localhost"]


def test_env_list_default_when_unset_and_empty_when_blank(monkeypatch):
    monkeypatch.delenv("JIM_HOSTS", raising=False)
    assert env_list("JIM_HOSTS", default=["localhost"]) == ["localhost"]
    monkeypatch.setenv("JIM_HOSTS", "")
    assert env_list("JIM_HOSTS", default=["localhost"]) == []


# -- parse_database_url -----------------------------------------------------------


@pytest.mark.parametrize("url", ["", "   "])
def test_empty_database_url_means_sqlite_in_the_project(url):
    assert parse_database_url(url, default_sqlite=SQLITE_DEFAULT) == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SQLITE_DEFAULT,
    }


def test_postgresql_url_gives_every_part():
    config = parse_database_url(
        "postgresql://jim:s%40cret@db.example.org:6543/jim_prod?sslmode=require",
        default_sqlite=SQLITE_DEFAULT,
    )
    assert config == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "jim_prod",
        "USER": "jim",
        "PASSWORD": "s@cret",
        "HOST": "db.example.org",
        "PORT": "6543",
        "CONN_MAX_AGE": 60,
        "OPTIONS": {"sslmode": "require"},
    }


def test_postgres_scheme_without_credentials_or_port():
    config = parse_database_url("postgres://localhost/jim", default_sqlite=SQLITE_DEFAULT)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("jim", "", "")
    assert (config["HOST"], config["PORT"]) == ("localhost", "")
    assert "OPTIONS" not in config


def test_sqlite_url_names_the_file():
    config = parse_database_url("sqlite:///var/lib/jim/jim.db", default_sqlite=SQLITE_DEFAULT)
    assert config == {"ENGINE": "django.db.backends.sqlite3", "NAME": "/var/lib/jim/jim.db"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/jim", "unsupported scheme 'mysql'"),
        ("postgresql://localhost", "names no database"),
        ("postgresql://localhost/", "names no database"),
        ("postgresql://localhost:notaport/jim", "has an invalid port"),
        ("postgresql://localhost:99999/jim", "has an invalid port"),
        ("sqlite://", "has no database file path"),
        ("sqlite:///", "has no database file path"),
    ],
)
def test_bad_database_urls_are_named_with_the_cause(url, message):
    with pytest.raises(ImproperlyConfigured, match=message) as error:
        parse_database_url(url, default_sqlite=SQLITE_DEFAULT)
    assert f"DATABASE_URL={url!r}" in str(error.value)


# -- the settings module as a whole (a fresh interpreter per case) -----------------

#: Every variable the settings read that a case may set; the rest of the environment
#: (the test rig's keys included) is left out so each case starts from nothing.
SETTINGS_VARIABLES = {
    "SECRET_KEY",
    "JIM_ENCRYPTION_KEY",
    "JIM_ENCRYPTION_KEY_PREVIOUS",
    "DEBUG",
    "DATABASE_URL",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "JIM_SSL_REDIRECT",
    "JIM_SECURE_PROXY_SSL_HEADER",
    "JIM_HSTS_SECONDS",
    "JIM_HSTS_INCLUDE_SUBDOMAINS",
    "JIM_HSTS_PRELOAD",
}
PRODUCTION_KEYS = {
    "SECRET_KEY": "a-real-secret-key-from-the-vault-" + "x" * 30,
    "JIM_ENCRYPTION_KEY": "a-real-encryption-key-from-the-vault",
}


def clean_environment(**environment: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS_VARIABLES}
    env.update(environment)
    return env


def _import_settings(*names: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Import the settings in a new interpreter; print ``repr`` of each named setting."""
    code = "import jim_project.settings as s; " + "; ".join(
        f"print(repr(s.{name}))" for name in names
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=clean_environment(**environment),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JIM_ENCRYPTION_KEY"])
@pytest.mark.parametrize("debug", [None, "false"])
def test_production_refuses_to_start_without_each_key(missing, debug):
    environment = {name: value for name, value in PRODUCTION_KEYS.items() if name != missing}
    if debug is not None:
        environment["DEBUG"] = debug
    result = _import_settings("DEBUG", **environment)
    assert result.returncode != 0
    assert (
        f"ImproperlyConfigured: {missing} must be set in the environment when DEBUG is off. "
        "Generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe("
    ) in result.stderr


def test_a_short_encryption_key_is_refused():
    result = _import_settings("DEBUG", SECRET_KEY="k" * 50, JIM_ENCRYPTION_KEY="short")
    assert result.returncode != 0
    assert "JIM_ENCRYPTION_KEY is 5 characters long; it must have at least 32" in result.stderr


def test_production_settings_with_both_keys_load_secure():
    result = _import_settings(
        "DEBUG",
        "SECRET_KEY",
        "JIM_ENCRYPTION_KEY",
        "DATABASES['default']['ENGINE']",
        "ALLOWED_HOSTS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SECURE_PROXY_SSL_HEADER",
        "X_FRAME_OPTIONS",
        **PRODUCTION_KEYS,
        DATABASE_URL="postgresql://jim@db/jim",
        ALLOWED_HOSTS="jim.example.org",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "False",
        repr(PRODUCTION_KEYS["SECRET_KEY"]),
        repr(PRODUCTION_KEYS["JIM_ENCRYPTION_KEY"]),
        "'django.db.backends.postgresql'",
        "['jim.example.org']",
        "True",
        "True",
        "True",
        "31536000",
        "True",
        "True",
        "None",
        "'DENY'",
    ]


def test_behind_a_tls_proxy():
    result = _import_settings(
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "CSRF_TRUSTED_ORIGINS",
        **PRODUCTION_KEYS,
        JIM_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto=https",
        JIM_SSL_REDIRECT="false",
        CSRF_TRUSTED_ORIGINS="https://jim.example.org",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "('HTTP_X_FORWARDED_PROTO', 'https')",
        "False",
        "['https://jim.example.org']",
    ]


def test_a_proxy_header_without_a_value_is_refused():
    result = _import_settings("DEBUG", **PRODUCTION_KEYS, JIM_SECURE_PROXY_SSL_HEADER="X-Proto")
    assert result.returncode != 0
    assert "JIM_SECURE_PROXY_SSL_HEADER='X-Proto' is not HEADER=value" in result.stderr


def test_debug_needs_no_environment_and_uses_no_published_key():
    first = _import_settings("DEBUG", "SECRET_KEY", "JIM_ENCRYPTION_KEY", DEBUG="true")
    second = _import_settings("SECRET_KEY", DEBUG="true")
    assert first.returncode == 0, first.stderr
    debug, secret_key, encryption_key = first.stdout.splitlines()
    assert (debug, encryption_key) == ("True", "''")
    assert len(secret_key) > 50 and secret_key != second.stdout.strip()  # random per process
    insecure = _import_settings(
        "SESSION_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", DEBUG="true"
    )
    assert insecure.stdout.splitlines() == ["False", "False", "0"]


def test_no_key_is_written_in_the_settings():
    source = (REPO / "jim_project" / "settings.py").read_text()
    assert "django-insecure" not in source and "_DEV_SECRET_KEY" not in source


def test_a_bad_value_stops_the_settings_import_with_its_name():
    result = _import_settings("DEBUG", DEBUG="sometimes")
    assert result.returncode != 0
    assert "DEBUG='sometimes' is not a boolean" in result.stderr
