"""Every sync scenario again, outside a transaction and one CSO per batch, so each
batch's RPEIs are written by the background writer while the next batch is synced
(see :mod:`tests.sync.test_sync_write_behind`)."""

from __future__ import annotations

import pytest

from metaverse.sync import processor
from tests.sync.test_sync_lifecycle import *  # noqa: F403 (the scenarios, collected again)
from tests.sync.test_sync_rules import *  # noqa: F403

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def one_cso_per_batch(monkeypatch):
    monkeypatch.setattr(processor, "BATCH_SIZE", 1)
