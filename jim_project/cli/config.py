"""``jim apply FILE [--check] [--prune]`` and ``jim dump [--output FILE]``.

Exit status of ``apply``: 0 applied (or, with ``--check``, valid); 2 the file is
invalid or cannot be read — every problem is printed on stderr, one per line, each
naming its key path — and nothing was changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from jim_project.configuration import ConfigError, apply_file, dump_configuration

EXIT_OK = 0
EXIT_INVALID = 2


class ApplyCommand:
    name = "apply"
    help = "Validate a configuration file, then create or update everything it names."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", help="The YAML configuration file (- for standard input).")
        parser.add_argument(
            "--check", action="store_true", help="Validate only, and show what would change."
        )
        parser.add_argument(
            "--prune", action="store_true", help="Also remove what the file no longer names."
        )

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        name = options["file"]
        check = bool(options.get("check"))
        try:
            report = apply_file(name, prune=bool(options.get("prune")), check=check)
        except ConfigError as exc:
            count = len(exc.problems)
            stderr.write(
                f"jim apply: {name} is invalid ({count} problem{'s' if count != 1 else ''}); "
                "nothing was changed.\n"
            )
            for problem in exc.problems:
                stderr.write(f"{problem}\n")
            return EXIT_INVALID
        except (DatabaseError, ImproperlyConfigured) as exc:
            stderr.write(f"jim apply: {name} was not applied; nothing was changed: {exc}\n")
            return EXIT_INVALID
        for note in report.notes:
            stderr.write(f"{note}\n")
        for change in report.changes:
            stdout.write(f"{change.describe(planned=check)}\n")
        if check:
            stdout.write(
                f"{name}: valid; applying it would give {report.summary()} (nothing changed).\n"
            )
        elif report.changes:
            stdout.write(f"Applied {name}: {report.summary()}.\n")
        else:
            stdout.write(f"Applied {name}: no changes, the configuration already matches.\n")
        return EXIT_OK


class DumpCommand:
    name = "dump"
    help = "Print the current configuration in the format jim apply reads."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--output",
            "-o",
            metavar="FILE",
            help="Write to FILE instead of standard output (base_dir is then written "
            "only where it differs from FILE's folder).",
        )

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        output = options.get("output")
        if not output:
            stdout.write(dump_configuration())
            return EXIT_OK
        path = Path(output)
        text = dump_configuration(output_dir=path.resolve().parent)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            stderr.write(f"jim dump: cannot write {output}: {exc.strerror}\n")
            return EXIT_INVALID
        stderr.write(f"Wrote {output}\n")
        return EXIT_OK
