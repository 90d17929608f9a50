"""The memory connector of the export tests, for the approvals of separation of duties."""

from tests.exports.conftest import memory_connector  # noqa: F401
