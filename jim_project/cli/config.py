"""``jim apply FILE [--check | --preview [--json]] [--prune]`` and ``jim dump [--output FILE]``.

Exit status of ``apply``: 0 applied (or, with ``--check``, valid; with ``--preview``,
previewed, whatever the preview found); 2 the file is invalid or cannot be read —
every problem is printed on stderr, one per line, each naming its key path — and
nothing was changed, or the preview could not run (a sync running, a sync failing:
one line on stderr naming the system and the cause). ``--check`` and ``--preview``
together are refused (exit 2): ``--preview`` prints what ``--check`` prints, then the
effect on the data (:mod:`runs.config_preview`, docs/previews.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from jim_project.cli.run import os_user
from jim_project.configuration import (
    ConfigError,
    Report,
    apply_file,
    dump_configuration,
    preview_source,
)
from jim_project.configuration.loader import read_source
from runs.config_preview import SAMPLES, ChangeEffect, PreviewNotRun, Tally

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
        parser.add_argument(
            "--preview",
            action="store_true",
            help="Change nothing; show what the new configuration would do to the current "
            "data (full syncs of every system, rolled back).",
        )
        parser.add_argument(
            "--json", action="store_true", help="With --preview: print one JSON object."
        )
        parser.add_argument(
            "--samples",
            type=int,
            default=SAMPLES,
            metavar="N",
            help=f"With --preview: how many examples of each kind of change (default {SAMPLES}).",
        )

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        name = options["file"]
        check = bool(options.get("check"))
        if options.get("preview"):
            if check:
                stderr.write(
                    "jim apply: --check and --preview go alone: --preview prints what --check "
                    "prints, then what the change would do to the data; nothing was changed.\n"
                )
                return EXIT_INVALID
            return self._preview(name, options, stdout, stderr)
        if options.get("json"):
            stderr.write("jim apply: --json goes with --preview; nothing was changed.\n")
            return EXIT_INVALID
        try:
            report = apply_file(name, prune=bool(options.get("prune")), check=check)
        except ConfigError as exc:
            _invalid(name, exc, stderr)
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

    def _preview(self, name: str, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        prune = bool(options.get("prune"))
        try:
            report, effect = preview_source(
                read_source(name),
                prune=prune,
                samples=max(0, options.get("samples", SAMPLES)),
                actor_name=os_user(),
            )
        except ConfigError as exc:
            _invalid(name, exc, stderr)
            return EXIT_INVALID
        except (PreviewNotRun, DatabaseError, ImproperlyConfigured) as exc:
            stderr.write(f"jim apply: the preview of {name} could not run: {exc}\n")
            return EXIT_INVALID
        for note in report.notes:
            stderr.write(f"{note}\n")
        if options.get("json"):
            stdout.write(json.dumps(preview_json(name, prune, report, effect)) + "\n")
        else:
            stdout.writelines(f"{line}\n" for line in preview_lines(name, report, effect))
        return EXIT_OK


def _invalid(name: str, exc: ConfigError, stderr: TextIO) -> None:
    count = len(exc.problems)
    stderr.write(
        f"jim apply: {name} is invalid ({count} problem{'s' if count != 1 else ''}); "
        "nothing was changed.\n"
    )
    for problem in exc.problems:
        stderr.write(f"{problem}\n")


# --------------------------------------------------------------------------- --preview


def preview_json(name: str, prune: bool, report: Report, effect: ChangeEffect) -> dict[str, Any]:
    """The JSON object of ``jim apply FILE --preview --json`` (docs/previews.md)."""
    return {
        "file": name,
        "preview": True,
        "prune": prune,
        "configuration": {
            "changes": [
                {"action": c.action, "kind": c.kind, "name": c.name, "keys": list(c.keys)}
                for c in report.changes
            ],
            "summary": {
                "created": report.count("create"),
                "updated": report.count("update"),
                "removed": report.count("remove"),
            },
            "notes": list(report.notes),
        },
        **effect.as_json(),
    }


def preview_lines(name: str, report: Report, effect: ChangeEffect) -> list[str]:
    """``jim apply --preview`` for people: the configuration changes (as ``--check``
    prints them), then their effect on the data, section by section."""
    lines = [change.describe(planned=True) for change in report.changes]
    lines.append(f"{name}: valid; applying it would give {report.summary()}.")
    systems = ", ".join(effect.systems) or "none"
    lines += [
        "",
        f"What it would do to the current data (full syncs of {systems}, compared with the "
        "same syncs under the current configuration):",
    ]
    lines += _section("Sync rule scopes", _scope_lines(effect))
    lines += _section("Metaverse", _metaverse_lines(effect))
    lines += _section("Pending exports", _export_lines(effect))
    lines += _section(f"Deprovisionings: {effect.deprovisionings}", _deprovisioning_lines(effect))
    lines += _section("Errors", _error_lines(effect))
    lines += ["", "Nothing was changed: this was a preview."]
    return lines


def _section(title: str, body: list[str]) -> list[str]:
    return ["", title, *(body or ["  no change"])]


def _counted(tally: Tally, label: str, sample: Any, mark: str = "") -> list[str]:
    """``  label: 3``, then the samples (``sample`` renders one, after ``mark``), then
    how many more there are."""
    if not tally.count:
        return []
    return [f"  {label}: {tally.count}", *_samples(tally, sample, mark)]


def _samples(tally: Tally, sample: Any, mark: str = "") -> list[str]:
    lines = [f"    {mark}{sample(s)}" for s in tally.samples]
    if tally.count > len(tally.samples):
        lines.append(f"    {mark}… and {tally.count - len(tally.samples)} more")
    return lines


def _scope_lines(effect: ChangeEffect) -> list[str]:
    lines = []
    for change in effect.scope.values():
        side = "import from" if change.direction == "import" else "export to"
        lines.append(
            f"  {change.rule} ({side} {change.system}): {change.entering.count} entering, "
            f"{change.leaving.count} leaving"
        )
        lines += _samples(change.entering, str, "+ ")
        lines += _samples(change.leaving, str, "- ")
    return lines


def _metaverse_lines(effect: ChangeEffect) -> list[str]:
    lines = _counted(effect.mvos_created, "objects projected", lambda s: s["object"])
    for (object_type, attribute), tally in sorted(effect.attributes.items()):
        lines += _counted(tally, f"{object_type}.{attribute} changes", _before_after)
    return lines


def _export_lines(effect: ChangeEffect) -> list[str]:
    lines = []
    for what, exports in effect.exports.items():
        per_system = "; ".join(
            f"{system}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if n)
            for system, counts in sorted(exports.by_system.items())
        )
        lines += _counted(exports, f"{what} ({per_system})", _export_sample)
    for (system, object_type, attribute), tally in sorted(effect.exported_attributes.items()):
        lines += _counted(tally, f"{system} {object_type}.{attribute} changes", _before_after)
    return lines


def _deprovisioning_lines(effect: ChangeEffect) -> list[str]:
    return [
        *_counted(effect.deletes, "target objects deleted", _export_sample),
        *_counted(effect.disables, "target objects disabled", _export_sample),
        *_counted(
            effect.disconnections,
            "disconnections",
            lambda s: f"{s['system']} {s['target']} from {s['object']}",
        ),
        *_counted(effect.mvos_deleted, "metaverse objects deleted", lambda s: s["object"]),
        *_counted(
            effect.mvos_scheduled,
            "metaverse objects scheduled for deletion",
            lambda s: s["object"],
        ),
    ]


def _error_lines(effect: ChangeEffect) -> list[str]:
    def error(s: dict[str, str]) -> str:
        return f"{s['system']} {s['external_id']}: {s['error_type']}: {s['message']}"

    return [
        *_counted(effect.new_errors, "new object errors", error),
        *_counted(effect.resolved_errors, "object errors gone", error),
    ]


def _export_sample(s: dict[str, Any]) -> str:
    was = f" (was {s['was']})" if s.get("was") else ""
    named = f" — {s['object']}" if s.get("object") else ""
    attributes = f": {', '.join(s['attributes'])}" if s.get("attributes") else ""
    return f"{s['change_type']}{was} {s['system']} {s['target']}{named}{attributes}"


def _before_after(s: dict[str, Any]) -> str:
    where = s.get("target") or s["object"]
    named = f" ({s['object']})" if s.get("target") and s.get("object") else ""
    return f"{where}{named}: {_values(s['before'])} → {_values(s['after'])}"


def _values(values: list[Any]) -> str:
    shown = [f"'{v}'" if isinstance(v, str) else str(v) for v in values]
    if not shown:
        return "(none)"
    return shown[0] if len(shown) == 1 else f"[{', '.join(shown)}]"


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
