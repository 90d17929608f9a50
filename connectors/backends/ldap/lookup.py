"""Which values of an attribute are already in use in the directory
(``unique(..., check_target=true)``): one subtree search per 50 candidates, an
OR-filter of equality matches under ``base_dn``, whatever the object class (an
account name must be unique among users, groups and computers alike).
"""

from __future__ import annotations

import re

from ldap3.utils.conv import escape_filter_chars

from connectors.backends.ldap.session import Session
from connectors.base import ConnectorConfigurationError

#: Candidates asked per search: a filter of a few kilobytes at most.
CHUNK = 50

_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


def values_in_use(session: Session, base: str, attribute: str, candidates: list[str]) -> set[str]:
    """The candidates some entry under ``base`` has as a value of ``attribute``
    (matched case-insensitively, as the directory's equality rule would for names)."""
    if not _ATTRIBUTE.match(attribute):
        raise ConnectorConfigurationError(
            f"{attribute!r} is not an attribute name that can be searched for"
        )
    wanted = {candidate.casefold(): candidate for candidate in candidates}
    found: set[str] = set()
    unique_candidates = list(wanted.values())
    for start in range(0, len(unique_candidates), CHUNK):
        chunk = unique_candidates[start : start + CHUNK]
        terms = "".join(f"({attribute}={escape_filter_chars(value)})" for value in chunk)
        entries = session.search(
            base,
            f"(|{terms})",
            [attribute],
            what=f"looking up the {attribute} values in use",
        )
        for entry in entries:
            for name, values in entry["raw_attributes"].items():
                if name.lower() != attribute.lower():
                    continue
                for raw in values:
                    match = wanted.get(raw.decode("utf-8", "replace").casefold())
                    if match is not None:
                        found.add(match)
    return {candidate for candidate in candidates if candidate in found}
