"""The REST API for integrations, versioned under ``/api/v1/``."""
