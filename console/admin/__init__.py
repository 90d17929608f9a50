"""The admin of every model, one module per area (imported here, so that the admin's
autodiscovery of ``console.admin`` registers them all)."""

from console.admin import (  # noqa: F401
    approvals,
    audit,
    confirmation,
    connectors,
    exports,
    interventions,
    metaverse,
    runs,
)
