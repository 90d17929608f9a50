"""Distinguished names (RFC 4514): parse, escape, build, compare.

A DN is a sequence of RDNs, the leftmost naming the entry itself; an RDN is one or
more ``type=value`` pairs joined by ``+``. :func:`parse_dn` turns the text into
``[[(type, value), …], …]`` with escapes resolved (``\\,`` and ``\\2C`` are the same
comma; ``\\c3\\a9`` is ``é``), tolerating the spaces around ``=``, ``,`` and ``+`` that
older servers and people write. :func:`format_dn` writes it back with the minimal
RFC 4514 escaping.

:func:`normalise_dn` is the form DNs are *compared* in (the pitfall "compare DNs
normalised"): attribute types lowercased and well-known aliases unified (``CN``,
``commonName`` and ``2.5.4.3`` are all ``cn``), spaces around separators removed,
values lowercased with runs of spaces collapsed (caseIgnoreMatch), the AVAs of a
multi-valued RDN sorted, and every special character of a value hex-escaped — so the
key contains a literal ``,`` only between RDNs and "is X inside container Y" is a
plain suffix test (:func:`is_within`).

It lives in ``core`` because both the LDAP connector (which sends and compares DNs)
and the expressions' ``ldap_escape`` filter (which builds them) need the same
escaping, and neither should import the other.
"""

from __future__ import annotations

import re

#: Characters RFC 4514 requires (or allows) to be escaped anywhere in a value.
_SPECIAL = frozenset(',+"\\<>;=')
_HEX = frozenset("0123456789abcdefABCDEF")
_KEYSTRING_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_NUMERICOID_RE = re.compile(r"^\d+(\.\d+)*$")
_SPACES_RE = re.compile(r" +")
#: What the plain split of :func:`parse_dn` cannot handle.
_NEEDS_PARSER_RE = re.compile(r'[\\"+#;<>]|[Oo][Ii][Dd]\.|=[^,]*=')
#: Values whose comparison key needs escaping.
_KEY_SPECIAL_RE = re.compile(r'[,+"\\<>;=\x00]|^#')

#: Aliases of the naming attributes people meet in DNs → their usual short name.
_TYPE_ALIASES = {
    "commonname": "cn",
    "2.5.4.3": "cn",
    "surname": "sn",
    "2.5.4.4": "sn",
    "countryname": "c",
    "2.5.4.6": "c",
    "localityname": "l",
    "2.5.4.7": "l",
    "stateorprovincename": "st",
    "2.5.4.8": "st",
    "streetaddress": "street",
    "2.5.4.9": "street",
    "organizationname": "o",
    "2.5.4.10": "o",
    "organizationalunitname": "ou",
    "2.5.4.11": "ou",
    "2.5.4.12": "title",
    "userid": "uid",
    "0.9.2342.19200300.100.1.1": "uid",
    "domaincomponent": "dc",
    "0.9.2342.19200300.100.1.25": "dc",
}

Ava = tuple[str, str]
Rdn = list[Ava]


class DNError(ValueError):
    """A text that is not a valid DN; the message says where and why."""


# --------------------------------------------------------------------------- parsing


def parse_dn(dn: str) -> list[Rdn]:
    """The RDNs of ``dn``, leftmost first, each a list of ``(type, value)`` pairs.

    Values are unescaped; a hex-string value (``#0403…``) is kept as written. The
    empty DN (the root) has no RDNs. Raises :class:`DNError` naming the position.
    """
    if not _NEEDS_PARSER_RE.search(dn):  # most DNs: nothing escaped, quoted or combined
        rdns = []
        for part in dn.split(","):
            attribute_type, equals, value = part.partition("=")
            attribute_type = attribute_type.strip()
            if not equals or not _KEYSTRING_RE.match(attribute_type):
                break  # let the parser say what is wrong, and where
            rdns.append([(attribute_type, value.strip(" "))])
        else:
            if dn.strip():
                return rdns
    return parse_dn_in_full(dn)


def parse_dn_in_full(dn: str) -> list[Rdn]:
    """:func:`parse_dn` without its quick path for plain DNs (the two must agree)."""
    return _Parser(dn).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, problem: str) -> DNError:
        return DNError(f"{self.text!r} is not a valid DN: {problem} at character {self.pos + 1}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def parse(self) -> list[Rdn]:
        if not self.text.strip():
            return []
        rdns: list[Rdn] = []
        rdn: Rdn = []
        while True:
            rdn.append(self.ava())
            self.skip_spaces()
            if self.pos >= len(self.text):
                rdns.append(rdn)
                return rdns
            separator = self.text[self.pos]
            self.pos += 1
            if separator == ",":
                rdns.append(rdn)
                rdn = []
            elif separator != "+":
                self.pos -= 1
                raise self.error(f"unexpected {separator!r}")

    def ava(self) -> Ava:
        self.skip_spaces()
        equals = self.text.find("=", self.pos)
        if equals == -1:
            raise self.error("an RDN without '='")
        attribute_type = self.text[self.pos : equals].strip()
        if attribute_type.lower().startswith("oid."):
            attribute_type = attribute_type[4:]
        if not (_KEYSTRING_RE.match(attribute_type) or _NUMERICOID_RE.match(attribute_type)):
            raise self.error(f"{attribute_type!r} is not an attribute type")
        self.pos = equals + 1
        self.skip_spaces()
        char = self.text[self.pos : self.pos + 1]
        if char == "#":
            return attribute_type, self.hex_string()
        if char == '"':
            return attribute_type, self.quoted()
        return attribute_type, self.string()

    def hex_string(self) -> str:
        start = self.pos
        self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos] in _HEX:
            self.pos += 1
        digits = self.text[start + 1 : self.pos]
        if not digits or len(digits) % 2:
            raise self.error("a '#' value needs an even number of hex digits")
        return self.text[start : self.pos]

    def quoted(self) -> str:
        """An RFC 2253 quoted value (``cn="Doe, John"``)."""
        self.pos += 1
        out = bytearray()
        while True:
            if self.pos >= len(self.text):
                raise self.error("a quoted value is never closed")
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return self.decode(out)
            if char == "\\":
                out += self.escape()
            else:
                out += char.encode()
                self.pos += 1

    def string(self) -> str:
        out = bytearray()
        #: Length of ``out`` up to its last character that is not an unescaped space.
        keep = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in ",+":
                break
            if char == "\\":
                out += self.escape()
                keep = len(out)
                continue
            out += char.encode()
            self.pos += 1
            if char != " ":
                keep = len(out)
        return self.decode(out[:keep])

    def escape(self) -> bytes:
        """The bytes of the escape at ``pos`` (``\\,`` or ``\\2C``); moves past it."""
        pair = self.text[self.pos + 1 : self.pos + 3]
        if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
            self.pos += 3
            return bytes.fromhex(pair)
        if pair[:1] and (pair[0] in _SPECIAL or pair[0] in " #"):
            self.pos += 2
            return pair[0].encode()
        raise self.error("a backslash not followed by a special character or two hex digits")

    def decode(self, raw: bytearray) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("escaped bytes that are not UTF-8") from None


# --------------------------------------------------------------------------- writing


def escape_rdn_value(value: str) -> str:
    """``value`` escaped for an RDN (RFC 4514 §2.4): ``, + " \\ < > ; =`` get a
    backslash, as do a leading ``#`` or space and a trailing space; NUL is ``\\00``."""
    out: list[str] = []
    last = len(value) - 1
    for index, char in enumerate(value):
        if char in _SPECIAL:
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        elif (index == 0 and char in " #") or (index == last and char == " "):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _format_value(value: str) -> str:
    # A hex-string value is written as it was read.
    if value[:1] == "#" and len(value) > 1 and all(c in _HEX for c in value[1:]):
        return value
    return escape_rdn_value(value)


def format_rdn(rdn: Rdn) -> str:
    return "+".join(f"{attribute_type}={_format_value(value)}" for attribute_type, value in rdn)


def format_dn(rdns: list[Rdn]) -> str:
    """The text of parsed RDNs, minimally escaped."""
    return ",".join(format_rdn(rdn) for rdn in rdns)


def build_dn(attribute_type: str, value: str, parent: str) -> str:
    """``attribute_type=<escaped value>,parent`` (just the RDN when parent is empty)."""
    rdn = f"{attribute_type}={escape_rdn_value(value)}"
    return f"{rdn},{parent}" if parent.strip() else rdn


def split_dn(dn: str) -> tuple[str, str]:
    """``(first RDN, parent DN)`` of ``dn``, each as text."""
    rdns = parse_dn(dn)
    if not rdns:
        raise DNError("the empty DN has no RDN")
    return format_rdn(rdns[0]), format_dn(rdns[1:])


def parent_dn(dn: str) -> str:
    """The DN of the entry above ``dn`` ("" for a top-level entry)."""
    return split_dn(dn)[1]


def first_rdn(dn: str) -> Rdn:
    """The ``(type, value)`` pairs of the RDN that names the entry."""
    rdns = parse_dn(dn)
    if not rdns:
        raise DNError("the empty DN has no RDN")
    return rdns[0]


# --------------------------------------------------------------------------- comparing


def _key_type(attribute_type: str) -> str:
    lowered = attribute_type.lower()
    return _TYPE_ALIASES.get(lowered, lowered)


def _key_value(value: str) -> str:
    if value[:1] == "#":
        return value.lower()
    value = _SPACES_RE.sub(" ", value.strip(" ")).lower()
    if not _KEY_SPECIAL_RE.search(value):
        return value
    out = []
    for index, char in enumerate(value):
        if char in _SPECIAL or char == "\x00" or (index == 0 and char in " #"):
            out.append(f"\\{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def normalise_dn(dn: str) -> str:
    """The comparison key of ``dn`` (see the module doc); :class:`DNError` when invalid.

    Two DNs name the same entry when their keys are equal. The key is for comparing
    only: send the DN itself to the server.
    """
    return ",".join(
        "+".join(sorted(f"{_key_type(t)}={_key_value(v)}" for t, v in rdn)) for rdn in parse_dn(dn)
    )


def is_within(dn_key: str, container_key: str) -> bool:
    """True when the normalised ``dn_key`` is the container or lies beneath it."""
    if not container_key:
        return True
    return dn_key == container_key or dn_key.endswith("," + container_key)
