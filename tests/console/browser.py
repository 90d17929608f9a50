"""What the browser tests share: Debian's Chromium, its settings, logging in."""

from __future__ import annotations

from django.urls import reverse
from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The users the browser tests log in as: (username, password).
OPERATOR = ("operator", "pw-operator-browser")
APPROVER = ("alice", "pw-approver-browser")
#: How long to wait for the page to catch up with the database (polling is every 1 s).
CATCH_UP_MS = 10_000


def log_in(page: Page, live_server, username: str, password: str) -> Page:
    """Log ``page`` in to the admin through its login form."""
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(live_server.url + reverse("admin:index"))
    return page
