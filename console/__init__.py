"""The console: the admin's pages for every model, the dashboard, the live activity
page, the MVO page and run history, and their URLs. The top of JIM's layers."""
