"""Fixtures of the Active Directory tests (the domain controller itself, ``ad_ou`` and
``ad_connection`` are in tests/conftest.py).

    big_group_members  (session) the DNs of :data:`MEMBERS` contacts for big groups,
                       made once per run and shared by the run's workers.
    ad_estate          an HR file and the DC configured by `jim apply` as
                       docs/connectors/active-directory.md shows (tests/ad/estate.py).

A group member must be an object of the directory, and Samba adds objects over LDAP at
about 80 a second (each add its own transaction, written to disk): 12,000 would take
minutes. So they are made once per run, under a file lock in the run's folder, by
Samba's own Python bindings on the domain controller's database in ldb's batch mode
(one transaction per thousand adds, without the per-add copy of the index that makes
an add in a big transaction cost more the more it holds) — about a millisecond each.
Samba's tools write its database this way while it runs (``samba-tool`` does).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from jim_project.devservers.samba import SYSTEM_PYTHON, SambaDC
from tests.ad.estate import AdEstate, make_ad_estate
from tests.support.samba import RUN_DIR_VARIABLE

#: Contacts for big groups: 10,000 members and 2,000 more to add.
MEMBERS = 12_000
#: Where they are: outside OU=JIM, so no test's import of its own OU meets them.
MEMBERS_OU = "OU=big-group-members,DC=example,DC=org"


def member_dn(number: int) -> str:
    """The DN of member ``number`` (0 … MEMBERS - 1), as the directory spells it."""
    return f"CN=m{number:05d},{MEMBERS_OU}"


@pytest.fixture(scope="session")
def big_group_members(samba_dc: SambaDC) -> list[str]:
    """The DNs of :data:`MEMBERS` contacts, made once per run (see the module's doc)."""
    samba_dc.start()
    run_dir = Path(os.environ[RUN_DIR_VARIABLE])  # set by the samba_dc fixture's rig
    with (run_dir / "big-group-members.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            [str(SYSTEM_PYTHON), "-c", _MAKE_MEMBERS, str(samba_dc.config_file)],
            input=f"{MEMBERS_OU}\n{MEMBERS}\n",
            capture_output=True,
            text=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            check=False,
        )
    if result.returncode != 0:
        pytest.fail(
            f"Making {MEMBERS} contacts for the big group tests failed:\n"
            f"{result.stdout}{result.stderr}",
            pytrace=False,
        )
    return [member_dn(number) for number in range(MEMBERS)]


#: Run by Debian's python3 on the running DC's database (Samba's bindings): the OU and
#: its contacts, unless an earlier test of the run made them (the OU's description
#: says so once all are there; a half-made OU, from a killed run, is made again).
_MAKE_MEMBERS = """
import sys
import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

ou, count = sys.stdin.read().splitlines()
count = int(count)
done = f"{count} contacts"
lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp,
           options=["batch_mode:1"])
try:
    found = db.search(base=ou, scope=ldb.SCOPE_BASE, attrs=["description"])
except ldb.LdbError as error:
    if error.args[0] != ldb.ERR_NO_SUCH_OBJECT:
        raise
    found = []
if found and str(found[0].get("description", idx=0)) == done:
    sys.exit(0)
if found:
    db.delete(ou, ["tree_delete:1"])
for start in range(0, count, 1000):
    db.transaction_start()
    try:
        if start == 0:
            db.add({"dn": ou, "objectClass": "organizationalUnit"})
        for number in range(start, min(count, start + 1000)):
            db.add({"dn": f"CN=m{number:05d},{ou}", "objectClass": "contact"})
        if start + 1000 >= count:
            db.modify_ldif(f"dn: {ou}\\nchangetype: modify\\nreplace: description\\n"
                           f"description: {done}\\n")
        db.transaction_commit()
    except BaseException:
        db.transaction_cancel()
        raise
"""


@pytest.fixture
def ad_estate(tmp_path, samba_dc, ad_ou, monkeypatch) -> AdEstate:
    return make_ad_estate(tmp_path, samba_dc, ad_ou, monkeypatch)
