"""DNs as the connector compares and checks them: an entry's DN is its secondary
external id, compared by its normalised form (:func:`core.dn.normalise_dn`).
"""

from __future__ import annotations

from core.dn import DNError, normalise_dn, parse_dn


def dn_key(value: str) -> str:
    """The normalised DN (see :func:`core.dn.normalise_dn`); a text that is not a DN
    is compared lowercased."""
    try:
        return normalise_dn(value)
    except DNError:
        return value.strip().lower()


def dn_problem(value: str) -> str:
    """Why ``value`` cannot be an entry's DN: not a DN, or an RDN without a value."""
    if not value.strip():
        return "it is empty"
    try:
        rdns = parse_dn(value)
    except DNError as exc:
        return str(exc)
    for rdn in rdns:
        for attribute_type, attribute_value in rdn:
            if not attribute_value.strip():
                return f"{attribute_type}= has no value"
    return ""
