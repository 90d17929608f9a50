"""Sign-in throttling for the admin's login and for API keys.

Each failed attempt is a :class:`~access.models.FailedSignIn` row, so the count holds
across processes and servers, on PostgreSQL and SQLite alike. An account (a username,
or an API key's prefix) with ``JIM_LOGIN_MAX_FAILURES`` failures (default 5) within
the last ``JIM_LOGIN_LOCKOUT_MINUTES`` (default 15), or an address with
``JIM_LOGIN_MAX_FAILURES_PER_ADDRESS`` (default 20, both channels together), is
refused — even with the right password or key — until enough of those failures are
older than the window. Refused attempts are not counted, so waiting is enough.
A successful sign-in clears its account's failures; an administrator clears them
in the admin (Failed sign-ins).

Counting a username that does not exist like one that does tells nobody which exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from access.models import FailedSignIn, SignInChannel

#: Failed attempts are kept this long (for the admin's list), then pruned.
KEPT_FOR = timedelta(days=1)


def max_failures() -> int:
    return getattr(settings, "JIM_LOGIN_MAX_FAILURES", 5)


def max_failures_per_address() -> int:
    return getattr(settings, "JIM_LOGIN_MAX_FAILURES_PER_ADDRESS", 20)


def window() -> timedelta:
    return timedelta(minutes=getattr(settings, "JIM_LOGIN_LOCKOUT_MINUTES", 15))


@dataclass(frozen=True)
class Lockout:
    """Why attempts are refused, and until when."""

    channel: str
    account: str
    address: str | None
    until: datetime
    by_account: bool

    @property
    def retry_after_seconds(self) -> int:
        return max(1, int((self.until - timezone.now()).total_seconds()) + 1)

    @property
    def message(self) -> str:
        if not self.by_account:
            what = f"sign-ins from this address ({self.address})"
        elif self.channel == SignInChannel.API_KEY:
            what = f"attempts with API key {self.account}"
        else:
            what = f"sign-ins for {self.account}"
        until = self.until.astimezone(UTC)
        when = (
            f"{until:%H:%M}"
            if until - timezone.now() < timedelta(hours=12)
            else f"{until:%Y-%m-%d %H:%M}"
        )
        return (
            f"Too many failed {what}; try again after {when} UTC or ask an administrator to unlock."
        )


@dataclass(frozen=True)
class Standing:
    """What the recent failures say about an attempt about to be made."""

    lockout: Lockout | None
    account_failures: int


def _recent(now: datetime) -> QuerySet[FailedSignIn]:
    return FailedSignIn.objects.filter(attempted_at__gt=now - window())


def check(channel: str, account: str, address: str | None) -> Standing:
    """Whether an attempt for ``account`` from ``address`` is refused now (its
    ``lockout``), and how many recent failures the account has.

    One query when nothing is locked (the usual case)."""
    recent = _recent(timezone.now())
    of_account = Q(channel=channel, account=account) if account else Q(pk__in=[])
    of_address = Q(address=address) if address else Q(pk__in=[])
    counts = recent.filter(of_account | of_address).aggregate(
        account=Count("pk", filter=of_account), address=Count("pk", filter=of_address)
    )
    lockout = None
    if account and counts["account"] >= max_failures():
        until = _until(recent.filter(of_account), max_failures())
        lockout = Lockout(channel, account, address, until, by_account=True)
    elif address and counts["address"] >= max_failures_per_address():
        until = _until(recent.filter(of_address), max_failures_per_address())
        lockout = Lockout(channel, account, address, until, by_account=False)
    return Standing(lockout, counts["account"])


def _until(failures: QuerySet[FailedSignIn], limit: int) -> datetime:
    """When fewer than ``limit`` of ``failures`` remain in the window: the
    ``limit``-th most recent one leaves it."""
    nth = failures.order_by("-attempted_at").values_list("attempted_at", flat=True)[limit - 1]
    return nth + window()


def failed(channel: str, account: str, address: str | None) -> None:
    """Count a failed attempt (and forget those older than :data:`KEPT_FOR`)."""
    now = timezone.now()
    FailedSignIn.objects.filter(attempted_at__lt=now - max(KEPT_FOR, window())).delete()
    FailedSignIn.objects.create(
        channel=channel, account=account[:150], address=address, attempted_at=now
    )


def succeeded(channel: str, account: str) -> None:
    """A successful sign-in clears its account's failures (not its address's)."""
    FailedSignIn.objects.filter(channel=channel, account=account).delete()


def unlock(failures: QuerySet[FailedSignIn]) -> int:
    """Clear the failures of the accounts and addresses of ``failures``: what an
    administrator does to unlock them. Returns how many failures were cleared."""
    matching = Q(pk__in=[])
    for channel, account, address in failures.values_list("channel", "account", "address"):
        if account:
            matching |= Q(channel=channel, account=account)
        if address:
            matching |= Q(address=address)
    deleted, _ = FailedSignIn.objects.filter(matching).delete()
    return deleted
