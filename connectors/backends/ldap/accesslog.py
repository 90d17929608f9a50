"""What OpenLDAP's accesslog says happened in a delta's window, folded per entry: several
changes of one entry are one, a delete wins over earlier changes, a rename or move is
followed to the entry's new DN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.base import ObjectTypeSpec
from core.dn import DNError, first_rdn, normalise_dn, split_dn


@dataclass
class LoggedEntry:
    """What the accesslog says happened to one entry in the delta's window."""

    uuid: str | None
    dn: str
    deleted: bool = False
    #: Every DN the entry had in the window (a rename or move changes it).
    dns: list[str] = field(default_factory=list)


def time_order(value: str) -> str:
    """A sortable form of a GeneralizedTime in UTC (the accesslog's and modifyTimestamp's)."""
    return value.rstrip("Z").replace(",", ".")


def entry_key(uuid: str | None, dn: str | None) -> str:
    if uuid:
        return uuid.lower()
    try:
        return normalise_dn(dn or "")
    except DNError:
        return (dn or "").lower()


def fold_log(records: list[dict[str, str]]) -> list[LoggedEntry]:
    """One :class:`LoggedEntry` per entry the log records changed, in first-seen order."""
    entries: dict[str, LoggedEntry] = {}
    for record in records:
        dn = record.get("reqDN", "")
        uuid = (record.get("reqEntryUUID") or "").lower() or None
        key = entry_key(uuid, dn)
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = LoggedEntry(uuid, dn)
        entry.dns.append(dn)
        kind = record.get("reqType")
        if kind == "delete":
            entry.deleted, entry.dn = True, dn
        elif kind == "modrdn":
            new_dn = record.get("reqNewDN") or _renamed_dn(record)
            entry.dn = new_dn
            entry.dns.append(new_dn)
            if not uuid:  # followed by the new name from now on
                entries[entry_key(None, new_dn)] = entries.pop(key)
        else:
            entry.deleted, entry.dn = False, dn
    return list(entries.values())


def _renamed_dn(record: dict[str, str]) -> str:
    """The DN after a modrdn, from ``reqNewRDN`` and ``reqNewSuperior`` (older servers)."""
    try:
        _, parent = split_dn(record["reqDN"])
    except (DNError, KeyError):
        parent = ""
    parent = record.get("reqNewSuperior") or parent
    rdn = record.get("reqNewRDN", "")
    return f"{rdn},{parent}" if parent else rdn


def deleted_external_id(spec: ObjectTypeSpec, entry: LoggedEntry, dn: str) -> str | None:
    """The external id of a deleted entry: its entryUUID, its DN, or its RDN's value
    when the external id attribute names the entry; None when the log cannot say."""
    id_attribute = spec.external_id_attribute.lower()
    if id_attribute == "entryuuid":
        return entry.uuid
    if id_attribute == "dn":
        return dn
    try:
        rdn = first_rdn(dn)
    except DNError:
        return None
    return next((value for kind, value in rdn if kind.lower() == id_attribute), None)
