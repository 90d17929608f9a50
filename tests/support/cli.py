"""``manage.py jim`` run in the test's own process."""

from __future__ import annotations

import io

from django.core.management import call_command


def jim(*args: str, stderr: io.StringIO | None = None) -> tuple[int, str, str]:
    """Run ``manage.py jim ARGS`` in this process: (exit status, stdout, stderr).

    Pass ``stderr`` to read what the command writes there while it runs (a stream
    that says it is a terminal, for instance)."""
    out, err = io.StringIO(), stderr or io.StringIO()
    try:
        call_command("jim", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()
