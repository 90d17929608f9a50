"""``python manage.py jim SUBCOMMAND …``: a thin dispatcher over :mod:`jim_project.cli`.

Each subcommand parses its own arguments and returns its exit status; this command
exits with that status (``SystemExit``) when it is not 0.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from django.core.management.base import BaseCommand, OutputWrapper

from audit.context import using
from audit.models import Via
from jim_project.cli import COMMANDS, load_subcommand
from jim_project.cli.run import os_user


def _plain(stream: OutputWrapper) -> TextIO:
    """The stream under Django's wrapper, which would add line ends to partial writes."""
    return getattr(stream, "_out", stream)


class Command(BaseCommand):
    help = "JIM: apply and dump the configuration, run profiles, act on pending exports."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for name in COMMANDS:
            subcommand = load_subcommand(name)
            subparser = subparsers.add_parser(
                name, help=subcommand.help, description=subcommand.help
            )
            subcommand.add_arguments(subparser)

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = load_subcommand(options["subcommand"])
        with using(via=Via.CLI, actor_name=os_user()):  # the audit trail's "who"
            status = subcommand.handle(options, _plain(self.stdout), _plain(self.stderr))
        if status:
            raise SystemExit(status)
