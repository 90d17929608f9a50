"""`jim mvo`: the manual actions on a metaverse object (:mod:`runs.mvo_actions`) from
the command line, as the console's and the API's buttons do them.

``jim mvo ACTION [MVO_ID] [--cso ID] --user USERNAME [--reason TEXT] [--json]``:

* ``delete MVO_ID`` and ``re-evaluate MVO_ID``;
* ``disconnect MVO_ID --cso ID``;
* ``rejoin [MVO_ID] --cso ID``: without MVO_ID, to the MVO the CSO was disconnected from;
* ``release --cso ID``: hand the CSO back to sync (no MVO_ID).

``--user`` names who acts (on the audit trail, and the activity's initiator); they must
hold the permission the console asks (``metaverse.manage_metaverseobject``). Exit status
as ``jim run``'s: 0 complete, 1 complete with object-level errors, 2 failed or refused
(unknown object or user, no permission, an action that cannot be done, a sync running)
— refused, nothing was done or recorded. ``--json`` prints the activity's summary, the
one ``jim run --json`` prints.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from django.contrib.auth import get_user_model

from access.roles import MANAGE_MVO_PERMISSION
from connectors.choices import ActivityStatus
from connectors.models import Activity, ConnectorSpaceObject
from jim_project.cli.run import EXIT_BY_STATUS, EXIT_FAILED, write_summary
from metaverse.models import MetaverseObject
from runs import mvo_actions
from runs.runner import AlreadyRunning, activity_summary

#: The actions on one CSO, which need ``--cso``.
ON_A_CSO = (mvo_actions.DISCONNECT, mvo_actions.REJOIN, mvo_actions.RELEASE)


class Refused(Exception):
    """The command does nothing (the message says why)."""


class MvoCommand:
    name = "mvo"
    help = (
        "A manual action on a metaverse object: delete it now, disconnect one of its "
        "connector space objects, re-evaluate it, re-join a connector space object "
        "disconnected by hand, or release one to sync."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=mvo_actions.ACTIONS, help="What to do.")
        parser.add_argument(
            "mvo",
            nargs="?",
            type=int,
            metavar="MVO_ID",
            help="The metaverse object's id (rejoin: default the one the connector space "
            "object was disconnected from; release: none).",
        )
        parser.add_argument(
            "--cso",
            type=int,
            metavar="ID",
            help="The connector space object's id (disconnect, rejoin, release).",
        )
        parser.add_argument(
            "--user",
            required=True,
            help=f"Who acts: a user holding {MANAGE_MVO_PERMISSION}.",
        )
        parser.add_argument("--reason", default="", help="Why (kept on the audit trail).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        try:
            activity = self._act(options)
        except (Refused, ValueError) as exc:
            stderr.write(f"jim: {exc}; nothing was done\n")
            return EXIT_FAILED
        except AlreadyRunning as exc:
            stderr.write(f"jim: {exc}\n")
            return EXIT_FAILED
        summary = activity_summary(activity)
        if options.get("json"):
            stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        else:
            write_summary(summary, stdout)
        if activity.status == ActivityStatus.FAILED:
            stderr.write(f"jim: {activity.profile_name} failed: {activity.message}\n")
        return EXIT_BY_STATUS.get(activity.status, EXIT_FAILED)

    def _act(self, options: dict[str, Any]) -> Activity:
        action, mvo_id, cso_id = options["action"], options.get("mvo"), options.get("cso")
        reason = (options.get("reason") or "").strip()
        user = _user(options["user"])
        if action in ON_A_CSO and cso_id is None:
            raise Refused(f"jim mvo {action} needs --cso ID")
        if action not in ON_A_CSO and cso_id is not None:
            raise Refused(f"jim mvo {action} takes no --cso")
        if action == mvo_actions.RELEASE and mvo_id is not None:
            raise Refused("jim mvo release takes no MVO_ID: it releases the --cso to sync")
        if mvo_id is None and action not in (mvo_actions.REJOIN, mvo_actions.RELEASE):
            raise Refused(f"jim mvo {action} needs MVO_ID")
        mvo = _mvo(mvo_id) if mvo_id is not None else None
        cso = _cso(cso_id) if cso_id is not None else None
        if action == mvo_actions.DELETE:
            assert mvo is not None
            return mvo_actions.delete_now(mvo, user, reason)
        if action == mvo_actions.RE_EVALUATE:
            assert mvo is not None
            return mvo_actions.re_evaluate(mvo, user, reason)
        assert cso is not None
        if action == mvo_actions.DISCONNECT:
            assert mvo is not None
            return mvo_actions.disconnect(mvo, cso, user, reason)
        if action == mvo_actions.REJOIN:
            return mvo_actions.rejoin(cso, mvo, user, reason)
        return mvo_actions.release(cso, user, reason)


def _user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise Refused(f"no user named {username!r}")
    if not (user.is_active and user.has_perm(MANAGE_MVO_PERMISSION)):
        raise Refused(
            f"{username} may not act on metaverse objects (needs {MANAGE_MVO_PERMISSION}, "
            "which the Administrators role holds)"
        )
    return user


def _mvo(pk: int) -> MetaverseObject:
    mvo = MetaverseObject.objects.filter(pk=pk).first()
    if mvo is None:
        raise Refused(f"there is no metaverse object {pk}")
    return mvo


def _cso(pk: int) -> ConnectorSpaceObject:
    cso = (
        ConnectorSpaceObject.objects.select_related("connected_system", "object_type")
        .filter(pk=pk)
        .first()
    )
    if cso is None:
        raise Refused(f"there is no connector space object {pk}")
    return cso
