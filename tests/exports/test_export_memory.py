"""An export keeps its memory bounded: the runner runs it with the cycle collector
paused (:mod:`core.collector`), so nothing it does per pending export may
build reference cycles — they would stay in memory until the end of the run."""

from __future__ import annotations

import gc

import pytest

from connectors.models import ConnectorSpaceObject
from exports.models import PendingExport, PendingExportAttributeChange
from tests.builders import add_run_profile, run
from tests.exports.memory_connector import MemoryConnector

pytestmark = pytest.mark.django_db


def test_an_export_run_leaves_no_reference_cycles(scenario):
    add_run_profile(scenario.directory, "export")
    for n, account in enumerate(("ada", "alan", "grace"), start=1):
        scenario.hr_row(str(n), accountName=account)
    scenario.sync()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable is kept here
    try:
        activity = run(scenario.directory, "Export")
        gc.collect()
        cyclic = [
            type(o).__name__
            for o in gc.garbage
            if isinstance(o, PendingExport | PendingExportAttributeChange | ConnectorSpaceObject)
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()

    assert activity.status == "complete", activity.message
    assert len(MemoryConnector.directory) == 3
    assert cyclic == []
