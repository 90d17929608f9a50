"""Configuration as code: ``jim apply`` and ``jim dump`` (spec: /shared/spec/config.md).

:func:`apply_file` reads a YAML file, checks all of it (shape, then every name against
the file and the database together) and only then writes it, in one transaction. An
invalid file raises :class:`ConfigError` listing every problem with its key path, and
changes nothing. :func:`dump_configuration` prints what is stored in the same format.

The modules: :mod:`.loader` (YAML, line numbers, ``${VAR}``), :mod:`.schema` (the
file's shape), :mod:`.references` (names checked against file + database),
:mod:`.apply` (writing), :mod:`.dump` (reading back), :mod:`.secrets` (how secrets'
variables are remembered), :mod:`.budget_check` (``--check``'s warnings about
expressions that exceed their budget on current data). :func:`preview_source` is
``--preview``: the file applied in :mod:`runs.config_preview`'s rolled-back syncs.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction

from jim_project.configuration.apply import Applier, Change, Report
from jim_project.configuration.budget_check import budget_warnings
from jim_project.configuration.dump import dump_configuration
from jim_project.configuration.errors import ConfigError, Problem, Problems
from jim_project.configuration.loader import Source, expand_environment, read_source
from jim_project.configuration.references import Outcome, Stored, check_references
from jim_project.configuration.schema import Configuration, read_declarations
from runs.config_preview import SAMPLES, ChangeEffect, preview_change

__all__ = [
    "Change",
    "ConfigError",
    "Configuration",
    "Problem",
    "Report",
    "apply_file",
    "apply_source",
    "check_source",
    "dump_configuration",
    "preview_source",
]


def declarations(
    source: Source, problems: Problems, environ: Mapping[str, str] | None = None
) -> Configuration:
    """Check a parsed file's shape (problems are added to ``problems``)."""
    expanded = expand_environment(source.document, environ)
    return read_declarations(expanded.document, problems, expanded.uses, str(source.base_dir))


def apply_source(
    source: Source,
    *,
    prune: bool = False,
    check: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """Check and apply a parsed file in one transaction (rolled back with ``check``).

    With ``check``, the report's notes also warn about expressions that exceed their
    budget on a sample of the stored objects (:mod:`.budget_check`).

    Raises :class:`ConfigError` — with nothing changed — when the file is invalid,
    listing every problem (of shape and of names), in the order of the file.
    """
    with transaction.atomic():
        config = check_source(source, prune=prune, environ=environ)
        report = Applier(config, prune=prune).run()
        if check:
            report.notes.extend(budget_warnings(config))
            transaction.set_rollback(True)
    return report


def check_source(
    source: Source, *, prune: bool = False, environ: Mapping[str, str] | None = None
) -> Configuration:
    """Check a parsed file — its shape, then every name against the file and the
    database together — and return the configuration to apply
    (``Applier(config, prune=prune).run()``). Raises :class:`ConfigError` listing
    every problem, in the order of the file."""
    problems = Problems(source.lines)
    config = declarations(source, problems, environ)
    check_references(config, Outcome(config, Stored.load(), prune=prune), problems)
    problems.raise_if_any()
    return config


def preview_source(
    source: Source,
    *,
    prune: bool = False,
    environ: Mapping[str, str] | None = None,
    samples: int = SAMPLES,
    actor_name: str = "",
) -> tuple[Report, ChangeEffect]:
    """``jim apply --preview``: check a parsed file, then what applying it would change
    in the configuration (as with ``check``) and do to the current data
    (:func:`runs.config_preview.preview_change`). Nothing is changed.

    Raises :class:`ConfigError` when the file is invalid, before anything runs, and
    :class:`~runs.config_preview.PreviewNotRun` when the preview cannot run.
    """
    config = check_source(source, prune=prune, environ=environ)

    def apply() -> Report:
        report = Applier(config, prune=prune).run()
        report.notes.extend(budget_warnings(config))
        return report

    return preview_change(apply, samples=samples, actor_name=actor_name)


def apply_file(
    path: str,
    *,
    prune: bool = False,
    check: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """Read, check and apply the file at ``path`` (``-``: standard input)."""
    return apply_source(read_source(path), prune=prune, check=check, environ=environ)
