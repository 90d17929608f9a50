"""The demo's own keys (demo/keys.py): random, made once with mode 0600, read back."""

from __future__ import annotations

import stat

import pytest

from demo.keys import DemoKeysError, demo_keys


def test_the_keys_are_made_once_private_and_reused(tmp_path):
    folder = tmp_path / ".demo"

    first = demo_keys(folder)

    path = folder / "keys.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(first) == {"SECRET_KEY", "JIM_ENCRYPTION_KEY"}
    assert len(first["SECRET_KEY"]) >= 50 and len(first["JIM_ENCRYPTION_KEY"]) >= 32
    assert demo_keys(folder) == first
    assert demo_keys(tmp_path / "another") != first


def test_a_keys_file_without_both_keys_is_refused(tmp_path):
    (tmp_path / "keys.env").write_text("SECRET_KEY=abc\n")

    with pytest.raises(DemoKeysError, match="lacks JIM_ENCRYPTION_KEY"):
        demo_keys(tmp_path)
