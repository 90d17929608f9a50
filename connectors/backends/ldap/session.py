"""One session with the directory: connect, secure (``ldaps://``, StartTLS, the
certificate checked), bind once, then search over the :class:`Transport` — with the
errors a person can act on (unreachable, untrusted certificate, refused credentials,
a base DN that does not exist, a size or time limit) and no ldap3 exception leaking out.

ldap3 (SYNC strategy) connects, secures and binds in the calling thread; from then on
the transport owns the socket. The root DSE and the schema are read once per session.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException

from connectors.backends.ldap import internals
from connectors.backends.ldap.directory import (
    ROOT_DSE_ATTRIBUTES,
    Directory,
    check_delta_method,
    resolve,
)
from connectors.backends.ldap.ranges import RangeReader
from connectors.backends.ldap.schema import Schema
from connectors.backends.ldap.settings import LdapSettings
from connectors.backends.ldap.transport import (
    INSUFFICIENT_ACCESS,
    NO_SUCH_OBJECT,
    POST_READ_OID,
    SIZE_LIMIT_EXCEEDED,
    TIME_LIMIT_EXCEEDED,
    TRANSIENT_RESULTS,
    Response,
    Transport,
    exception_text,
)
from connectors.backends.ldap.values import raw_values
from connectors.base import ConnectionFailed, ConnectorConfigurationError, ConnectorError
from core.dn import DNError, is_within, normalise_dn, parse_dn

#: The bind's result when the server takes passwords only over TLS (AD's default).
STRONGER_AUTH_REQUIRED = 8


class Session:
    """The connection of one run to the directory, and the searches made on it."""

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self._transport: Transport | None = None
        self._schema: Schema | None = None
        self._root: dict[str, list[str]] | None = None
        #: Completes the entries whose attributes come back in ranges (AD's big groups).
        self.ranges = RangeReader(self)

    def _server(self) -> ldap3.Server:
        """The ldap3 Server of the ``url`` and TLS settings (configuration errors named)."""
        url = self.settings.url
        if not url:
            raise ConnectorConfigurationError("The ldap connector needs a 'url' setting.")
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
            raise ConnectorConfigurationError(
                f"url {url!r} is not an LDAP URL (ldap://host:port or ldaps://host:port)."
            )
        try:
            port = parts.port
        except ValueError:
            raise ConnectorConfigurationError(f"url {url!r} has an invalid port.") from None
        use_ssl = parts.scheme.lower() == "ldaps"
        if use_ssl and self.settings.flag("start_tls"):
            raise ConnectorConfigurationError(
                "start_tls upgrades ldap:// connections; an ldaps:// url already uses TLS."
            )
        try:
            return ldap3.Server(
                parts.hostname,
                port=port or (636 if use_ssl else 389),
                use_ssl=use_ssl,
                tls=self._tls() if use_ssl or self.settings.flag("start_tls") else None,
                get_info=ldap3.NONE,
                connect_timeout=self.settings.timeout,
            )
        except LDAPException as exc:
            raise ConnectorConfigurationError(f"url {url!r}: {exception_text(exc)}") from None

    def _tls(self) -> ldap3.Tls:
        """Certificate checking on (unless ``tls_verify`` is false), against ``ca_file``
        (relative to the configuration's folder) or the system's CAs."""
        ca_file = self.settings.text("ca_file")
        if ca_file:
            path = Path(ca_file).expanduser()
            path = path if path.is_absolute() else self.settings.base_dir / path
            if not path.is_file():
                raise ConnectorConfigurationError(f"ca_file {str(path)!r}: no such file.")
            ca_file = str(path)
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED if self.settings.flag("tls_verify") else ssl.CERT_NONE,
            ca_certs_file=ca_file or None,
        )

    def open(self) -> None:
        """Connect (TLS as configured), bind once, and check that ``base_dn`` exists.

        ldap3's SYNC strategy does the connecting, TLS and bind in this thread; then
        :class:`Transport` takes the socket over for every request.
        """
        if self._transport is not None:
            return
        server = self._server()
        self.settings.check()
        connection = ldap3.Connection(
            server,
            user=self.settings.bind_dn or None,
            password=self.settings.get("bind_password") or None,
            client_strategy=ldap3.SYNC,
            raise_exceptions=False,
            auto_referrals=False,
            return_empty_attributes=False,
            check_names=False,
            receive_timeout=self.settings.timeout,
        )
        try:
            connection.open(read_server_info=False)
            if self.settings.flag("start_tls") and not connection.start_tls(read_server_info=False):
                raise self._unreachable(Exception(f"StartTLS failed: {connection.last_error}"))
            bound = connection.bind(read_server_info=False)
        except LDAPException as exc:
            _quietly_close(connection)
            raise self._unreachable(exc) from None
        except ConnectionFailed:
            _quietly_close(connection)
            raise
        if not bound:
            reason = connection.last_error or "the bind was refused"
            _quietly_close(connection)
            if connection.result and connection.result.get("result") == STRONGER_AUTH_REQUIRED:
                raise ConnectionFailed(
                    f"{self.settings.url} accepts the password of {self.settings.who()} only "
                    f"over an encrypted connection ({reason}): use an ldaps:// url or set "
                    "start_tls: true",
                    transient=False,
                )
            raise ConnectionFailed(
                f"{self.settings.url} refused the credentials of {self.settings.who()}: {reason}",
                transient=False,
            )
        self._transport = Transport(connection, self.settings.url, self.settings.timeout)
        try:
            self.require_entry(self.settings.base_dn, "base_dn")
            self.settings.directory = self._directory()
        except BaseException:
            self.close()
            raise

    def _directory(self) -> Directory:
        """The directory of the ``directory`` setting and the root DSE, with the
        ``delta_method`` checked against it."""
        directory = resolve(self.settings.text("directory"), self.root_dse(), self.settings.url)
        check_delta_method(
            self.settings.delta_method(),
            directory,
            self.settings.url,
            explicit=bool(self.settings.text("delta_method")),
        )
        return directory

    @property
    def directory(self) -> Directory:
        """The directory this session talks to (found when it opened)."""
        if self.settings.directory is None:
            raise ConnectorError("The ldap connector is not open; use it as a context manager.")
        return self.settings.directory

    def _unreachable(self, exc: Exception) -> ConnectionFailed:
        reason = exception_text(exc)
        if "doesn't match any name" in reason:  # ldap3's host name check
            return ConnectionFailed(
                f"cannot reach {self.settings.url}: the server's certificate names another "
                f"host ({reason}); put a name the certificate holds in url",
                transient=False,
            )
        if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate" in reason.lower():
            return ConnectionFailed(
                f"cannot reach {self.settings.url}: the server's certificate is not trusted "
                f"({reason}); set ca_file to the PEM file of the CA that signed it",
                transient=False,
            )
        return ConnectionFailed(f"cannot reach {self.settings.url}: {reason}")

    def close(self) -> None:
        transport, self._transport = self._transport, None
        self._schema = self._root = None
        self.settings.directory = None
        if transport is not None:
            transport.close()

    @property
    def connection(self) -> ldap3.Connection:
        """The open ldap3 connection; :class:`ConnectionFailed` once it broke."""
        transport = self.transport
        if transport.lost:
            raise ConnectionFailed(
                f"the connection to {self.settings.url} was lost: {transport.lost}"
            )
        return transport.connection

    @property
    def transport(self) -> Transport:
        """The transport of the open connection."""
        if self._transport is None:
            raise ConnectorError("The ldap connector is not open; use it as a context manager.")
        return self._transport

    def send(self, build: Callable[[int], bytes], what: str) -> int:
        """Send the request ``build(message_id)``; its message id."""
        return self.transport.send(build, what)

    def wait(self, message_id: int, what: str) -> Response:
        """The response to a request, waiting at most ``timeout`` seconds.

        An answer that arrived before the connection broke is still returned.
        """
        return self.transport.wait(message_id, what)

    def send_search(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        *,
        scope: str = ldap3.SUBTREE,
        page_size: int | None = None,
        cookie: bytes | None = None,
        size_limit: int = 0,
        controls: list[tuple[str, bool, bytes | None]] | None = None,
        what: str,
    ) -> int:
        attributes = list(attributes)

        def build(message_id: int) -> bytes:
            return internals.search_message(
                message_id,
                base,
                search_filter,
                scope,
                attributes,
                size_limit=size_limit,
                time_limit=self.settings.timeout,
                paged_size=page_size,
                paged_cookie=cookie,
                controls=controls,
            )

        return self.send(build, what)

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        *,
        scope: str = ldap3.SUBTREE,
        what: str,
        missing_ok: bool = False,
    ) -> list[dict[str, Any]]:
        """The entries of one (unpaged) search; raises on failure."""
        message_id = self.send_search(base, search_filter, attributes, scope=scope, what=what)
        response = self.wait(message_id, what)
        if missing_ok and response.code == NO_SUCH_OBJECT:
            return []
        self.check_search(response, base, what)
        self.ranges.complete(response.entries, what)
        return response.entries

    def paged_search(
        self,
        base: str,
        search_filter: str,
        attributes: list[str],
        page_size: int,
        what: str,
        *,
        controls: list[tuple[str, bool, bytes | None]] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """The entries of a paged subtree search, page by page.

        Every page repeats the filter, attributes and ``controls``; the next page is
        requested before the current one is handed over, so the directory works while
        the caller does. An entry outside ``base`` is left out: Samba decides which
        entries a paged search returns at its first page and reads each one when its
        page is asked for, so an entry moved out of ``base`` meanwhile comes back with
        its new DN (tests/ad/test_ad_paging.py) — it is no longer in the search's scope.
        """
        message_id = self.send_search(
            base, search_filter, attributes, page_size=page_size, controls=controls, what=what
        )
        within = _within(base)
        while True:
            response = self.wait(message_id, what)
            self.check_search(response, base, what)
            self.ranges.complete(response.entries, what)  # before the next page is asked for
            if response.cookie:
                message_id = self.send_search(
                    base,
                    search_filter,
                    attributes,
                    page_size=page_size,
                    cookie=response.cookie,
                    controls=controls,
                    what=what,
                )
            yield [entry for entry in response.entries if within(entry["dn"])]
            if not response.cookie:
                return

    def check_search(self, response: Response, base: str, what: str) -> None:
        if response.ok:
            return
        if response.code == NO_SUCH_OBJECT:
            raise ConnectorConfigurationError(
                f"{base!r} does not exist on {self.settings.url} "
                f"(or {self.settings.who()} cannot see it), while {what}"
            )
        if response.code == SIZE_LIMIT_EXCEEDED:
            raise ConnectorError(
                f"{self.settings.url} stopped {what}: its size limit was exceeded "
                f"({response.describe()}); raise the limit for {self.settings.who()} or use paging"
            )
        if response.code == TIME_LIMIT_EXCEEDED:
            raise ConnectorError(
                f"{self.settings.url} stopped {what}: the time limit "
                f"({self.settings.timeout} s) was exceeded ({response.describe()})",
                transient=True,
            )
        if response.code == INSUFFICIENT_ACCESS:
            raise ConnectorConfigurationError(
                f"{self.settings.who()} may not read {base!r} on {self.settings.url} "
                f"({response.describe()})"
            )
        raise ConnectorError(
            f"{what} failed on {self.settings.url}: {response.describe()}",
            transient=response.code in TRANSIENT_RESULTS,
        )

    def require_entry(self, dn: str, setting: str) -> None:
        """Raise :class:`ConnectorConfigurationError` naming ``dn`` when it does not exist."""
        try:
            parse_dn(dn)
        except DNError as exc:
            raise ConnectorConfigurationError(f"{setting}: {exc}") from None
        message_id = self.send_search(
            dn, "(objectClass=*)", ["1.1"], scope=ldap3.BASE, what=f"reading {setting} {dn!r}"
        )
        response = self.wait(message_id, f"reading {setting} {dn!r}")
        if response.code in (NO_SUCH_OBJECT, 34) or (response.ok and not response.entries):
            raise ConnectorConfigurationError(
                f"{setting} {dn!r} does not exist on {self.settings.url} "
                f"(or {self.settings.who()} cannot see it)"
            )
        self.check_search(response, dn, f"reading {setting} {dn!r}")

    def root_dse(self) -> dict[str, list[str]]:
        """The root DSE's subschemaSubentry, supportedControl and what tells the
        directories apart (:data:`~connectors.backends.ldap.directory.ROOT_DSE_ATTRIBUTES`),
        read once."""
        if self._root is None:
            names = ["subschemaSubentry", "supportedControl", *ROOT_DSE_ATTRIBUTES]
            entries = self.search(
                "", "(objectClass=*)", names, scope=ldap3.BASE, what="reading the root DSE"
            )
            self._root = {
                name: [v.decode("utf-8", "replace") for v in raw_values(entries[0], name)]
                for name in names
                if entries
            }
        return self._root

    def supports_post_read(self) -> bool:
        """True when the directory offers the post-read control (RFC 4527)."""
        return POST_READ_OID in self.root_dse().get("supportedControl", [])

    def schema(self) -> Schema:
        """The directory's schema, read once per connection."""
        if self._schema is None:
            subschema = (self.root_dse().get("subschemaSubentry") or ["cn=Subschema"])[0]
            entries = self.search(
                subschema,
                "(objectClass=subschema)",
                ["objectClasses", "attributeTypes", "dITContentRules"],
                scope=ldap3.BASE,
                what=f"reading the schema {subschema!r}",
            )
            if not entries:
                raise ConnectorError(
                    f"{self.settings.url} did not return its schema ({subschema!r})"
                )
            self._schema = Schema(
                [v.decode("utf-8", "replace") for v in raw_values(entries[0], "objectClasses")],
                [v.decode("utf-8", "replace") for v in raw_values(entries[0], "attributeTypes")],
                [v.decode("utf-8", "replace") for v in raw_values(entries[0], "dITContentRules")],
            )
        return self._schema


def _within(base: str) -> Callable[[str], bool]:
    """A test of whether a DN is ``base`` or beneath it: a comparison of the text's end
    for the entries a server spells as it spelt the base, normalised DNs otherwise."""
    suffix = base.lower()
    try:
        base_key = normalise_dn(base)
    except DNError:
        return lambda dn: True  # the search itself refused such a base

    def within(dn: str) -> bool:
        lowered = dn.lower()
        if lowered == suffix:
            return True
        at = len(lowered) - len(suffix) - 1
        if at > 0 and lowered.endswith("," + suffix) and lowered[at - 1] != "\\":
            return True
        try:
            return is_within(normalise_dn(dn), base_key)
        except DNError:
            return True  # not ours to judge: the reader reports what it cannot read

    return within


def _quietly_close(connection: ldap3.Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        connection.unbind()
