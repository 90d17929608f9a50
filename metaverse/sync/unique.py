"""Unique values for export flows: the candidates of ``unique(...)`` resolved against
what is in use (seed 001, edge case 1: generating sAMAccountName and the like).

An export flow whose expression is ``unique(...)`` yields a
:class:`~metaverse.expressions.UniqueRequest`; the evaluator hands it here, and gets
back the first candidate that is not in use. A candidate is in use when, compared
case-insensitively (``JSmith`` is ``jsmith``, as for AD and LDAP names):

* another CSO of the target system has it as a value of that attribute, or an open
  pending export of another CSO sets it — a table built once per run and attribute
  (two queries), not a query per object;
* another MVO claimed it earlier in the same run (across batches);
* with ``check_target=true``, an object of the target system itself has it — asked of
  the connector (:meth:`~connectors.base.Connector.values_in_use`), opened once per
  run and system, only when a new value is chosen: one search per 20 candidates.

The value sticks to the person: once the CSO has a value for the attribute (exported,
imported, or staged in its pending export), that value is kept — a later change of
name does not rename the account — and the CSO's own value never counts as taken.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from connectors.base import Connector, ConnectorError
from connectors.choices import RpeiErrorType
from connectors.models import ConnectorSpaceObject
from exports.choices import AttributeChangeType
from exports.models import PendingExportAttributeChange
from metaverse.expressions import UniqueRequest
from metaverse.sync.batch import SyncBatch
from metaverse.sync.inbound import ObjectError, values_of
from metaverse.sync.keys import normalise_key
from metaverse.sync.rules import CompiledRule

#: Candidates asked of the target system at once (``check_target``).
TARGET_CHUNK = 20
#: Candidates named in the error when all are in use.
NAMED_IN_ERROR = 5

_SETTING = (AttributeChangeType.ADD, AttributeChangeType.UPDATE)


class UniqueValues:
    """The values in use and claimed, per target system and attribute, for one run."""

    def __init__(self) -> None:
        #: (system, attribute) → value key → ids of the CSOs that have or will have it
        self._used: dict[tuple[int, str], dict[str, set[int]]] = {}
        #: (system, attribute) → value key → the MVO that claimed it in this run
        self._claims: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
        #: (system, attribute, MVO) → the value chosen for it in this run
        self._chosen: dict[tuple[int, str, int], str] = {}
        self._connectors: dict[int, Connector] = {}
        self._unreachable: dict[int, str] = {}

    def close(self) -> None:
        """Close the connections opened to look values up in target systems."""
        connectors, self._connectors = self._connectors, {}
        for connector in connectors.values():
            connector.close()

    # -- resolving --------------------------------------------------------------------

    def resolve(
        self,
        batch: SyncBatch,
        rule: CompiledRule,
        mvo_id: int,
        cso: ConnectorSpaceObject | None,
        desired: dict[str, Any],
    ) -> frozenset[str]:
        """Replace the ``unique(...)`` requests in ``desired`` by their values; returns
        the attributes resolved. :class:`ObjectError` when every candidate is in use."""
        resolved = []
        for attribute, values in desired.items():
            if not (isinstance(values, list) and values and isinstance(values[0], UniqueRequest)):
                continue
            own = own_value(batch, cso, attribute) if cso is not None else None
            if own is not None:
                self._claims[(rule.system_id, attribute)][normalise_key(own)] = mvo_id
                desired[attribute] = [own]
            else:
                own_pk = cso.pk if cso is not None else None
                desired[attribute] = [
                    self._choose(batch, rule, attribute, values[0], mvo_id, own_pk)
                ]
            resolved.append(attribute)
        return frozenset(resolved)

    def adopt(
        self,
        batch: SyncBatch,
        rule: CompiledRule,
        mvo_id: int,
        cso: ConnectorSpaceObject,
        desired: dict[str, Any],
        attributes: frozenset[str],
    ) -> None:
        """The MVO joins an existing CSO instead of provisioning one: the CSO's own
        values of the unique attributes stay, and the values chosen are given back."""
        for attribute in attributes:
            own = own_value(batch, cso, attribute)
            if own is None:
                continue
            chosen = self._chosen.pop((rule.system_id, attribute, mvo_id), None)
            claims = self._claims[(rule.system_id, attribute)]
            if chosen is not None and claims.get(normalise_key(chosen)) == mvo_id:
                del claims[normalise_key(chosen)]
            claims[normalise_key(own)] = mvo_id
            desired[attribute] = [own]

    def _choose(
        self,
        batch: SyncBatch,
        rule: CompiledRule,
        attribute: str,
        request: UniqueRequest,
        mvo_id: int,
        own_pk: int | None,
    ) -> str:
        system_id = rule.system_id
        chosen = self._chosen.get((system_id, attribute, mvo_id))
        if chosen is not None:
            return chosen  # evaluated again in this run: the same value
        used = self._used_in(system_id, attribute)
        claims = self._claims[(system_id, attribute)]

        def free(candidate: str) -> bool:
            key = normalise_key(candidate)
            holders = used.get(key, set())
            return not (holders - {own_pk}) and claims.get(key, mvo_id) == mvo_id

        candidates: Iterator[str] = (c for c in request.candidates() if free(c))
        if request.check_target:
            candidates = self._not_in_target(batch, rule, attribute, candidates)
        value = next(candidates, None)
        if value is None:
            raise self._exhausted(batch, rule, attribute, request)
        claims[normalise_key(value)] = mvo_id
        self._chosen[(system_id, attribute, mvo_id)] = value
        return value

    def _used_in(self, system_id: int, attribute: str) -> dict[str, set[int]]:
        """The values of ``attribute`` on the system's CSOs and in their open pending
        exports (two queries, once per run and attribute)."""
        used = self._used.get((system_id, attribute))
        if used is not None:
            return used
        used = defaultdict(set)
        rows = (
            ConnectorSpaceObject.objects.filter(
                connected_system_id=system_id, attributes__has_key=attribute
            )
            .values_list("pk", f"attributes__{attribute}")
            .iterator(chunk_size=5000)
        )
        for pk, values in rows:
            for value in values_of(values):
                used[normalise_key(value)].add(pk)
        staged = PendingExportAttributeChange.objects.filter(
            pending_export__connected_system_id=system_id,
            attribute=attribute,
            change_type__in=_SETTING,
        ).values_list("pending_export__cs_object_id", "values")
        for pk, values in staged:
            for value in values_of(values):
                used[normalise_key(value)].add(pk)
        self._used[(system_id, attribute)] = used
        return used

    # -- the target system ------------------------------------------------------------

    def _not_in_target(
        self, batch: SyncBatch, rule: CompiledRule, attribute: str, candidates: Iterator[str]
    ) -> Iterator[str]:
        """The candidates the target system does not have, asked in chunks."""
        while chunk := [c for _, c in zip(range(TARGET_CHUNK), candidates, strict=False)]:
            taken = self._in_target(batch, rule, attribute, chunk)
            yield from (c for c in chunk if c not in taken)

    def _in_target(
        self, batch: SyncBatch, rule: CompiledRule, attribute: str, chunk: list[str]
    ) -> set[str]:
        system = batch.ruleset.systems[rule.system_id]
        cs_type = batch.ruleset.cs_types[rule.cs_object_type_id]
        prefix = (
            f"sync rule {rule.name!r}: cannot look up the {attribute} values in use in "
            f"{system.name} (unique(..., check_target=true))"
        )
        if system.id in self._unreachable:
            raise ObjectError(RpeiErrorType.CONNECTOR_ERROR, self._unreachable[system.id])
        connector = self._connectors.get(system.id)
        try:
            if connector is None:
                connector = system.connector
                if not connector.supports_value_lookup:
                    raise ConnectorError(
                        f"the {connector.name} connector cannot; remove check_target"
                    )
                connector.open()
                self._connectors[system.id] = connector
            return connector.values_in_use(cs_type.name, attribute, chunk)
        except ConnectorError as exc:
            # Asked once: every other object of the run gets the same error at once.
            self._unreachable[system.id] = f"{prefix}: {exc}"
            raise ObjectError(RpeiErrorType.CONNECTOR_ERROR, f"{prefix}: {exc}") from None

    # -- errors -----------------------------------------------------------------------

    def _exhausted(
        self, batch: SyncBatch, rule: CompiledRule, attribute: str, request: UniqueRequest
    ) -> ObjectError:
        tried = list(request.candidates())
        named = ", ".join(tried[:NAMED_IN_ERROR])
        if len(tried) > NAMED_IN_ERROR:
            named += f", … {tried[-1]}"
        system = batch.ruleset.systems[rule.system_id].name
        where = " or in the system itself" if request.check_target else ""
        return ObjectError(
            RpeiErrorType.INVALID_GENERATED_EXTERNAL_ID,
            f"sync rule {rule.name!r}: no unique value for {attribute} in {system}: "
            f"all {len(tried)} candidates ({named}) are in use in its connector space, "
            f"claimed by another object in this run{where}; raise max or add a candidate",
        )


def own_value(batch: SyncBatch, cso: ConnectorSpaceObject, attribute: str) -> str | None:
    """The CSO's value of ``attribute``: what it has, else what its pending export
    sets (a create not sent yet); None when neither."""
    values = values_of(cso.attributes.get(attribute))
    if values:
        return str(values[0])
    for row in batch.export_state(cso).rows:
        if row.attribute == attribute and row.change_type in _SETTING and row.values:
            return str(row.values[0])
    return None
