"""URL parsing and host allow-listing for the ``wasi_experimental_http`` host module.

Rules:
- URLs are parsed the way a WHATWG URL parser does, for the parts that decide *where* a request
  goes: leading/trailing C0 controls and spaces are stripped and every TAB, LF and CR is removed
  (so a guest cannot smuggle a line break into a request line); the scheme must start with a
  letter; ``http``, ``https``, ``ws``, ``wss``, ``ftp`` and ``file`` are "special" schemes whose
  authority may follow any run of ``/`` or ``\\``. Anything without a scheme is relative and fails
  (there is never a base URL).
- Hosts of special URLs are normalised before any comparison: percent-decoded, IDNA-mapped to
  ASCII (stdlib IDNA 2003 for non-ASCII labels), lower-cased; a host that "ends in a number" is an
  IPv4 address in any WHATWG spelling (``0x7f.1``, ``2130706433``) and is serialised as dotted
  decimal; IPv6 literals are serialised compressed in brackets. Forbidden code points or an empty
  host make the URL invalid. Hosts of other schemes are opaque (kept as written).
- Ports are decimal, at most 65535; a port equal to the scheme's default is dropped.
- A URL without a host (``mailto:x``, ``data:...``, ``file:///x``, ``localhost:3000``) is
  *invalid* for our purposes: outbound requests always need a host.
- The path is split on ``/`` (and ``\\`` for special schemes), dot segments are resolved and bytes
  outside the WHATWG path set are percent-encoded; the query is percent-encoded likewise; the
  fragment is dropped. The result is a request target that can never contain a space or a control.
- Allow-list (``AllowList``): no list or an empty list denies everything; an entry exactly equal to
  ``insecure:allow-all`` allows everything and the other entries are then ignored; otherwise every
  entry must parse as a URL with a host, and one bad entry makes every check ``INVALID``; a request
  is allowed when its normalised host string equals an entry's host string. Scheme, port, path,
  query and userinfo of an entry are ignored; there are no wildcards and no subdomain matching.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from encodings import idna as _idna2003

__all__ = [
    "ALLOW_ALL",
    "AllowList",
    "InvalidUrl",
    "ParsedUrl",
    "Verdict",
    "join_url",
    "parse_url",
]

ALLOW_ALL = "insecure:allow-all"

_DEFAULT_PORTS: dict[str, int | None] = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "ftp": 21,
    "file": None,
}
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_FORBIDDEN_HOST = frozenset("\x00\t\n\r #/:<>?@[\\]^|")
_FORBIDDEN_DOMAIN = _FORBIDDEN_HOST | frozenset(chr(c) for c in range(0x20)) | {"%", "\x7f"}
_C0_CONTROL_SET = frozenset(range(0x20)) | frozenset(range(0x7F, 0x100))
_PATH_SET = _C0_CONTROL_SET | frozenset(b' "#<>?`{}')
_SPECIAL_QUERY_SET = _C0_CONTROL_SET | frozenset(b" \"#<>'")
_RADIX_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}
_SINGLE_DOT = frozenset({".", "%2e"})
_DOUBLE_DOT = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})


class InvalidUrl(ValueError):
    """The text is not an absolute URL with a host."""


@dataclass(frozen=True)
class ParsedUrl:
    """An absolute URL with a host, normalised as described in the module docstring."""

    scheme: str
    host: str
    port: int | None
    username: str
    password: str
    target: str

    @property
    def effective_port(self) -> int | None:
        """The explicit port, or the scheme's default port (``None`` when it has none)."""
        return self.port if self.port is not None else _DEFAULT_PORTS.get(self.scheme)

    @property
    def connect_host(self) -> str:
        """The host as a socket wants it: IPv6 literals without their brackets."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def origin_key(self) -> tuple[str, int | None]:
        """Host and effective port: what decides whether credentials may follow a redirect."""
        return (self.host, self.effective_port)

    def serialize(self) -> str:
        """The URL as text, without userinfo and fragment."""
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.target}"


class Verdict(enum.Enum):
    """The outcome of an allow-list check."""

    ALLOWED = "allowed"
    DENIED = "denied"
    INVALID_ENTRY = "invalid entry"


class AllowList:
    """The ``allowed_hosts`` rules of one route, parsed once."""

    def __init__(self, entries: Sequence[str] | None) -> None:
        self._entries = None if entries is None else tuple(entries)
        self._allow_all = self._entries is not None and ALLOW_ALL in self._entries
        self._hosts: frozenset[str] | None = None
        if self._entries and not self._allow_all:
            self._hosts = _entry_hosts(self._entries)

    @property
    def entries(self) -> tuple[str, ...] | None:
        return self._entries

    def verdict(self, url: ParsedUrl) -> Verdict:
        """Decide whether a request to ``url`` may be sent."""
        if not self._entries:
            return Verdict.DENIED
        if self._allow_all:
            return Verdict.ALLOWED
        if self._hosts is None:
            return Verdict.INVALID_ENTRY
        return Verdict.ALLOWED if url.host in self._hosts else Verdict.DENIED


def _entry_hosts(entries: tuple[str, ...]) -> frozenset[str] | None:
    """The host of every entry, or ``None`` if any entry is not a URL with a host."""
    try:
        return frozenset(parse_url(entry).host for entry in entries)
    except InvalidUrl:
        return None


def parse_url(text: str) -> ParsedUrl:
    """Parse an absolute URL that has a host, or raise ``InvalidUrl``."""
    text = text.strip("".join(chr(c) for c in range(0x21)))
    text = text.replace("\t", "").replace("\n", "").replace("\r", "")
    scheme, rest = _split_scheme(text)
    special = scheme in _DEFAULT_PORTS
    if special:
        rest = rest.lstrip("/\\") if scheme != "file" else _file_authority(rest)
    elif rest.startswith("//"):
        rest = rest[2:]
    else:
        raise InvalidUrl("URL has no host")
    authority, remainder = _split_authority(rest, special)
    userinfo, hostport = _split_userinfo(authority)
    raw_host, port = _split_port(hostport, scheme)
    host = _parse_host(raw_host, special)
    if not host or (scheme == "file" and host == "localhost"):
        raise InvalidUrl("URL has no host")
    username, _, password = userinfo.partition(":")
    return ParsedUrl(
        scheme=scheme,
        host=host,
        port=port,
        username=_percent_decode_text(username),
        password=_percent_decode_text(password),
        target=_request_target(remainder, special),
    )


def join_url(base: ParsedUrl, reference: str) -> ParsedUrl:
    """Resolve a redirect ``Location`` against the URL that produced it."""
    return parse_url(urllib.parse.urljoin(base.serialize(), reference.strip()))


def _split_scheme(text: str) -> tuple[str, str]:
    match = _SCHEME_RE.match(text)
    if match is None or text[match.end() : match.end() + 1] != ":":
        raise InvalidUrl("URL is relative or has no scheme")
    return match.group().lower(), text[match.end() + 1 :]


def _file_authority(rest: str) -> str:
    if rest[:2].replace("\\", "/") != "//":
        raise InvalidUrl("file URL has no host")
    return rest[2:]


def _split_authority(rest: str, special: bool) -> tuple[str, str]:
    stops = "/?#\\" if special else "/?#"
    end = next((i for i, ch in enumerate(rest) if ch in stops), len(rest))
    return rest[:end], rest[end:]


def _split_userinfo(authority: str) -> tuple[str, str]:
    userinfo, at, hostport = authority.rpartition("@")
    return (userinfo, hostport) if at else ("", authority)


def _split_port(hostport: str, scheme: str) -> tuple[str, int | None]:
    bracket_end = hostport.rfind("]") if hostport.startswith("[") else -1
    colon = hostport.find(":", bracket_end + 1)
    if colon < 0:
        return hostport, None
    host, digits = hostport[:colon], hostport[colon + 1 :]
    if not digits:
        return host, None
    if not (digits.isascii() and digits.isdigit()) or int(digits) > 65535:
        raise InvalidUrl("URL port is not a number from 0 to 65535")
    port = int(digits)
    return host, None if port == _DEFAULT_PORTS.get(scheme) else port


def _parse_host(raw: str, special: bool) -> str:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise InvalidUrl("unterminated IPv6 address")
        return "[" + _parse_ipv6(raw[1:-1]) + "]"
    if not special:
        return _opaque_host(raw)
    domain = _domain_to_ascii(_percent_decode_text(raw))
    if not domain or any(ch in _FORBIDDEN_DOMAIN for ch in domain):
        raise InvalidUrl("URL host is empty or has a forbidden character")
    return _parse_ipv4(domain) if _ends_in_number(domain) else domain


def _opaque_host(raw: str) -> str:
    if any(ch in _FORBIDDEN_HOST for ch in raw):
        raise InvalidUrl("URL host has a forbidden character")
    return _percent_encode(raw, _C0_CONTROL_SET)


def _domain_to_ascii(domain: str) -> str:
    labels = re.split("[.\u3002\uff0e\uff61]", domain)
    try:
        return ".".join(_label_to_ascii(label) for label in labels)
    except UnicodeError as exc:
        raise InvalidUrl("URL host is not a valid domain name") from exc


def _label_to_ascii(label: str) -> str:
    if label.isascii():
        ascii_label = label.lower()
    else:
        ascii_label = _idna2003.ToASCII(label).decode("ascii").lower()
    if ascii_label.startswith("xn--"):
        ascii_label[4:].encode("ascii").decode("punycode")
    return ascii_label


def _ends_in_number(domain: str) -> bool:
    parts = domain.split(".")
    if parts[-1] == "":
        if len(parts) == 1:
            return False
        parts.pop()
    last = parts[-1]
    if last.isascii() and last.isdigit():
        return True
    return _ipv4_number(last) is not None


def _ipv4_number(part: str) -> int | None:
    if not part:
        return None
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        part, radix = part[1:], 8
    if not part:
        return 0
    if not all(ch in _RADIX_DIGITS[radix] for ch in part):
        return None
    return int(part, radix)


def _parse_ipv4(domain: str) -> str:
    parts = domain.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise InvalidUrl("URL host is not a valid IPv4 address")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise InvalidUrl("URL host is not a valid IPv4 address")
    address = values[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(values[:-1]))
    return str(ipaddress.IPv4Address(address))


def _parse_ipv6(text: str) -> str:
    if "%" in text:
        raise InvalidUrl("URL host is not a valid IPv6 address")
    try:
        packed = ipaddress.IPv6Address(text).packed
    except ValueError as exc:
        raise InvalidUrl("URL host is not a valid IPv6 address") from exc
    pieces = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    start, length = _longest_zero_run(pieces)
    if length < 2:
        return ":".join(f"{p:x}" for p in pieces)
    head = ":".join(f"{p:x}" for p in pieces[:start])
    tail = ":".join(f"{p:x}" for p in pieces[start + length :])
    return f"{head}::{tail}"


def _longest_zero_run(pieces: list[int]) -> tuple[int, int]:
    best_start, best_len, run_start = 0, 0, -1
    for i, piece in enumerate([*pieces, 1]):
        if piece == 0 and run_start < 0:
            run_start = i
        elif piece != 0 and run_start >= 0:
            if i - run_start > best_len:
                best_start, best_len = run_start, i - run_start
            run_start = -1
    return best_start, best_len


def _request_target(remainder: str, special: bool) -> str:
    remainder = remainder.partition("#")[0]
    path, question, query = remainder.partition("?")
    target = _normalize_path(path, special)
    if question:
        target += "?" + _percent_encode(query, _SPECIAL_QUERY_SET if special else _C0_CONTROL_SET)
    return target


def _normalize_path(path: str, special: bool) -> str:
    if special:
        path = path.replace("\\", "/")
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    out: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        lowered = segment.lower()
        if lowered in _DOUBLE_DOT:
            if out:
                out.pop()
            if last:
                out.append("")
        elif lowered in _SINGLE_DOT:
            if last:
                out.append("")
        else:
            out.append(_percent_encode(segment, _PATH_SET))
    return "/" + "/".join(out)


def _percent_encode(text: str, encode_set: frozenset[int]) -> str:
    data = text.encode("utf-8", "surrogatepass")
    return "".join(f"%{b:02X}" if b in encode_set else chr(b) for b in data)


def _percent_decode_text(text: str) -> str:
    return urllib.parse.unquote(text, encoding="utf-8", errors="replace")
