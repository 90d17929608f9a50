"""The LDAP connector (ldap3): schema discovery, paged full import, accesslog delta
import, and pipelined export (add, modify, modify DN, delete). Its manual — settings,
TLS, errors, how import, delta and export behave — is docs/connectors/ldap.md.

One module per job: ``settings``; ``session`` (connect, TLS, bind, searches) over
``transport`` (the single-threaded socket); ``schema``; ``values``; ``dn``;
``importing`` (full and delta import) with ``entries`` (entries → import objects),
``accesslog`` (the log folded per entry) and ``newest`` (the watermark's probes);
``exporting`` (the flows of requests) over ``pipeline``; ``wire`` and ``internals``
encode and decode LDAP messages; ``connector`` ties them together.
"""

from connectors.backends.ldap.connector import LdapConnector

__all__ = ["LdapConnector"]
