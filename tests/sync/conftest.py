"""Fixtures of the sync tests."""

from __future__ import annotations

import pytest

from metaverse.sync import processor


@pytest.fixture(
    params=[
        pytest.param("in place", id="written in place"),
        pytest.param("behind", id="written behind", marks=pytest.mark.django_db(transaction=True)),
    ]
)
def rpei_writes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where a sync writes each batch's RPEIs: the test runs once for each.

    *In place*: in the test's transaction, as a sync inside one writes them.
    *Behind*: outside a transaction and one CSO per batch, as ``jim run`` and the
    workers sync, so each batch's RPEIs are written by the background writer while the
    next batch is synced (see :mod:`tests.sync.test_sync_write_behind`). A module
    asks for both with ``pytest.mark.usefixtures("rpei_writes")``.
    """
    if request.param == "behind":
        monkeypatch.setattr(processor, "BATCH_SIZE", 1)
    return request.param
