"""Watermarks under size limits: the newest ``reqStart`` / ``modifyTimestamp`` found with
size-limited probes (connectors/backends/ldap/newest.py), never a paged or unlimited
search — first the search itself over values in memory (any size, any clock), then
against the real slapd, bound as the service account (OpenLDAP's default size limit of
500), with a small probe limit, a server limit smaller still, JIM's clock moved ahead
of or behind the server's, and delta imports of more changes than the size limit.
"""

from __future__ import annotations

import bisect
import datetime as dt

import ldap3
import pytest

from connectors.backends.ldap import LdapConnector, importing
from connectors.backends.ldap import newest as ldap_newest
from connectors.backends.ldap.newest import MICROSECOND, SECOND, Probe, find_newest, parse_time
from tests.connectors.ldap_entries import (
    add_entries,
    delta_import,
    full_import,
    people_spec,
    person,
)
from tests.support.slapd import ACCESSLOG_DATABASE_DN, SERVICE_LIMITS, service_settings, start_slapd

NOW = dt.datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=dt.UTC)


# --------------------------------------------------------------------------- the search


class Directory:
    """Values in memory answering probes as slapd does: oldest first, cut at ``limit``."""

    def __init__(self, values: list[str], limit: int) -> None:
        self.values = sorted(values, key=parse_time)
        self.times = [parse_time(value) for value in self.values]
        self.limit = limit
        self.largest_answer = 0

    def probe(self, lower: str | None) -> Probe:
        start = bisect.bisect_left(self.times, parse_time(lower)) if lower else 0
        answer = self.values[start : start + self.limit]
        self.largest_answer = max(self.largest_answer, len(answer))
        return Probe(answer, complete=len(self.values) - start <= self.limit)

    def newest(self, precision: int = MICROSECOND, **kwargs) -> ldap_newest.Newest:
        found = find_newest(self.probe, precision=precision, **kwargs)
        assert self.largest_answer <= self.limit
        return found


def req_starts(last: dt.datetime, count: int, spacing: dt.timedelta) -> list[str]:
    """``count`` reqStart values, ``spacing`` apart, the newest at ``last``."""
    return [(last - n * spacing).strftime("%Y%m%d%H%M%S.%fZ") for n in range(count - 1, -1, -1)]


def test_a_hundred_thousand_entries_in_the_last_seconds_take_a_few_probes():
    values = req_starts(NOW - dt.timedelta(milliseconds=5), 100_000, dt.timedelta(microseconds=17))
    found = Directory(values, limit=200).newest(now=NOW)
    assert found.value == values[-1]
    assert found.probes <= 20


@pytest.mark.parametrize("count", [1, 3, 4, 5, 400])
def test_every_count_around_the_limit_finds_the_newest(count):
    values = req_starts(NOW, count, dt.timedelta(microseconds=1))
    assert Directory(values, limit=4).newest(now=NOW).value == values[-1]


def test_thousands_of_values_in_the_same_second_at_second_precision():
    second = "20260314150925Z"
    values = ["20260314150924Z"] * 10 + [second] * 5_000
    found = Directory(values, limit=3).newest(precision=SECOND, now=NOW)
    assert found.value == second
    assert found.probes <= 10


def test_the_newest_older_than_every_window():
    old = NOW - dt.timedelta(days=400)
    values = req_starts(old, 50_000, dt.timedelta(seconds=7))
    found = Directory(values, limit=200).newest(now=NOW)
    assert found.value == values[-1]
    assert found.probes <= 30


def test_an_empty_log_has_no_newest_and_since_stays():
    assert Directory([], limit=5).newest(now=NOW) == ldap_newest.Newest(None, 5)
    since = "20260314150000Z"
    assert Directory([since], limit=5).newest(precision=SECOND, since=since, now=NOW).value == since
    older = Directory(["20260314140000Z"], limit=5)
    assert older.newest(precision=SECOND, since=since, now=NOW).value == since


def test_since_bounds_the_search_and_nothing_older_is_returned():
    values = req_starts(NOW - dt.timedelta(hours=2), 1_000, dt.timedelta(milliseconds=3))
    directory = Directory(values, limit=10)
    assert directory.newest(since=values[500], now=NOW).value == values[-1]
    asked = []
    find_newest(
        lambda lower: asked.append(lower) or directory.probe(lower),
        precision=MICROSECOND,
        since=values[500],
        now=NOW,
    )
    assert all(
        lower is not None and parse_time(lower) >= parse_time(values[500]) for lower in asked
    )


@pytest.mark.parametrize(
    "skew",
    [
        dt.timedelta(hours=-5),
        dt.timedelta(seconds=-3),
        dt.timedelta(seconds=3),
        dt.timedelta(days=30),
    ],
    ids=["server-5h-ahead", "server-3s-ahead", "server-3s-behind", "server-30d-behind"],
)
def test_clock_skew_costs_probes_not_correctness(skew):
    """JIM's clock ``skew`` away from the server's, which stamped 20,000 entries in
    its last 2 seconds."""
    values = req_starts(NOW, 20_000, dt.timedelta(microseconds=100))
    found = Directory(values, limit=200).newest(now=NOW + skew)
    assert found.value == values[-1]
    assert found.probes <= 40


def test_a_value_that_is_not_a_time_is_an_error():
    with pytest.raises(ValueError, match="'yesterday' is not a GeneralizedTime"):
        find_newest(lambda lower: Probe(["yesterday"], complete=True), precision=SECOND, now=NOW)


def test_generalized_times_with_zones_and_fractions():
    assert parse_time("20260314150926.5Z") == parse_time("20260314150926Z") + 500_000
    assert parse_time("20260314160926+0100") == parse_time("20260314150926Z")
    assert parse_time("202603141509Z") == parse_time("20260314150900Z")


# --------------------------------------------------------------------------- against slapd


def log_newest(slapd, first_dn: str) -> str:
    """The newest reqStart since ``first_dn`` was logged, read by the admin (no limits)."""
    connection = slapd.connection()
    try:
        connection.search(slapd.accesslog_base, f"(reqDN={first_dn})", attributes=["reqStart"])
        since = min(e["raw_attributes"]["reqStart"][0].decode() for e in connection.response)
        connection.search(
            slapd.accesslog_base,
            f"(&(objectClass=auditWriteObject)(reqStart>={since}))",
            attributes=["reqStart"],
        )
        return max(e["raw_attributes"]["reqStart"][0].decode() for e in connection.response)
    finally:
        connection.unbind()


@pytest.fixture
def small_probes(monkeypatch):
    """Probes ask for 3 entries at most."""
    monkeypatch.setattr(importing, "NEWEST_PROBE_LIMIT", 3)


def watermark(slapd, **settings) -> tuple[dict, int]:
    with LdapConnector(service_settings(slapd, **settings)) as connector:
        found = connector._watermark()
        return found, connector.newest_probes


def test_the_newest_of_hundreds_of_entries_logged_in_a_burst(slapd, ldap_ou, small_probes):
    add_entries(slapd, [person(ldap_ou, f"p{n}") for n in range(300)])
    found, probes = watermark(slapd)
    assert found == {
        "delta_method": "accesslog",
        "req_start": log_newest(slapd, f"uid=p0,ou=people,{ldap_ou}"),
    }
    assert probes <= 40


@pytest.mark.parametrize(
    "skew",
    [dt.timedelta(days=-2), dt.timedelta(days=2), dt.timedelta(minutes=10)],
    ids=["server-2-days-ahead", "newest-older-than-every-window", "server-10-minutes-behind"],
)
def test_jim_clock_differing_from_the_server(slapd, ldap_ou, small_probes, monkeypatch, skew):
    """JIM's clock moved by ``skew``: to the server it is the same as its own clock
    being the other way; two days ahead of JIM, every window is empty."""
    add_entries(slapd, [person(ldap_ou, f"p{n}") for n in range(50)])
    real_now = ldap_newest.utc_now
    monkeypatch.setattr(ldap_newest, "utc_now", lambda: real_now() + skew)
    found, probes = watermark(slapd)
    assert found["req_start"] == log_newest(slapd, f"uid=p0,ou=people,{ldap_ou}")
    assert probes <= 70


@pytest.fixture
def tight_accesslog_limits(slapd):
    """The service account may read 5 accesslog entries per search, paged or not."""
    tight = SERVICE_LIMITS.replace("size.prtotal=unlimited", "size=5 size.prtotal=5")
    connection = slapd.connection(raise_exceptions=True)
    replace = {"olcLimits": [(ldap3.MODIFY_REPLACE, ["{0}" + tight])]}
    connection.modify(ACCESSLOG_DATABASE_DN, replace)
    try:
        yield
    finally:
        restore = {"olcLimits": [(ldap3.MODIFY_REPLACE, ["{0}" + SERVICE_LIMITS])]}
        connection.modify(ACCESSLOG_DATABASE_DN, restore)
        connection.unbind()


def test_a_server_limit_below_the_probe_limit(slapd, ldap_ou, tight_accesslog_limits):
    """No paged search, no search for more than the server allows: 5 entries a search."""
    add_entries(slapd, [person(ldap_ou, f"p{n}") for n in range(100)])
    found, _ = watermark(slapd)
    assert found["req_start"] == log_newest(slapd, f"uid=p0,ou=people,{ldap_ou}")


@pytest.mark.ldap
def test_an_empty_log():
    fresh = start_slapd()
    try:
        assert watermark(fresh)[0] == {"delta_method": "accesslog", "req_start": None}
        assert watermark(fresh, delta_method="modify_timestamp")[0]["modify_timestamp"]
    finally:
        fresh.destroy()


def test_the_newest_modify_timestamp_among_many_of_the_same_second(slapd, ldap_ou, small_probes):
    add_entries(slapd, [person(ldap_ou, f"p{n}") for n in range(200)])
    connection = slapd.connection()
    connection.search(slapd.base_dn, "(objectClass=*)", attributes=["modifyTimestamp"])
    newest = max(e["raw_attributes"]["modifyTimestamp"][0].decode() for e in connection.response)
    connection.unbind()
    found, probes = watermark(slapd, delta_method="modify_timestamp")
    assert found == {"delta_method": "modify_timestamp", "modify_timestamp": newest}
    assert probes <= 40


# --------------------------------------------------------------------------- reading the log


def test_a_delta_import_reads_more_changes_than_the_size_limit(slapd, ldap_ou, small_probes):
    """600 changes since the watermark: more than the service account's 500 per search;
    the log is read paged (its ``size.prtotal=unlimited``)."""
    spec = people_spec(ldap_ou)
    with LdapConnector(service_settings(slapd)) as connector:
        first, _ = full_import(connector, [spec])
        add_entries(slapd, [person(ldap_ou, f"p{n:03d}") for n in range(600)])
        second, changed = delta_import(connector, [spec], first)
        assert len({obj.external_id for obj in changed}) == 600
        assert second["req_start"] == log_newest(slapd, f"uid=p000,ou=people,{ldap_ou}")
        assert connector._watermark() == second
