"""Who may do what: the roles (groups), API keys for integrations, and login throttling."""
