"""The demo's path on SQLite, JIM's embedded default: a first cycle, HR file → CSV
directory, run as ``python manage.py jim`` commands in a process of their own (the
rest of the suite runs on PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from demo.data import write_hr_csv

MANAGE = Path(settings.BASE_DIR) / "manage.py"
CONFIG = Path(settings.BASE_DIR) / "demo" / "csv.yaml"


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _run(env: dict[str, str], system: str, profile: str) -> dict:
    result = _manage(env, "jim", "run", system, profile, "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_a_first_cycle_on_sqlite_provisions_and_confirms_the_directory_file(tmp_path):
    hr = write_hr_csv(tmp_path / "hr.csv")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'jim.sqlite3'}",
        "JIM_DEMO_DATA": str(tmp_path),
    }
    assert _manage(env, "migrate", "--verbosity", "0").returncode == 0
    applied = _manage(env, "jim", "apply", str(CONFIG))
    assert applied.returncode == 0, applied.stderr

    imported = _run(env, "HR", "Full Import")
    synced = _run(env, "HR", "Full Sync")
    exported = _run(env, "Directory", "Export")
    confirmed = _run(env, "Directory", "Full Import")

    assert imported["status"] == "complete_with_errors"
    assert imported["counts"]["errors"] == 2 * len(hr.duplicate_ids) + 1
    assert {e["error_type"] for e in imported["errors"]} == {"duplicate_object", "invalid_data"}
    assert synced["status"] == "complete"
    provisioned = exported["counts"]["provisioned"]
    assert synced["counts"]["projected"] >= provisioned > 900
    assert exported["status"] == confirmed["status"] == "complete"
    assert confirmed["counts"]["deleted"] == 0  # nothing it just created marked obsolete
    directory = (tmp_path / "directory.csv").read_text(encoding="utf-8").splitlines()
    assert len(directory) == provisioned + 1  # and its header
    pending = _manage(env, "jim", "pending-exports", "--json")
    assert pending.returncode == 0, pending.stderr
    assert json.loads(pending.stdout) == []
