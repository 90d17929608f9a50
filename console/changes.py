"""An attribute's change as people read it: once, old → new.

Every page that shows what changed (RPEIs on the activity page, the MVO's history,
pending exports, the approval page) turns its own records into
:class:`AttributeChange` rows and renders them with
``console/partials/changes.html``, so a change reads the same everywhere:

* a single-valued attribute: ``old → new`` (``—`` for no value);
* a multi-valued attribute: the values added and the values removed.

Values are display text: the page resolves reference ids to names before it builds
the rows (one query for all of them), never the template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AttributeChange:
    """One attribute's change, with what (system, rule) made it when known."""

    attribute: str
    old: Sequence[str] = ()
    new: Sequence[str] = ()
    multi_valued: bool = False
    #: Where the change came from, e.g. "HR (rule: HR people → person)"; may be blank.
    source: str = ""
    #: Values not listed (the record kept only the first ones).
    more_old: int = 0
    more_new: int = 0
    links: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def added(self) -> list[str]:
        old = set(self.old)
        return [value for value in self.new if value not in old]

    @property
    def removed(self) -> list[str]:
        new = set(self.new)
        return [value for value in self.old if value not in new]

    @property
    def single_old(self) -> str:
        return ", ".join(self.old)

    @property
    def single_new(self) -> str:
        return ", ".join(self.new)
