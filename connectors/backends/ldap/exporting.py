"""Export: each change as a flow of LDAP requests — add, modify DN, modify, delete —
run by the :class:`~connectors.backends.ldap.pipeline.Pipeline`, made safe to retry.

A create whose add is refused because the entry exists reads it back and succeeds when
it holds what the add sends (an earlier answer was lost); a modify refused for values
already added or already gone is resent with only what is still needed; a rename or a
delete found done already succeeds. On Active Directory, an entry is found by its
objectGUID with a ``<GUID=…>`` base search, and a refusal is explained in words
(:mod:`connectors.backends.ldap.ad_errors`). docs/connectors/ldap.md describes it all.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Mapping
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars

from connectors.backends.ldap import ad_errors
from connectors.backends.ldap.dn import dn_key, dn_problem
from connectors.backends.ldap.internals import post_read_control
from connectors.backends.ldap.passwords import (
    carries_password,
    password_values,
    refused_password,
    without_passwords,
)
from connectors.backends.ldap.pipeline import Flow, Pipeline, Request
from connectors.backends.ldap.ranges import ValueChunks, range_size
from connectors.backends.ldap.session import Session
from connectors.backends.ldap.transport import (
    ENTRY_ALREADY_EXISTS,
    NO_SUCH_ATTRIBUTE,
    NO_SUCH_OBJECT,
    TRANSIENT_RESULTS,
    VALUE_EXISTS,
    Response,
)
from connectors.backends.ldap.values import guid_text, raw_values, to_ldap_value
from connectors.base import ExportAttributeChange, ExportChange, ExportResult, ObjectTypeSpec
from core.dn import DNError, Rdn, parse_dn, split_dn

#: External id attributes holding GUIDs, compared and reported as GUID text.
GUID_ID_ATTRIBUTES = frozenset({"entryuuid", "objectguid"})


class Exporter:
    """The exports of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.settings = session.settings
        self._post_read = False
        self._post_read_controls: dict[str, tuple[str, bool, bytes]] = {}

    def export(self, changes: list[ExportChange]) -> list[ExportResult]:
        """Apply the changes, pipelined; one result per change, in the order given.

        Raises :class:`ConnectionFailed` only when the directory answered none of them
        (it cannot be reached); a connection lost later fails the unanswered changes
        as transient.
        """
        if not changes:
            return []
        # Read before the pipeline: the flows themselves do no I/O.
        self.session.schema()
        self._post_read = self.session.supports_post_read()
        pipeline = Pipeline(self.session.transport, self.settings.number("export_window"))
        chunks = ValueChunks(range_size(self.settings), self._value_keys)
        results = pipeline.run([(change, chunks.flow(self._flow(change))) for change in changes])
        return [results[change.id] for change in changes]

    def _flow(self, change: ExportChange) -> Flow:
        if change.change_type == "create":
            return self._create_flow(change)
        if change.change_type == "update":
            return self._update_flow(change)
        if change.change_type == "delete":
            return self._delete_flow(change)
        return _failed(change, f"unknown change type {change.change_type!r}")

    def _create_flow(self, change: ExportChange) -> Flow:
        dn = (change.dn or "").strip()
        try:
            rdns = parse_dn(dn)
            if not rdns:
                raise ValueError("no DN to create the entry at")
            attributes = self._add_attributes(change, rdns[0])
        except ValueError as exc:  # DNError included
            return (yield from _failed(change, f"cannot create {dn!r}: {exc}"))
        id_attribute = self._id_attribute(change)
        by_dn = id_attribute.lower() == "dn"
        # The new entry's external id comes back with the add (post-read control), or
        # from a read right after it.
        post_read = self._post_read and not by_dn
        controls = [self._post_read_control(id_attribute)] if post_read else None
        response = yield Request("add", dn, attributes=attributes, controls=controls)
        if response.code == ENTRY_ALREADY_EXISTS:
            # Perhaps an earlier attempt whose answer a broken connection lost: look.
            compared = without_passwords(change, attributes)
            return (yield from self._created_already(change, dn, compared, response))
        if not response.ok and (refused := refused_password(change, response, f"add {dn!r}")):
            return refused
        if by_dn:
            return self._result(
                change, response, "add", dn, sent=attributes, external_id=dn, result_dn=dn
            )
        if not response.ok:
            return self._result(change, response, "add", dn, sent=attributes)
        values = next(
            (v for k, v in response.post_read.items() if k.lower() == id_attribute.lower()), []
        )
        if not values:
            read = yield Request("read", dn, read=[id_attribute])
            values = _values_of(read, id_attribute)
        # Unreadable, the id is left to the confirming import, which finds the entry by DN.
        external_id = _external_id(id_attribute, values[0]) if values else None
        return ExportResult(change.id, ok=True, external_id=external_id, dn=dn)

    def _created_already(
        self, change: ExportChange, dn: str, attributes: dict[str, list[Any]], refused: Response
    ) -> Generator[Request, Response, ExportResult]:
        """The result of a create refused with ``entryAlreadyExists``: a success when the
        entry at ``dn`` holds exactly the values the add sends (an earlier attempt got
        through), else a permanent error naming the attributes that differ."""
        id_attribute = self._id_attribute(change)
        by_dn = id_attribute.lower() == "dn"
        there = yield Request("read", dn, read=[*attributes, *([] if by_dn else [id_attribute])])
        if not there.ok or not there.entries:
            return self._result(change, refused, "add", dn, sent=attributes)
        entry = there.entries[0]
        differences = [
            f"{name} is {_shown(raw_values(entry, name))}, the create sends {_shown(values)}"
            for name, values in attributes.items()
            if self._value_keys(name, raw_values(entry, name)) != self._value_keys(name, values)
        ]
        if differences:
            return ExportResult(
                change.id,
                ok=False,
                error=f"add {dn!r} failed: {refused.describe()}; the entry there is not the "
                f"one to create: {'; '.join(differences)}",
            )
        values = [dn] if by_dn else raw_values(entry, id_attribute)
        external_id = _external_id(id_attribute, values[0]) if values else None
        return ExportResult(change.id, ok=True, external_id=external_id, dn=dn)

    def _value_keys(self, name: str, values: Iterable[str | bytes]) -> set[str | bytes]:
        """The values as the directory compares them; object classes with their
        superclasses (an entry of class ``inetOrgPerson`` is a ``person`` too)."""
        if name.lower() == "objectclass":
            schema = self.session.schema()
            return {
                class_name.lower()
                for value in values
                for class_name in schema.class_chain(_text_value(value)) or [_text_value(value)]
            }
        return {self._value_key(name, value) for value in values}

    def _id_attribute(self, change: ExportChange) -> str:
        """The object type's external id attribute (the directory's when not named)."""
        return (
            change.object_type.external_id_attribute or self.session.directory.external_id_attribute
        )

    def _result(
        self,
        change: ExportChange,
        response: Response,
        operation: str,
        dn: str,
        *,
        target_dn: str = "",
        sent: Mapping[str, list[Any]] | None = None,
        external_id: str | None = None,
        result_dn: str | None = None,
    ) -> ExportResult:
        """:func:`result_of` for ``operation`` (add, modify, rename, delete) of ``dn``
        (renamed to ``target_dn``), with AD's refusals explained (:mod:`ad_errors`)
        from what the request ``sent``."""
        what = f"{operation} {dn!r}" + (f" to {target_dn!r}" if target_dn else "")
        refusal = None
        if not response.ok and self.session.directory.is_active_directory:
            request = ad_errors.Request(
                operation, dn, target_dn or dn, sent=sent, who=self.settings.who()
            )
            refusal = ad_errors.explain(response, request)
        return result_of(
            change, response, what, external_id=external_id, dn=result_dn, refusal=refusal
        )

    def _post_read_control(self, attribute: str) -> tuple[str, bool, bytes]:
        """The post-read control asking for ``attribute`` (built once, it never changes)."""
        if attribute not in self._post_read_controls:
            self._post_read_controls[attribute] = post_read_control([attribute])
        return self._post_read_controls[attribute]

    def _add_attributes(self, change: ExportChange, rdn: Rdn) -> dict[str, list[Any]]:
        spec = change.object_type
        attributes: dict[str, list[Any]] = {}
        for attribute_change in change.attribute_changes:
            if attribute_change.change_type not in ("add", "update"):
                continue
            values = self._ldap_values(spec, attribute_change)
            if values:
                current = attributes.setdefault(attribute_change.attribute, [])
                current.extend(v for v in values if v not in current)
        chain = self.session.schema().class_chain(spec.name)
        if not chain:
            raise ValueError(f"the object class {spec.name!r} is not in the directory's schema")
        given = next((k for k in attributes if k.lower() == "objectclass"), None)
        extra = [v for v in attributes.pop(given, []) if v not in chain] if given else []
        for name in list(extra):
            extra.extend(
                c for c in self.session.schema().class_chain(str(name)) if c not in chain + extra
            )
        attributes["objectClass"] = chain + extra
        for rdn_type, rdn_value in rdn:
            name = next((k for k in attributes if k.lower() == rdn_type.lower()), rdn_type)
            values = attributes.setdefault(name, [])
            if not any(str(v).lower() == rdn_value.lower() for v in values):
                values.append(rdn_value)
        return attributes

    def _ldap_values(self, spec: ObjectTypeSpec, attribute_change: ExportAttributeChange) -> list:
        if carries_password(attribute_change):
            return password_values(self.settings, attribute_change)
        declared = spec.attributes.get(attribute_change.attribute)
        if declared is not None:
            data_type = declared.data_type
        else:
            attribute = self.session.schema().attribute(attribute_change.attribute)
            data_type = attribute.data_type if attribute else "text"
        try:
            return [
                to_ldap_value(value, data_type)
                for value in attribute_change.values
                if value is not None
            ]
        except ValueError as exc:
            raise ValueError(f"{attribute_change.attribute}: {exc}") from None

    def _update_flow(self, change: ExportChange) -> Flow:
        dn = (change.dn or "").strip()
        if not dn:
            dn = yield from self._locate(change)
            if not dn:
                return (yield from _failed(change, self._not_found(change)))
        try:
            modifications = self._modifications(change)
        except ValueError as exc:
            return (yield from _failed(change, f"cannot modify {dn!r}: {exc}"))
        renamed = None
        new_dn = (change.new_dn or "").strip()
        if new_dn and dn_key(new_dn) != dn_key(dn):
            problem = dn_problem(new_dn)
            if problem:
                return (
                    yield from _failed(change, f"cannot rename {dn!r} to {new_dn!r}: {problem}")
                )
            outcome = yield from self._rename(change, dn, new_dn)
            if isinstance(outcome, ExportResult):
                return outcome
            dn = renamed = new_dn
        if modifications:
            response = yield Request("modify", dn, changes=modifications)
            if response.code in (VALUE_EXISTS, NO_SUCH_ATTRIBUTE) or (
                self.session.directory.is_active_directory and ad_errors.value_conflict(response)
            ):
                response = yield from self._modify_what_is_needed(change, dn, modifications)
            if not response.ok:
                result = self._result(change, response, "modify", dn, sent=_sent(modifications))
                result.dn = renamed
                return result
        return ExportResult(change.id, ok=True, external_id=change.external_id, dn=renamed)

    def _rename(
        self, change: ExportChange, dn: str, new_dn: str
    ) -> Generator[Request, Response, ExportResult | None]:
        """Modify DN ``dn`` → ``new_dn`` (rename and/or move); None when done."""
        try:
            new_rdn, new_parent = split_dn(new_dn)
            _, old_parent = split_dn(dn)
        except DNError as exc:
            return ExportResult(change.id, ok=False, error=f"cannot rename {dn!r}: {exc}")
        moved = dn_key(new_parent) != dn_key(old_parent)
        response = yield Request(
            "modify_dn", dn, new_rdn=new_rdn, new_superior=new_parent if moved else None
        )
        if response.ok:
            return None
        if response.code == NO_SUCH_OBJECT:
            # A retry after a rename whose answer was lost: the entry is there already.
            id_attribute = self._id_attribute(change)
            if id_attribute.lower() == "dn":
                id_attribute = self.session.directory.external_id_attribute
            there = yield Request("read", new_dn, read=[id_attribute])
            values = _values_of(there, id_attribute)
            if values and (
                not change.external_id
                or _external_id(id_attribute, values[0]).lower() == change.external_id.lower()
            ):
                return None
        return self._result(change, response, "rename", dn, target_dn=new_dn)

    def _modifications(self, change: ExportChange) -> dict[str, list[tuple[int, list[Any]]]]:
        """The modify request's changes: REPLACE, ADD, DELETE per attribute change."""
        modifications: dict[str, list[tuple[int, list[Any]]]] = {}
        for attribute_change in change.attribute_changes:
            values = self._ldap_values(change.object_type, attribute_change)
            kind = attribute_change.change_type
            if kind == "update":
                operation = (ldap3.MODIFY_REPLACE, values)
            elif kind == "add" and values:
                operation = (ldap3.MODIFY_ADD, values)
            elif kind == "remove" and values:
                operation = (ldap3.MODIFY_DELETE, values)
            elif kind == "remove_all":
                operation = (ldap3.MODIFY_REPLACE, [])
            else:
                continue
            modifications.setdefault(attribute_change.attribute, []).append(operation)
        return modifications

    def _modify_what_is_needed(
        self, change: ExportChange, dn: str, modifications: dict[str, list[tuple[int, list[Any]]]]
    ) -> Generator[Request, Response, Response]:
        """Resend a refused modify without the values already added or already gone."""
        names = list(modifications)
        current = yield Request("read", dn, read=names)
        if not current.ok or not current.entries:
            return current
        present = {
            name.lower(): {self._value_key(name, v) for v in values}
            for name, values in current.entries[0]["raw_attributes"].items()
        }
        needed: dict[str, list[tuple[int, list[Any]]]] = {}
        for name, operations in modifications.items():
            have = set(present.get(name.lower(), set()))
            for operation, values in operations:
                keys = [self._value_key(name, v) for v in values]
                if operation == ldap3.MODIFY_ADD:
                    values = [v for v, k in zip(values, keys, strict=True) if k not in have]
                    have |= set(keys)
                elif operation == ldap3.MODIFY_DELETE:
                    values = [v for v, k in zip(values, keys, strict=True) if k in have]
                    have -= set(keys)
                else:
                    have = set(keys)
                if values or operation == ldap3.MODIFY_REPLACE:
                    needed.setdefault(name, []).append((operation, values))
        if not needed:
            return Response(0)
        response = yield Request("modify", dn, changes=needed)
        return response

    def _value_key(self, name: str, value: str | bytes) -> str | bytes:
        """A value as the directory compares it (DNs normalised, case-insensitive rules).

        AD's schema names no matching rules; it compares DNs and Unicode strings
        ignoring case, so text and references do here.
        """
        attribute = self.session.schema().attribute(name)
        case_insensitive = attribute is not None and (
            attribute.case_insensitive
            or (
                self.session.directory.is_active_directory
                and attribute.data_type in ("text", "reference")
            )
        )
        if attribute is None or not case_insensitive:
            return value.encode() if isinstance(value, str) else value
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if attribute.data_type == "reference":
            return dn_key(text)
        return text.lower()

    def _delete_flow(self, change: ExportChange) -> Flow:
        dn = (change.dn or "").strip()
        if not dn:
            dn = yield from self._locate(change)
            if not dn:
                return ExportResult(change.id, ok=True)  # already gone
        response = yield Request("delete", dn)
        if response.code == NO_SUCH_OBJECT:
            return ExportResult(change.id, ok=True)  # already gone: what was wanted
        return self._result(change, response, "delete", dn)

    def _locate(self, change: ExportChange) -> Generator[Request, Response, str]:
        """The DN of the entry with the change's external id ("" when there is none)."""
        id_attribute = self._id_attribute(change)
        if not change.external_id or id_attribute.lower() == "dn":
            return change.external_id or ""
        if id_attribute.lower() == "objectguid":
            # AD finds an object by its GUID wherever it is: a base search of <GUID=…>.
            try:
                guid = uuid.UUID(change.external_id)
            except ValueError:
                return ""
            response = yield Request("read", f"<GUID={guid}>", read=["1.1"])
            return response.entries[0]["dn"] if response.ok and response.entries else ""
        base = change.object_type.container or self.settings.base_dn
        search_filter = f"({id_attribute}={escape_filter_chars(change.external_id)})"
        response = yield Request("find", base, read=["1.1"], search_filter=search_filter)
        return response.entries[0]["dn"] if response.ok and response.entries else ""

    def _not_found(self, change: ExportChange) -> str:
        id_attribute = self._id_attribute(change)
        if not change.external_id:
            return "no DN and no external id to find the entry by"
        return f"no entry with {id_attribute} {change.external_id!r} on {self.settings.url}"


def _sent(modifications: dict[str, list[tuple[int, list[Any]]]]) -> dict[str, list[Any]]:
    """The values a modify sends, per attribute (for explaining a refusal)."""
    return {name: [v for _, values in ops for v in values] for name, ops in modifications.items()}


def _values_of(response: Response, attribute: str) -> list[bytes]:
    if not response.ok or not response.entries:
        return []
    return raw_values(response.entries[0], attribute)


def _shown(values: list[Any], most: int = 3) -> str:
    """A few values, for a message: text cut at 40 characters, binary by its size."""
    if not values:
        return "absent"
    shown = [
        f"<{len(v)} bytes>" if isinstance(v, bytes) and not _is_text(v) else _text_value(v)[:40]
        for v in values[:most]
    ]
    return repr(shown) if len(values) <= most else f"{shown!r} and {len(values) - most} more"


def _is_text(value: bytes) -> bool:
    try:
        return value.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def _text_value(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def result_of(
    change: ExportChange,
    response: Response,
    what: str,
    *,
    external_id: str | None = None,
    dn: str | None = None,
    refusal: ad_errors.Refusal | None = None,
) -> ExportResult:
    """A change's result from the response to its last request: a failure names the
    server's result and message, and is transient when the result is worth retrying;
    with a ``refusal`` (AD's, explained), its cause first and its say on retrying."""
    if response.ok:
        return ExportResult(
            change.id, ok=True, external_id=external_id or change.external_id, dn=dn
        )
    if refusal is not None:
        return ExportResult(
            change.id,
            ok=False,
            error=f"{what} failed: {refusal.cause} (Active Directory: {response.describe()})",
            transient=refusal.transient,
        )
    return ExportResult(
        change.id,
        ok=False,
        error=f"{what} failed: {response.describe()}",
        transient=response.code in TRANSIENT_RESULTS,
    )


def _external_id(id_attribute: str, raw: bytes | str) -> str:
    """An external id as JIM keeps it: GUIDs (entryUUID, objectGUID) as lowercase text."""
    if id_attribute.lower() in GUID_ID_ATTRIBUTES:
        return guid_text(raw if isinstance(raw, bytes) else raw.encode())
    return _text_value(raw)


def _failed(change: ExportChange, error: str) -> Flow:
    """A flow that sends nothing and fails permanently."""
    return ExportResult(change.id, ok=False, error=error)
    yield  # pragma: no cover - makes this a generator
