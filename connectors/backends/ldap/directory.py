"""Which directory the connector talks to — OpenLDAP (or any standard LDAP directory)
or Active Directory — and what follows from it: the external id attribute, the
default ``delta_method`` and the delta methods that can work there.

The ``directory`` setting says it (``auto``, the default, reads it from the root DSE);
a setting that contradicts the server is a configuration error naming both, rather
than imports and exports that fail later for reasons nobody would guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.base import ConnectorConfigurationError

AUTO = "auto"
OPENLDAP = "openldap"
ACTIVE_DIRECTORY = "active_directory"
#: The values of the ``directory`` setting.
DIRECTORY_CHOICES = (AUTO, OPENLDAP, ACTIVE_DIRECTORY)
#: LDAP_CAP_ACTIVE_DIRECTORY_OID: a root DSE listing it is an AD domain controller
#: (Windows or Samba) — AD LDS lists another capability instead.
AD_CAPABILITY = "1.2.840.113556.1.4.800"
#: Root DSE attributes only a domain controller publishes.
AD_FUNCTIONALITY = ("forestFunctionality", "domainFunctionality", "domainControllerFunctionality")
#: What the root DSE is asked for to tell the directories apart (and to say which a
#: server is when it contradicts the setting).
ROOT_DSE_ATTRIBUTES = ("supportedCapabilities", *AD_FUNCTIONALITY, "vendorName", "objectClass")


@dataclass(frozen=True)
class Directory:
    """A kind of directory and the defaults the connector takes for it."""

    kind: str
    label: str
    #: The attribute that identifies an entry for life (renames and moves included).
    external_id_attribute: str
    #: ``delta_method`` when the setting is blank.
    default_delta_method: str
    #: The delta methods that can work on it.
    delta_methods: tuple[str, ...]

    @property
    def is_active_directory(self) -> bool:
        return self.kind == ACTIVE_DIRECTORY


DIRECTORIES = {
    OPENLDAP: Directory(
        OPENLDAP,
        "OpenLDAP (a standard LDAP directory)",
        external_id_attribute="entryUUID",
        default_delta_method="accesslog",
        delta_methods=("accesslog", "modify_timestamp", "none"),
    ),
    ACTIVE_DIRECTORY: Directory(
        ACTIVE_DIRECTORY,
        "Active Directory",
        external_id_attribute="objectGUID",
        default_delta_method="usn",
        delta_methods=("usn", "modify_timestamp", "none"),
    ),
}


def detect(root: Mapping[str, list[str]]) -> tuple[Directory, str]:
    """The directory whose root DSE ``root`` is, and the evidence, in words."""
    if AD_CAPABILITY in root.get("supportedCapabilities", []):
        return DIRECTORIES[ACTIVE_DIRECTORY], (
            f"its root DSE lists the Active Directory capability {AD_CAPABILITY}"
        )
    functionality = next((name for name in AD_FUNCTIONALITY if root.get(name)), None)
    if functionality:
        return DIRECTORIES[ACTIVE_DIRECTORY], f"its root DSE has {functionality}"
    vendor = ", ".join(root.get("vendorName", []) + root.get("objectClass", []))
    return DIRECTORIES[OPENLDAP], (
        "its root DSE lists no Active Directory capability" + (f" ({vendor})" if vendor else "")
    )


def resolve(setting: str, root: Mapping[str, list[str]], url: str) -> Directory:
    """The directory of the ``directory`` setting (one of :data:`DIRECTORY_CHOICES`;
    ``auto``: the detected one); :class:`ConnectorConfigurationError` when the
    setting contradicts the server."""
    chosen = (setting or AUTO).strip().lower()
    detected, evidence = detect(root)
    if chosen in (AUTO, detected.kind):
        return detected
    raise ConnectorConfigurationError(
        f"directory is {chosen} ({DIRECTORIES[chosen].label}), but {url} is {detected.label}: "
        f"{evidence}. Set directory to {detected.kind} or auto, or point url at the "
        "intended server."
    )


def check_delta_method(method: str, directory: Directory, url: str, *, explicit: bool) -> None:
    """Refuse a ``delta_method`` that cannot work on ``directory`` (a configuration
    error naming both); blank settings take the directory's default and always fit."""
    if not explicit or method in directory.delta_methods:
        return
    raise ConnectorConfigurationError(
        f"delta_method {method} does not work on {directory.label} ({url}): use "
        f"{', '.join(directory.delta_methods)}, or leave it blank for "
        f"{directory.default_delta_method}."
    )
