"""Active Directory's delta import (``delta_method: usn``): the changes since a
``uSNChanged`` watermark, and the deletions from the Deleted Objects container.

Every write to an AD domain controller gets the next update sequence number (USN) of
that DC, kept in the entry's ``uSNChanged``; the root DSE's ``highestCommittedUSN`` is
the newest one committed. As Microsoft's "Polling for changes using the uSNChanged
attribute" prescribes:

- the watermark is ``highestCommittedUSN``, read before the first page of every
  import (full ones included), with the DC it belongs to (``dsServiceName``) and the
  ``invocationId`` of that DC's database: a change made while an import pages has a
  greater USN, so the next delta reads it again — none is lost;
- a delta reads, per object type, the entries of its container with
  ``uSNChanged >= watermark + 1`` (upserts: created, changed, renamed, moved in or
  within); the entries of its class changed elsewhere in the domain (moved out of
  the container: a delete); and the tombstones changed since
  (``CN=Deleted Objects``, show-deleted control): a delete each, by ``objectGUID``.
  Deletes of objects JIM does not hold are ignored by the import, so a tombstone is
  reported whatever its last parent: an object moved out of the container and then
  deleted between two delta imports is still deleted;
- a watermark the DC no longer knows (another DC, a restored or re-provisioned
  database: its invocationId changed, or ``highestCommittedUSN`` went backwards)
  fails the delta and asks for a full import, as does a service account that
  cannot read the deleted objects: never a delta that silently misses changes.

USNs are per domain controller: the connected system's ``url`` must name one DC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars

from connectors.backends.ldap.entries import EntryReader, page_of
from connectors.backends.ldap.session import Session
from connectors.backends.ldap.transport import INSUFFICIENT_ACCESS, NO_SUCH_OBJECT
from connectors.backends.ldap.values import guid_text, raw_values
from connectors.base import (
    ConnectorConfigurationError,
    ConnectorError,
    ImportObject,
    ImportObjectError,
    ImportPage,
    ImportStream,
)
from core.dn import DNError, build_dn, first_rdn, is_within, normalise_dn

#: LDAP_SERVER_SHOW_DELETED_OID: searches see deleted objects (tombstones).
SHOW_DELETED = ("1.2.840.113556.1.4.417", True, None)
#: AD's default MaxPageSize: a paged search never gets more entries per page.
AD_MAX_PAGE_SIZE = 1000
#: What a tombstone is read for; the object types' external id attributes are added.
TOMBSTONE_ATTRIBUTES = ("objectGUID", "objectClass", "lastKnownParent", "msDS-LastKnownRDN")
_ROOT_ATTRIBUTES = ["highestCommittedUSN", "dsServiceName", "defaultNamingContext"]


@dataclass(frozen=True)
class DirectoryState:
    """Where the directory stands: its newest USN, and the DC and database it is of."""

    usn: int
    #: The DC's ``dsServiceName`` (its NTDS Settings object).
    server: str
    #: The ``invocationId`` of the DC's database (a restore gives it a new one).
    invocation_id: str
    #: ``defaultNamingContext``: the domain, where moved-out entries are looked for.
    domain: str

    def watermark(self) -> dict[str, Any]:
        return {
            "delta_method": "usn",
            "usn": self.usn,
            "server": self.server,
            "invocation_id": self.invocation_id,
        }

    @property
    def deleted_objects(self) -> str:
        return f"CN=Deleted Objects,{self.domain}"


class UsnDelta:
    """The usn watermark, and delta imports from it, on one session."""

    def __init__(
        self, session: Session, attributes_to_read: Callable[[EntryReader], list[str]]
    ) -> None:
        self.session = session
        self.settings = session.settings
        self.attributes_to_read = attributes_to_read

    # -- the watermark ------------------------------------------------------------------

    def state(self) -> DirectoryState:
        """The directory's state now (root DSE, then the DC's invocationId)."""
        url = self.settings.url
        root = self.session.search(
            "", "(objectClass=*)", _ROOT_ATTRIBUTES, scope=ldap3.BASE, what="reading the root DSE"
        )
        values = {
            name: (raw_values(root[0], name) or [b""])[0].decode("utf-8", "replace")
            for name in _ROOT_ATTRIBUTES
            if root
        }
        if not all(values.get(name) for name in _ROOT_ATTRIBUTES):
            raise ConnectorConfigurationError(
                f"{url} is not an Active Directory domain controller (its root DSE has no "
                "highestCommittedUSN, dsServiceName or defaultNamingContext): delta_method "
                "usn needs one; use accesslog or modify_timestamp for other directories."
            )
        try:
            usn = int(values["highestCommittedUSN"])
        except ValueError:
            raise ConnectorError(
                f"{url}: highestCommittedUSN {values['highestCommittedUSN']!r} is not a number"
            ) from None
        server = values["dsServiceName"]
        what = f"reading the invocationId of {server!r}"
        found = self.session.search(
            server, "(objectClass=*)", ["invocationId"], scope=ldap3.BASE, what=what
        )
        raw = raw_values(found[0], "invocationId") if found else []
        if not raw or len(raw[0]) != 16:
            raise ConnectorConfigurationError(
                f"{self.settings.who()} cannot read the invocationId of {server!r} on {url}; "
                "delta_method usn needs it to tell a restored database (let it read the "
                "domain controller's NTDS Settings object, as authenticated users can by default)."
            )
        return DirectoryState(usn, server, guid_text(raw[0]), values["defaultNamingContext"])

    def watermark(self) -> dict[str, Any]:
        """The watermark of an import starting now."""
        return self.state().watermark()

    def _since(self, persisted: dict[str, Any], state: DirectoryState) -> int:
        """The watermark's USN, once it is known to be one of this DC's database."""
        usn = persisted.get("usn")
        if not isinstance(usn, int) or isinstance(usn, bool):
            raise ConnectorError("There is no usn watermark yet; run a full import first.")
        url = self.settings.url
        if persisted.get("server") != state.server:
            raise ConnectorError(
                f"The watermark is of the domain controller {persisted.get('server')!r}, but "
                f"{url} is {state.server!r}: USNs are counted per domain controller, so a "
                "delta import cannot start from another's. Run a full import (and keep url "
                "on one domain controller)."
            )
        if persisted.get("invocation_id") != state.invocation_id:
            raise ConnectorError(
                f"The directory database of {url} is not the one the watermark was taken "
                f"from (its invocationId is {state.invocation_id}, the watermark's "
                f"{persisted.get('invocation_id')}): it was restored or re-provisioned, and the "
                "changes since the watermark cannot be read by USN. Run a full import."
            )
        if state.usn < usn:
            raise ConnectorError(
                f"The highestCommittedUSN of {url} ({state.usn}) is below the watermark "
                f"({usn}): the directory was restored or re-provisioned, and the changes "
                "since the watermark cannot be read by USN. Run a full import."
            )
        return usn

    # -- the delta ----------------------------------------------------------------------

    def delta(
        self, readers: list[EntryReader], persisted: dict[str, Any], page_size: int
    ) -> ImportStream:
        """The changes since the watermark; the new watermark is taken first."""
        state = self.state()
        since = self._since(persisted, state)
        for reader in readers:
            if reader.id_attribute.lower() == "dn":
                raise ConnectorConfigurationError(
                    f"Object type {reader.spec.name!r} uses the DN as its external id, which a "
                    "rename or move changes: delta_method usn cannot follow it. Use objectGUID."
                )
        self._require_deleted_objects(state)
        pages = self._pages(readers, since + 1, state, min(page_size, AD_MAX_PAGE_SIZE))
        return ImportStream(watermark=state.watermark(), pages=pages)

    def _require_deleted_objects(self, state: DirectoryState) -> None:
        """Fail unless the bind DN can read the Deleted Objects container."""
        container = state.deleted_objects
        what = f"reading {container!r}"
        message_id = self.session.send_search(
            container,
            "(objectClass=*)",
            ["objectClass"],
            scope=ldap3.BASE,
            controls=[SHOW_DELETED],
            what=what,
        )
        response = self.session.wait(message_id, what)
        readable = response.ok and any(raw_values(e, "objectClass") for e in response.entries)
        if readable:
            return
        if not response.ok and response.code not in (NO_SUCH_OBJECT, INSUFFICIENT_ACCESS):
            self.session.check_search(response, container, what)
        raise self._no_deletions(container, response.describe() if not response.ok else "")

    def _no_deletions(self, container: str, detail: str) -> ConnectorConfigurationError:
        return ConnectorConfigurationError(
            f"{self.settings.who()} cannot read the deleted objects in {container!r} on "
            f"{self.settings.url}" + (f" ({detail})" if detail else "") + ", so a delta "
            "import would miss deletions. Grant it List Contents and Read Property there: "
            f'dsacls "{container}" /G DOMAIN\\<account>:LCRP (after /takeownership by a '
            "Domain Admin); or run full imports only."
        )

    def _pages(
        self, readers: list[EntryReader], first: int, state: DirectoryState, page_size: int
    ) -> Iterator[ImportPage]:
        """Upserts from the containers, then moved-out entries, then tombstones."""
        changed = f"(uSNChanged>={first})"
        for reader in readers:
            base = self._container(reader)
            for entries in self.session.paged_search(
                base,
                f"(&{_class_filter(reader)}{changed})",
                self.attributes_to_read(reader),
                page_size,
                f"reading the {reader.spec.name} entries changed under {base!r}",
            ):
                yield page_of(reader, entries)
        yield from self._moved_out(readers, changed, state, page_size)
        yield from self._tombstones(readers, changed, state, page_size)

    def _moved_out(
        self, readers: list[EntryReader], changed: str, state: DirectoryState, page_size: int
    ) -> Iterator[ImportPage]:
        """A delete for each entry of a selected class changed where no object type
        imports it: it may have been moved out (the import ignores those it never held).

        One search of the domain for all the classes, so that an entry two object types
        could claim (a computer is a user too) is one delete, or none when one of them
        imports it.
        """
        places = [(normalise_dn(self._container(r)), r.spec.name.lower()) for r in readers]
        by_class = _by_class(readers)
        classes = "".join(_class_filter(reader) for reader in readers)
        search_filter = f"(&(|{classes}){changed})"
        for entries in self.session.paged_search(
            state.domain,
            search_filter,
            _with_ids(["objectClass"], readers),
            page_size,
            f"reading the entries changed outside the containers in {state.domain!r}",
        ):
            page = ImportPage()
            for entry in entries:
                entry_classes = _classes(entry)
                try:
                    key = normalise_dn(entry["dn"])
                except DNError:
                    key = ""
                if key and any(
                    name in entry_classes and is_within(key, container)
                    for container, name in places
                ):
                    continue  # read with the container's changed entries
                reader = _most_specific(entry_classes, by_class)
                if reader is not None:
                    _add_delete(page, reader, entry, entry["dn"], "moved out of the container")
            if page.objects or page.errors:
                yield page

    def _tombstones(
        self, readers: list[EntryReader], changed: str, state: DirectoryState, page_size: int
    ) -> Iterator[ImportPage]:
        """A delete for each object of a selected class deleted since the watermark."""
        container = state.deleted_objects
        by_class = _by_class(readers)
        for entries in self.session.paged_search(
            container,
            f"(&(isDeleted=TRUE){changed})",
            _with_ids(list(TOMBSTONE_ATTRIBUTES), readers),
            page_size,
            f"reading the objects deleted in {container!r}",
            controls=[SHOW_DELETED],
        ):
            page = ImportPage()
            for entry in entries:
                if not raw_values(entry, "objectGUID"):
                    # What AD and Samba return to an account that may see the container
                    # but not read it: the container alone, without attributes.
                    raise self._no_deletions(container, f"{entry['dn']!r} came back unreadable")
                reader = _most_specific(_classes(entry), by_class)
                if reader is not None:
                    _add_delete(page, reader, entry, _last_dn(entry), "deleted")
            if page.objects or page.errors:
                yield page

    def _container(self, reader: EntryReader) -> str:
        return reader.spec.container or self.settings.base_dn


def _class_filter(reader: EntryReader) -> str:
    return f"(objectClass={escape_filter_chars(reader.spec.name)})"


def _with_ids(attributes: list[str], readers: list[EntryReader]) -> list[str]:
    """``attributes`` and the object types' external id attributes."""
    for reader in readers:
        if reader.id_attribute not in attributes:
            attributes.append(reader.id_attribute)
    return attributes


def _classes(entry: dict[str, Any]) -> list[str]:
    """An entry's object classes, lowercase, as AD lists them: top first, the most
    specific last."""
    return [raw.decode("utf-8", "replace").lower() for raw in raw_values(entry, "objectClass")]


def _by_class(readers: list[EntryReader]) -> dict[str, EntryReader]:
    return {reader.spec.name.lower(): reader for reader in readers}


def _most_specific(classes: list[str], by_class: dict[str, EntryReader]) -> EntryReader | None:
    """The reader of the most specific of ``classes`` that an object type is of."""
    return next((by_class[name] for name in reversed(classes) if name in by_class), None)


def _add_delete(
    page: ImportPage, reader: EntryReader, entry: dict[str, Any], dn: str, why: str
) -> None:
    """A delete of ``entry`` by its external id, converted as an upsert's would be."""
    location = f"{dn} ({why})"
    attribute = reader.id_attribute
    raw = raw_values(entry, attribute)
    convert = reader.converter(attribute)
    problem = ""
    if not raw or convert is None:
        problem = f"no {attribute} value to name the object by (its external id)"
    else:
        try:
            external_id = str(convert(raw[0]))
        except ValueError as exc:
            problem = f"{attribute}: {exc}"
    if problem:
        page.errors.append(ImportObjectError(f"cannot report its deletion: {problem}", location))
        return
    page.objects.append(
        ImportObject(
            object_type=reader.spec.name,
            attributes={},
            change="delete",
            external_id=external_id,
            location=location,
        )
    )


def _last_dn(tombstone: dict[str, Any]) -> str:
    """The DN a deleted object had: its last known RDN under its last known parent
    (Samba keeps no ``msDS-LastKnownRDN``: the tombstone's RDN, less the
    ``\\nDEL:<guid>`` AD appends, is the same)."""
    dn = tombstone["dn"]
    parent = (raw_values(tombstone, "lastKnownParent") or [b""])[0].decode("utf-8", "replace")
    try:
        kind, value = first_rdn(dn)[0]
    except DNError:
        return dn
    known = raw_values(tombstone, "msDS-LastKnownRDN")
    name = known[0].decode("utf-8", "replace") if known else value.split("\n", 1)[0]
    return build_dn(kind, name, parent) if parent else dn
