"""The test run's Samba Active Directory domain controller, shared by its workers.

Samba's LDAP server listens on fixed ports (389 and 636), so a run has one domain
controller, not one per pytest-xdist worker; each test works in its own OU below
:data:`~jim_project.devservers.samba.MANAGED_OU`. The server itself is
:mod:`jim_project.devservers.samba`: provisioned the way production has it, with JIM
binding as the delegated service account, never as Administrator.

How a run shares it:

- the run's first process (the xdist controller, or pytest alone) calls
  :func:`prepare_run` before any worker starts: it stops and removes the domain
  controllers of runs whose process is gone (killed, timed out) and makes the run's
  folder, named in ``JIM_TEST_SAMBA_DIR`` for the workers it starts;
- the first test that needs the DC (:func:`shared_dc`, under a file lock) provisions
  and starts it there (about 10 s), detached from the worker so that it serves the
  others until the end of the run; later tests and workers find it running;
- :func:`finish_run`, in that first process, stops it and deletes the folder — only
  there: a pytest that a test starts (tests/test_rig.py does) inherits the folder's
  name and must leave the run's DC alone.

``JIM_TEST_SAMBA_HOST`` chooses the loopback address (default 127.0.0.1), for two runs
on one machine; the address must exist on ``lo``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from jim_project.devservers import samba as server
from jim_project.devservers.certificates import make_server_certificate
from jim_project.devservers.samba import SambaDC, SambaError
from tests.support import make_private_dir, pid_alive

__all__ = ["SambaDC", "SambaError", "finish_run", "prepare_run", "shared_dc"]

RUN_DIR_VARIABLE = "JIM_TEST_SAMBA_DIR"
#: The id of the process that made the run's folder: only it stops the DC and deletes
#: the folder (a pytest started by a test inherits the variables, not the folder).
OWNER_VARIABLE = "JIM_TEST_SAMBA_OWNER"
HOST = os.environ.get("JIM_TEST_SAMBA_HOST", "127.0.0.1")
ADMIN_PASSWORD = "Jim-test-Admin-Pa55"
SERVICE_PASSWORD = "Dc-test-Service-Pa55"
_KIND = "samba"


def prepare_run() -> None:
    """In the run's first process: clear what killed runs left, make this run's folder."""
    _remove_stale_runs()
    if RUN_DIR_VARIABLE not in os.environ:
        os.environ[RUN_DIR_VARIABLE] = str(make_private_dir(_KIND))
        os.environ[OWNER_VARIABLE] = str(os.getpid())


def finish_run() -> None:
    """In the process that made the run's folder: stop the run's DC, if one was
    started, and delete the folder."""
    if os.environ.get(OWNER_VARIABLE) != str(os.getpid()):
        return
    del os.environ[OWNER_VARIABLE]
    _destroy(Path(os.environ.pop(RUN_DIR_VARIABLE)))


def shared_dc() -> SambaDC:
    """The run's domain controller, provisioned and started by the first caller."""
    run_dir = Path(os.environ[RUN_DIR_VARIABLE])  # named by prepare_run (tests/conftest.py)
    with (run_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = run_dir / "dc.json"
        if saved.exists():
            dc = SambaDC.load(saved)
        else:
            tls = make_server_certificate(run_dir / "tls", names=("localhost", HOST))
            dc = server.create(
                run_dir / "dc",
                host=HOST,
                admin_password=ADMIN_PASSWORD,
                service_password=SERVICE_PASSWORD,
                certificate=server.Certificate(tls.ca_file, tls.cert_file, tls.key_file),
            )
            dc.detached = True
            dc.save(saved)
        dc.start()  # a no-op while it answers; again after a test stopped it
        return dc


def _remove_stale_runs() -> None:
    """Stop and delete the domain controllers of runs whose first process is gone."""
    for path in Path(tempfile.gettempdir()).glob(f"jim-test-{_KIND}-*-*"):
        pid_text = path.name.split("-")[3]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            _destroy(path)


def _destroy(run_dir: Path) -> None:
    saved = run_dir / "dc.json"
    if saved.exists():
        SambaDC.load(saved).stop()
    shutil.rmtree(run_dir, ignore_errors=True)
