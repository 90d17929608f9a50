"""The processor of each run profile type, wired to what it needs from other layers.

Each processor is ``(activity, recorder) -> None`` and reports through the recorder.
The layers below know nothing of each other's work; the wiring is done here: an
import confirms the pending exports of what it reads (``exports``) although the
connector space does not import the exports app.
"""

from __future__ import annotations

from connectors.activity import ActivityRecorder
from connectors.importer import run_delta_import, run_full_import
from connectors.models import Activity
from exports.confirmation import confirm_exports


def full_import(activity: Activity, recorder: ActivityRecorder) -> None:
    run_full_import(activity, recorder, confirm=confirm_exports)


def delta_import(activity: Activity, recorder: ActivityRecorder) -> None:
    run_delta_import(activity, recorder, confirm=confirm_exports)
