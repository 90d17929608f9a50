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


def _import_settings(**environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "ALLOWED_HOSTS"}
    }
    env.update(environment)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import jim_project.settings as s; print(s.DEBUG, s.SECRET_KEY[:9], "
            "s.DATABASES['default']['ENGINE'], s.ALLOWED_HOSTS)",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_secret_key_is_required_when_debug_is_off():
    result = _import_settings(DEBUG="false")
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is false." in result.stderr


def test_production_settings_with_a_secret_key_load():
    result = _import_settings(
        DEBUG="false",
        SECRET_KEY="a-real-secret-key-from-the-vault",
        DATABASE_URL="postgresql://jim@db/jim",
        ALLOWED_HOSTS="jim.example.org",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "a-real-se",
        "django.db.backends.postgresql",
        "['jim.example.org']",
    ]


def test_demo_defaults_need_no_environment():
    result = _import_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["True", "django-in", "django.db.backends.sqlite3"]


def test_a_bad_value_stops_the_settings_import_with_its_name():
    result = _import_settings(DEBUG="sometimes")
    assert result.returncode != 0
    assert "DEBUG='sometimes' is not a boolean" in result.stderr
