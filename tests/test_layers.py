"""The house keeps its shape: no module takes another app's private names.

(The layers themselves — each app imports only the ones below it — are checked by
``lint-imports`` in ``make test``, from the contract in pyproject.toml.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = (
    "core",
    "access",
    "audit",
    "connectors",
    "metaverse",
    "exports",
    "runs",
    "console",
    "api",
    "jim_project",
)


def private_imports_across_apps() -> list[str]:
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                other = node.module.split(".")[0]
                if other == app or other not in APPS:
                    continue
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                private += [part for part in node.module.split(".") if part.startswith("_")]
                found += [f"{path.relative_to(ROOT)}: {node.module}.{name}" for name in private]
    return found


def test_no_app_imports_another_apps_private_names():
    assert private_imports_across_apps() == []
