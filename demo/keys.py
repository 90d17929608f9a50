"""The demo's own keys: ``SECRET_KEY`` and ``JIM_ENCRYPTION_KEY``, random, made once.

JIM publishes no key (docs/security.md), so the demo makes its own on its first run,
in ``.demo/keys.env`` (mode 0600, readable by its owner only), and reads them back on
every later run: the secrets it stored stay readable, and the admin's session survives
a restart. Delete the file together with the database to start afresh.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEYS_FILE = "keys.env"
#: name → how many random bytes (URL-safe base64) a new key gets.
KEY_BYTES = {"SECRET_KEY": 50, "JIM_ENCRYPTION_KEY": 32}


class DemoKeysError(RuntimeError):
    """The keys file exists but does not hold both keys (the message says what to do)."""


def demo_keys(folder: Path) -> dict[str, str]:
    """The keys in ``folder/keys.env``, made there first when the file is missing."""
    path = folder / KEYS_FILE
    if path.exists():
        return _read(path)
    keys = {name: secrets.token_urlsafe(size) for name, size in KEY_BYTES.items()}
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("# The demo's keys, made on its first run. Keep them private.\n")
        handle.writelines(f"{name}={value}\n" for name, value in keys.items())
    return keys


def _read(path: Path) -> dict[str, str]:
    keys = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, equals, value = line.partition("=")
        if equals and name.strip() in KEY_BYTES:
            keys[name.strip()] = value.strip()
    missing = [name for name in KEY_BYTES if not keys.get(name)]
    if missing:
        raise DemoKeysError(
            f"{path} lacks {', '.join(missing)}. Delete it and the demo's database "
            "(db.sqlite3) to start afresh."
        )
    return keys
