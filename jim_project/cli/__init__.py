"""The subcommands of ``python manage.py jim``, one line each.

A subcommand is a class with ``name``, ``help``, ``add_arguments(parser)`` and
``handle(options, stdout, stderr) -> int`` (the exit status), in a module of this
package. Add one with a line in :data:`COMMANDS`; :mod:`jim_project.management.commands.jim`
does the rest. ``handle`` writes whole lines (ending in ``\\n``) to the plain text
streams it is given, and returns its status rather than raising for an expected
failure, so no traceback reaches the user.
"""

from __future__ import annotations

import argparse
from importlib import import_module
from typing import Any, Protocol, TextIO

#: subcommand name → "module:Class"
COMMANDS: dict[str, str] = {
    "apply": "jim_project.cli.config:ApplyCommand",
    "dump": "jim_project.cli.config:DumpCommand",
    "run": "jim_project.cli.run:RunCommand",
    "activity": "jim_project.cli.run:ActivityCommand",
    "queue": "jim_project.cli.queue:QueueCommand",
    "pending-exports": "jim_project.cli.exports:PendingExportsCommand",
    "approve": "jim_project.cli.exports:ApproveCommand",
    "reject": "jim_project.cli.exports:RejectCommand",
    "retry": "jim_project.cli.exports:RetryCommand",
    "discard": "jim_project.cli.exports:DiscardCommand",
    "rotate-secrets": "jim_project.cli.secrets:RotateSecretsCommand",
    "housekeeping": "jim_project.cli.housekeeping:HousekeepingCommand",
    "mvo": "jim_project.cli.mvo:MvoCommand",
    "undo": "jim_project.cli.undo:UndoCommand",
}


class Subcommand(Protocol):
    """What every ``jim`` subcommand offers."""

    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int: ...


def load_subcommand(name: str) -> Subcommand:
    """An instance of the subcommand registered as ``name``."""
    module_name, class_name = COMMANDS[name].split(":")
    return getattr(import_module(module_name), class_name)()
