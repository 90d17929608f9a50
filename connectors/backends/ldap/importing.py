"""Full and delta import: the searches that read entries page by page, and the
watermark that the next delta import starts from.

A full import is one paged subtree search per object type, the next page requested
while the processor works on the current one. A delta reads OpenLDAP's accesslog
after the watermark, folds it per entry (:mod:`connectors.backends.ldap.accesslog`)
and re-reads the changed entries (or, with ``modify_timestamp``, re-reads the entries
changed since the watermark; with ``usn``, Active Directory's
:mod:`connectors.backends.ldap.usn`); :mod:`connectors.backends.ldap.entries` turns what is
read into import objects. The watermark is found by size-limited probes
(:mod:`connectors.backends.ldap.newest`), never a paged or unlimited search.
docs/connectors/ldap.md describes it all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars

from connectors.backends.ldap.accesslog import (
    LoggedEntry,
    deleted_external_id,
    entry_key,
    fold_log,
    time_order,
)
from connectors.backends.ldap.entries import EntryReader, page_of, pages_of
from connectors.backends.ldap.newest import MICROSECOND, SECOND, Probe, find_newest
from connectors.backends.ldap.ranges import multivalued_ranges, range_size
from connectors.backends.ldap.schema import OPERATIONAL_ATTRIBUTES
from connectors.backends.ldap.session import Session
from connectors.backends.ldap.transport import SIZE_LIMIT_EXCEEDED
from connectors.backends.ldap.usn import UsnDelta
from connectors.backends.ldap.values import raw_values
from connectors.base import (
    ConnectorConfigurationError,
    ConnectorError,
    ImportObject,
    ImportPage,
    ImportStream,
    ObjectTypeSpec,
)
from core.dn import DNError, is_within, normalise_dn

#: EntryUUIDs per ``(|(entryUUID=…)…)`` filter when re-reading changed entries.
REREAD_BATCH = 200
#: Entries a newest-value probe asks for at most (connectors/backends/ldap/newest.py):
#: below directories' size limits (OpenLDAP's default is 500), and enough that a
#: bisection meets a window it can read whole early.
NEWEST_PROBE_LIMIT = 200


class Importer:
    """The imports of one session: full, accesslog delta, modifyTimestamp delta."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.settings = session.settings
        #: Probes the last search for a newest value took (the benchmark reports it).
        self.newest_probes = 0
        self.usn = UsnDelta(session, self._attributes_to_read)

    def import_objects(
        self,
        object_types: list[ObjectTypeSpec],
        *,
        delta: bool,
        persisted_data: dict[str, Any],
        page_size: int | None = None,
    ) -> ImportStream:
        """Start a full or delta import; the watermark is taken before the first page."""
        if not object_types:
            raise ConnectorConfigurationError("No object type was selected for import.")
        page_size = page_size or self.settings.number("page_size")
        containers = {spec.container or self.settings.base_dn for spec in object_types}
        for container in sorted(containers):
            self.session.require_entry(container, "container")
        readers = [EntryReader(spec, self.session.schema()) for spec in object_types]
        if not delta:
            watermark = self.watermark()
            return ImportStream(watermark=watermark, pages=self._full_pages(readers, page_size))
        method = self.settings.delta_method()
        if method == "none":
            raise ConnectorConfigurationError(
                "delta_method is none: this connected system has no delta import; "
                "run a full import (or set delta_method to accesslog, modify_timestamp or usn)."
            )
        if method == "accesslog":
            self._require_accesslog()
        if persisted_data.get("delta_method") != method:
            raise ConnectorError(
                f"There is no {method} watermark yet (the last full import was made "
                + (
                    f"with delta_method {persisted_data['delta_method']}"
                    if persisted_data.get("delta_method")
                    else "before any watermark was kept"
                )
                + "); run a full import first."
            )
        if method == "accesslog":
            return self._accesslog_delta(readers, persisted_data, page_size)
        if method == "usn":
            return self.usn.delta(readers, persisted_data, page_size)
        return self._timestamp_delta(readers, persisted_data, page_size)

    def _attributes_to_read(self, reader: EntryReader) -> list[str]:
        """All user attributes, entryUUID, modifyTimestamp and declared operational ones."""
        wanted = ["*", *OPERATIONAL_ATTRIBUTES]
        for name in reader.spec.attributes:
            attribute = self.session.schema().attribute(name)
            if attribute is not None and attribute.operational and attribute.name not in wanted:
                wanted.append(attribute.name)
        wanted.extend(multivalued_ranges(reader.spec, range_size(self.settings)))
        return wanted

    def _full_pages(self, readers: list[EntryReader], page_size: int) -> Iterator[ImportPage]:
        return self._pages(readers, page_size, condition="", reading="reading")

    def _pages(
        self, readers: list[EntryReader], page_size: int, *, condition: str, reading: str
    ) -> Iterator[ImportPage]:
        """Every entry of each reader's object class (and ``condition``), in pages."""
        for reader in readers:
            spec = reader.spec
            base = spec.container or self.settings.base_dn
            object_class = f"(objectClass={escape_filter_chars(spec.name)})"
            search_filter = f"(&{object_class}{condition})" if condition else object_class
            what = f"{reading} {spec.name} entries under {base!r}"
            attributes = self._attributes_to_read(reader)
            for entries in self.session.paged_search(
                base, search_filter, attributes, page_size, what
            ):
                yield page_of(reader, entries)

    def watermark(self) -> dict[str, Any]:
        """The watermark of an import starting now (for the next delta import)."""
        method = self.settings.delta_method()
        if method == "accesslog":
            if not self._accesslog_readable():
                return {}
            newest = self._newest(
                self.settings.accesslog_base,
                "(&(objectClass=auditWriteObject)(reqResult=0))",
                "reqStart",
                None,
                "the accesslog",
                precision=MICROSECOND,
            )
            return {"delta_method": method, "req_start": newest}
        if method == "modify_timestamp":
            newest = self._newest(
                self.settings.base_dn,
                "(objectClass=*)",
                "modifyTimestamp",
                None,
                "modify times",
                precision=SECOND,
            )
            return {"delta_method": method, "modify_timestamp": newest}
        if method == "usn":
            return self.usn.watermark()
        return {}

    def _accesslog_readable(self) -> bool:
        base = self.settings.accesslog_base
        message_id = self.session.send_search(
            base, "(objectClass=*)", ["1.1"], scope=ldap3.BASE, what=f"reading {base!r}"
        )
        response = self.session.wait(message_id, f"reading the accesslog {base!r}")
        return response.ok and bool(response.entries)

    def _require_accesslog(self) -> None:
        if not self._accesslog_readable():
            raise ConnectorConfigurationError(
                f"The accesslog {self.settings.accesslog_base!r} cannot be read on "
                f"{self.settings.url} by {self.settings.who()}: enable OpenLDAP's accesslog "
                "overlay and let the bind DN read it (or set accesslog_base), or set "
                "delta_method: modify_timestamp (which cannot see deletes)."
            )

    def _newest(
        self,
        base: str,
        search_filter: str,
        attribute: str,
        since: str | None,
        what: str,
        *,
        precision: int,
    ) -> str | None:
        """The greatest GeneralizedTime value of ``attribute`` under ``base``, or
        ``since`` when nothing is newer (None: nothing at all).

        Found by :func:`~connectors.backends.ldap.newest.find_newest`: searches for the
        values from a time on, each asking for at most NEWEST_PROBE_LIMIT entries, their
        number bounded whatever the size of the log — never a paged or unlimited search.
        """
        what = f"looking for the newest {attribute} in {what}"

        def probe(lower: str | None) -> Probe:
            condition = f"({attribute}>={escape_filter_chars(lower)})" if lower else ""
            message_id = self.session.send_search(
                base,
                f"(&{search_filter}{condition})",
                [attribute],
                size_limit=NEWEST_PROBE_LIMIT,
                what=what,
            )
            response = self.session.wait(message_id, what)
            complete = response.code != SIZE_LIMIT_EXCEEDED
            if complete:
                self.session.check_search(response, base, what)
            values = [
                raw.decode("ascii", "replace")
                for entry in response.entries
                for raw in raw_values(entry, attribute)
            ]
            if not complete and not values:
                raise ConnectorError(
                    f"{self.settings.url} stopped {what}: its size limit was exceeded before any "
                    f"entry was returned ({response.describe()}); let {self.settings.who()} read "
                    "a few hundred entries per search"
                )
            return Probe(values, complete)

        try:
            newest = find_newest(probe, precision=precision, since=since)
        except ValueError as exc:
            raise ConnectorError(f"{self.settings.url}: {what}: {exc}") from None
        self.newest_probes = newest.probes
        return newest.value

    def _accesslog_delta(
        self, readers: list[EntryReader], persisted: dict[str, Any], page_size: int
    ) -> ImportStream:
        if "req_start" not in persisted:
            raise ConnectorError("There is no accesslog watermark yet; run a full import first.")
        since: str | None = persisted["req_start"]
        if since is not None:
            self._require_log_entry(since)
        log = self._read_log(since)
        newest = max((r["reqStart"] for r in log), key=time_order, default=since)
        entries = fold_log(log)
        watermark = {"delta_method": "accesslog", "req_start": newest}
        return ImportStream(
            watermark=watermark, pages=self._delta_pages(readers, entries, page_size)
        )

    def _require_log_entry(self, since: str) -> None:
        """Fail when the log no longer holds the watermark: changes may have been purged."""
        dn = f"reqStart={since},{self.settings.accesslog_base}"
        if not self.session.search(
            dn,
            "(objectClass=*)",
            ["1.1"],
            scope=ldap3.BASE,
            what="reading the watermark's log entry",
            missing_ok=True,
        ):
            raise ConnectorError(
                f"The accesslog {self.settings.accesslog_base!r} no longer holds the entry of "
                f"the last watermark ({since}); changes since then may have been purged from "
                "the log. Run a full import."
            )

    def _read_log(self, since: str | None) -> list[dict[str, str]]:
        """The successful writes logged after ``since``, oldest first (small dicts)."""
        condition = f"(reqStart>={since})" if since else ""
        search_filter = f"(&(objectClass=auditWriteObject)(reqResult=0){condition})"
        wanted = [
            "reqStart",
            "reqType",
            "reqDN",
            "reqEntryUUID",
            "reqNewRDN",
            "reqNewSuperior",
            "reqNewDN",
        ]
        records = []
        for entries in self.session.paged_search(
            self.settings.accesslog_base,
            search_filter,
            wanted,
            self.settings.number("page_size"),
            "reading the accesslog",
        ):
            for entry in entries:
                record = {
                    name: values[0].decode("utf-8", "replace")
                    for name in wanted
                    if (values := raw_values(entry, name))
                }
                if record.get("reqStart") and record["reqStart"] != since:
                    records.append(record)
        records.sort(key=lambda r: time_order(r["reqStart"]))
        return records

    def _delta_pages(
        self, readers: list[EntryReader], logged: list[LoggedEntry], page_size: int
    ) -> Iterator[ImportPage]:
        """Deletes first, then the re-read entries, then the entries that left the scope."""
        containers = [
            (normalise_dn(reader.spec.container or self.settings.base_dn), reader)
            for reader in readers
        ]
        deletes: list[ImportObject] = []
        #: Changed entries that were in scope, and their delete should they have left it.
        changed: list[tuple[LoggedEntry, ImportObject]] = []
        for entry in logged:
            delete = self._delete_object(entry, containers)
            if delete is None:
                continue  # never in a selected container
            if entry.deleted:
                deletes.append(delete)
            else:
                changed.append((entry, delete))
        yield from pages_of(deletes, page_size)
        found: set[str] = set()
        batch_size = max(1, min(page_size, REREAD_BATCH))
        for reader in readers:
            yield from self._reread(reader, [entry for entry, _ in changed], batch_size, found)
        # Changed entries that no selected type returned: renamed or moved out of scope.
        left = [delete for entry, delete in changed if entry_key(entry.uuid, entry.dn) not in found]
        yield from pages_of(left, page_size)

    def _reread(
        self, reader: EntryReader, changed: list[LoggedEntry], batch_size: int, found: set[str]
    ) -> Iterator[ImportPage]:
        """The current state of changed entries of one object type, batch by batch;
        adds the key of every entry read to ``found``."""
        spec = reader.spec
        base = spec.container or self.settings.base_dn
        class_filter = f"(objectClass={escape_filter_chars(spec.name)})"
        attributes = self._attributes_to_read(reader)
        by_uuid = [e.uuid for e in changed if e.uuid]
        by_dn = [e.dn for e in changed if not e.uuid]
        for attribute, values in (("entryUUID", by_uuid), ("entryDN", by_dn)):
            for start in range(0, len(values), batch_size):
                batch = values[start : start + batch_size]
                alternatives = "".join(f"({attribute}={escape_filter_chars(v)})" for v in batch)
                entries = self.session.search(
                    base,
                    f"(&{class_filter}(|{alternatives}))",
                    attributes,
                    what=f"re-reading changed {spec.name} entries under {base!r}",
                )
                for entry in entries:
                    uuids = raw_values(entry, "entryUUID")
                    found.add(entry_key(uuids[0].decode() if uuids else None, entry["dn"]))
                    found.add(entry_key(None, entry["dn"]))
                if entries:
                    yield page_of(reader, entries)

    def _delete_object(
        self, entry: LoggedEntry, containers: list[tuple[str, EntryReader]]
    ) -> ImportObject | None:
        """A delete for an entry that was in a selected container (None otherwise)."""
        best: tuple[int, EntryReader, str] | None = None
        for dn in entry.dns or [entry.dn]:
            try:
                key = normalise_dn(dn)
            except DNError:
                continue
            for container_key, reader in containers:
                if is_within(key, container_key) and (best is None or len(container_key) > best[0]):
                    best = (len(container_key), reader, dn)
        if best is None:
            return None
        _, reader, dn = best
        return ImportObject(
            object_type=reader.spec.name,
            attributes={},
            change="delete",
            external_id=deleted_external_id(reader.spec, entry, dn),
            secondary_external_id=dn,
            location=f"{self.settings.accesslog_base}: {dn}",
        )

    def _timestamp_delta(
        self, readers: list[EntryReader], persisted: dict[str, Any], page_size: int
    ) -> ImportStream:
        since = persisted.get("modify_timestamp")
        newest = self._newest(
            self.settings.base_dn,
            "(objectClass=*)",
            "modifyTimestamp",
            since,
            "modify times",
            precision=SECOND,
        )
        watermark = {"delta_method": "modify_timestamp", "modify_timestamp": newest}
        return ImportStream(
            watermark=watermark, pages=self._timestamp_pages(readers, since, page_size)
        )

    def _timestamp_pages(
        self, readers: list[EntryReader], since: str | None, page_size: int
    ) -> Iterator[ImportPage]:
        condition = f"(modifyTimestamp>={escape_filter_chars(since)})" if since else ""
        return self._pages(readers, page_size, condition=condition, reading="reading changed")
