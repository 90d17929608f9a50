"""Access models (API keys, failed logins)."""
