"""An import keeps its memory bounded: it runs with the cycle collector paused
(:mod:`core.collector`), so nothing it does per object may build reference
cycles — they would stay in memory until the end of the run."""

from __future__ import annotations

import gc

import pytest

from connectors.choices import CsoStatus
from connectors.models import ConnectorSpaceObject
from exports.models import PendingExport, PendingExportAttributeChange
from tests.builders import run
from tests.connectors.scripted_connector import ScriptedConnector, obj, page

pytestmark = pytest.mark.django_db


def exported(system, uid: str) -> PendingExport:
    """A CSO JIM provisioned and exported, waiting for a confirming import."""
    dn = f"uid={uid},ou=people,dc=example,dc=org"
    cso = ConnectorSpaceObject.objects.create(
        connected_system=system,
        object_type=system.object_types.get(),
        secondary_external_id=dn,
        secondary_external_id_key=dn,
        status=CsoStatus.PENDING_PROVISIONING,
        attributes={"cn": [uid], "sn": [uid]},
        sync_pending=False,
    )
    pe = PendingExport.objects.create(
        connected_system=system, cs_object=cso, change_type="create", status="exported"
    )
    for attribute in ("cn", "sn"):
        PendingExportAttributeChange.objects.create(
            pending_export=pe,
            attribute=attribute,
            change_type="update",
            values=[uid],
            status="exported_pending_confirmation",
        )
    return pe


def test_a_confirming_import_leaves_no_reference_cycles(scripted):
    uids = ["ada", "alan", "grace"]
    for uid in uids:
        exported(scripted, uid)
    ScriptedConnector.reset(
        [
            page(
                *(
                    obj(
                        "person",
                        f"uuid-{uid}",
                        dn=f"uid={uid},ou=people,dc=example,dc=org",
                        cn=uid,
                        sn=uid,
                    )
                    for uid in uids
                )
            )
        ]
    )
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable is kept here
    try:
        activity = run(scripted)
        gc.collect()
        cyclic = [
            type(o).__name__
            for o in gc.garbage
            if isinstance(o, PendingExport | PendingExportAttributeChange | ConnectorSpaceObject)
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()

    assert activity.status == "complete"
    assert not PendingExport.objects.exists()  # every export confirmed
    assert cyclic == []
