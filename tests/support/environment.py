"""The settings environment of a test session, set before Django reads its settings.

A pytest plugin, loaded early with ``-p tests.support.environment`` (see ``addopts`` in
pyproject.toml), like :mod:`tests.support.postgres`. The tests run with production
settings (``DEBUG`` unset), which refuse to start without ``SECRET_KEY`` and
``JIM_ENCRYPTION_KEY``: this plugin sets both to random values made for this session,
unless the environment has them. It sets them in ``os.environ``, so the processes the
tests start (pytest-xdist workers, django-q2 clusters, ``manage.py`` subprocesses)
inherit the same keys and read the secrets the tests stored.

``JIM_SSL_REDIRECT=false``, a test-only choice: the test client and the live server
speak plain http, which the production redirect to https would turn away. Secure
cookies stay on — the test client sends them over http, and Chromium accepts and sends
them on ``http://localhost``, a secure context (tests/console/test_browser*.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Generator

import pytest

#: Set for every test session, whatever the environment says.
TEST_ONLY = {"JIM_SSL_REDIRECT": "false"}


def set_test_environment(environ: os._Environ[str] | dict[str, str]) -> None:
    """Random keys where none are given, and :data:`TEST_ONLY`."""
    environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    environ.setdefault("JIM_ENCRYPTION_KEY", secrets.token_urlsafe(32))
    environ.update(TEST_ONLY)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    """Runs before pytest-django's implementation, which imports the settings."""
    set_test_environment(os.environ)
    return (yield)
