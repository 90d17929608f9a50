"""Production settings pass Django's deployment checklist: ``manage.py check --deploy``
finds nothing, not even a warning, under the environment docs/security.md describes
(DEBUG unset, both keys and ALLOWED_HOSTS set)."""

from __future__ import annotations

import secrets
import subprocess
import sys

from tests.test_settings import REPO, clean_environment


def test_check_deploy_is_clean_under_production_settings():
    env = clean_environment(
        SECRET_KEY=secrets.token_urlsafe(50),
        JIM_ENCRYPTION_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="jim.example.org",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
