"""A connector whose pages a test writes: a real implementation of the connector
interface for what a CSV file cannot show (several object types, explicit deletes,
DNs, a connection that breaks on page 2, a delta watermark).

Tests set :attr:`ScriptedConnector.script` to a list of pages; an item that is an
exception is raised when the processor asks for that page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from connectors.base import Connector, ImportObject, ImportPage, ImportStream, ObjectTypeSpec

Script = list[ImportPage | Exception]


class ScriptedConnector(Connector):
    name = "scripted"
    label = "Scripted pages (tests)"
    supports_delta_import = True
    supports_paging = True

    script: ClassVar[Script] = []
    watermark: ClassVar[dict[str, Any]] = {"usn": 1}
    #: What the processor asked for, for assertions.
    requests: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    def reset(cls, script: Script | None = None, watermark: dict[str, Any] | None = None):
        cls.script = list(script or [])
        cls.watermark = dict(watermark or {"usn": 1})
        cls.requests = []

    def secondary_id_key(self, value: str) -> str:
        """DNs compare case-insensitively, without spaces after commas."""
        return ",".join(part.strip() for part in value.split(",")).lower()

    def import_objects(
        self,
        object_types: list[ObjectTypeSpec],
        *,
        delta: bool,
        persisted_data: dict[str, Any],
        page_size: int | None = None,
    ) -> ImportStream:
        self.requests.append(
            {"types": [t.name for t in object_types], "delta": delta, "data": persisted_data}
        )
        return ImportStream(dict(self.watermark), self._pages(), total=None)

    def _pages(self) -> Iterator[ImportPage]:
        for item in self.script:
            if isinstance(item, Exception):
                raise item
            yield item


def obj(object_type: str, external_id: Any, **attributes: Any) -> ImportObject:
    """An import object; ``dn=…`` sets its secondary external id, ``change=…`` its change."""
    dn = attributes.pop("dn", None)
    change = attributes.pop("change", "upsert")
    return ImportObject(
        object_type=object_type,
        attributes={
            name: value if isinstance(value, list) else [value]
            for name, value in attributes.items()
        },
        change=change,
        external_id=external_id,
        secondary_external_id=dn,
    )


def page(*objects: ImportObject) -> ImportPage:
    return ImportPage(objects=list(objects))
