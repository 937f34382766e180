"""Shared pieces of the HTTP middlewares (docs/http.md is the contract): the
``Idempotency-Key`` parser (an RFC 8941 sf-string), the store key, the fingerprint bytes,
the stored-response record layout and the problem+json documents. Every byte here must
match the Node implementation (node/http.js) so both replay each other's responses."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

__all__ = [
    "parse_idempotency_key",
    "store_key",
    "fingerprint_bytes",
    "problem_body",
    "response_metadata",
    "stored_response",
    "DEFAULT_REPLAY_HEADERS",
    "NEVER_REPLAYED",
    "default_should_store",
]

MAX_KEY_BYTES = 255
PROBLEM_TYPE = "urn:seawall:problem:"
FORMAT_NAME = "seawall-http"
FORMAT_VERSION = "1"

PROBLEMS = {
    "idempotency-key-missing": (400, "Idempotency-Key header is missing"),
    "idempotency-key-invalid": (400, "Idempotency-Key header is invalid"),
    "request-too-large": (413, "Request content is too large"),
    "idempotency-key-in-progress": (409, "A request with this Idempotency-Key is still being processed"),
    "idempotency-key-reused": (422, "Idempotency-Key was already used with a different request"),
    "idempotency-store-unavailable": (503, "The idempotency store is unavailable"),
    "response-too-large": (500, "The response is too large to store"),
    "stored-response-unreadable": (500, "The stored response cannot be replayed"),
    "invalid-timeout": (400, "The request timeout header is invalid"),
    "deadline-exceeded": (504, "The request deadline was exceeded"),
}

DEFAULT_REPLAY_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-location",
    "etag",
    "expires",
    "last-modified",
    "link",
    "location",
    "retry-after",
    "vary",
)

NEVER_REPLAYED = frozenset(
    (
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "trailer",
        "te",
        "date",
        "idempotent-replayed",
    )
)

TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_UNQUOTED = re.compile(r"^[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=]*$")
_TCHAR_EXTRA = set("!#$%&'*+-.^_`|~")


def default_should_store(status: int) -> bool:
    """Every status below 500 except 408, 425 and 429."""
    return status < 500 and status not in (408, 425, 429)


def problem_body(slug: str, detail: str) -> bytes:
    """The RFC 9457 document of ``slug``: members type, title, status, detail in that order."""
    status, title = PROBLEMS[slug]
    return json.dumps(
        {"type": PROBLEM_TYPE + slug, "title": title, "status": status, "detail": detail},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def retry_after_seconds(seconds: Optional[float]) -> int:
    """Seconds left on a lease, rounded up, at least 1."""
    if seconds is None or not math.isfinite(seconds):
        return 1
    return max(1, math.ceil(seconds))


# --- the Idempotency-Key field (RFC 8941) ---------------------------------------------------


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _is_lc_alpha(c: str) -> bool:
    return "a" <= c <= "z"


def _is_alpha(c: str) -> bool:
    return _is_lc_alpha(c) or "A" <= c <= "Z"


def _is_tchar(c: str) -> bool:
    return _is_alpha(c) or _is_digit(c) or c in _TCHAR_EXTRA


def _at(s: str, i: int) -> str:
    return s[i] if 0 <= i < len(s) else ""


def _sf_string(s: str, i: int) -> Union[str, Tuple[str, int]]:
    """An sf-string at ``s[i]`` (a DQUOTE): (value, next index), or a reason (str)."""
    out: List[str] = []
    i += 1
    while True:
        if i >= len(s):
            return "the quoted string is not closed"
        c = s[i]
        i += 1
        if c == "\\":
            d = _at(s, i)
            i += 1
            if d not in ('"', "\\") or d == "":
                return 'a backslash may only escape \\" or \\\\'
            out.append(d)
        elif c == '"':
            return ("".join(out), i)
        elif not (" " <= c <= "~"):
            return "a string holds printable ASCII only (0x20-0x7E)"
        else:
            out.append(c)


def _sf_bare_item(s: str, i: int) -> Union[int, str]:
    c = _at(s, i)
    if c == "-" or _is_digit(c):
        j = i + 1 if c == "-" else i
        digits = 0
        dot = -1
        if not _is_digit(_at(s, j)):
            return "a number needs a digit"
        while j < len(s):
            d = s[j]
            if _is_digit(d):
                digits += 1
            elif d == "." and dot == -1:
                if digits > 12:
                    return "a decimal has at most 12 integer digits"
                dot = digits
            else:
                break
            if dot == -1 and digits > 15:
                return "an integer has at most 15 digits"
            j += 1
        if dot != -1 and (digits == dot or digits - dot > 3):
            return "a decimal has 1 to 3 fractional digits"
        return j
    if c == '"':
        r = _sf_string(s, i)
        return r if isinstance(r, str) else r[1]
    if c == "*" or (c != "" and _is_alpha(c)):
        j = i + 1
        while j < len(s) and (_is_tchar(s[j]) or s[j] in ":/"):
            j += 1
        return j
    if c == ":":
        end = s.find(":", i + 1)
        if end == -1 or not _BASE64.match(s[i + 1 : end]):
            return "a byte sequence is not closed or not base64"
        return end + 1
    if c == "?":
        if _at(s, i + 1) not in ("0", "1") or _at(s, i + 1) == "":
            return "a boolean is ?0 or ?1"
        return i + 2
    return "a parameter value is not a Structured Field item"


def _sf_parameters(s: str, i: int) -> Union[int, str]:
    while i < len(s) and s[i] == ";":
        i += 1
        while _at(s, i) == " ":
            i += 1
        c = _at(s, i)
        if not (c != "" and (_is_lc_alpha(c) or c == "*")):
            return "a parameter name starts with a lowercase letter or *"
        i += 1
        while i < len(s):
            d = s[i]
            if _is_lc_alpha(d) or _is_digit(d) or d in "_-.*":
                i += 1
            else:
                break
        if _at(s, i) == "=":
            r = _sf_bare_item(s, i + 1)
            if isinstance(r, str):
                return r
            i = r
    return i


def parse_idempotency_key(value: Union[str, bytes, None], allow_unquoted: bool = False) -> Tuple[Optional[str], Optional[str]]:
    """Parses an ``Idempotency-Key`` field value (bytes are read as latin-1): ``(key, None)``
    or ``(None, reason)``."""
    if value is None:
        return None, "the field is missing"
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    i = 0
    while _at(value, i) == " ":
        i += 1
    if _at(value, i) == '"':
        r = _sf_string(value, i)
        if isinstance(r, str):
            return None, f'{r} (expected a quoted string such as "8e03978e-40d5-43e8")'
        key, nxt = r
        p = _sf_parameters(value, nxt)
        if isinstance(p, str):
            return None, p
        j = p
        while _at(value, j) == " ":
            j += 1
        if j != len(value):
            rest = json.dumps(value[j : j + 10])
            return None, f"unexpected {rest} after the key (one key per request: a quoted string, optionally ;parameters)"
    elif allow_unquoted and _UNQUOTED.match(value.strip(" \t")):
        key = value.strip(" \t")
    else:
        got = json.dumps(value[:40] + "..." if len(value) > 40 else value)
        return None, f'it must be a Structured Field string: a quoted string such as "8e03978e-40d5-43e8", got {got}'
    if len(key) == 0:
        return None, "the key is empty (a key is 1 to 255 bytes)"
    if len(key) > MAX_KEY_BYTES:
        return None, f"the key is {len(key)} bytes long; a key is 1 to 255 bytes"
    return key, None


# --- what identifies a request ----------------------------------------------------------------


def store_key(method: Union[str, bytes], path: Union[str, bytes], identity: str, key: str, prefix: str = "http:") -> str:
    """``prefix`` + hex SHA-256 of ``"seawall-http-key/1" LF METHOD LF path LF identity LF key``."""
    m = method.encode("latin-1") if isinstance(method, str) else method
    p = path.encode("latin-1") if isinstance(path, str) else path
    h = hashlib.sha256()
    h.update(b"seawall-http-key/1\n" + m + b"\n" + p + b"\n")
    h.update(identity.encode("utf-8") + b"\n")
    h.update(key.encode("latin-1"))
    return prefix + h.hexdigest()


def fingerprint_bytes(
    method: Union[str, bytes],
    target: Union[str, bytes],
    headers: Sequence[Tuple[str, Optional[bytes]]],
    body: bytes,
) -> bytes:
    """The bytes a request's fingerprint is the SHA-256 of (docs/http.md)."""
    m = method.encode("latin-1") if isinstance(method, str) else method
    t = target.encode("latin-1") if isinstance(target, str) else target
    parts = [b"seawall-http-fingerprint/1\n", m, b"\n", t, b"\n"]
    for name, value in headers:
        n = name.encode("latin-1")
        parts.append(n + b"\n" if value is None else n + b":" + value + b"\n")
    parts.append(b"\n")
    parts.append(bytes(body))
    return b"".join(parts)


def strip_absolute(path: bytes) -> bytes:
    """The path of a target in absolute form (``http://host/orders`` -> ``/orders``)."""
    if path[:1] != b"/":
        m = re.match(rb"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*", path)
        if m is not None:
            path = path[m.end() :] or b"/"
        if path[:1] != b"/":
            path = b"/" + path
    return path


# --- the stored response ----------------------------------------------------------------------


def replay_allow_list(names: Optional[Iterable[str]]) -> frozenset:
    """The ``replay_headers`` option, lowercased; names on the never-stored list are refused."""
    from ._errors import InvalidArgument

    if names is None:
        return frozenset(DEFAULT_REPLAY_HEADERS)
    if isinstance(names, (str, bytes)):
        raise InvalidArgument(f"invalid argument: replay_headers = {names!r}: expected a list of header names")
    out = set()
    for n in names:
        if not isinstance(n, str) or not TOKEN.match(n):
            raise InvalidArgument(f"invalid argument: replay_headers = {n!r}: expected a header name")
        low = n.lower()
        if low in NEVER_REPLAYED:
            raise InvalidArgument(f"invalid argument: replay_headers = {n!r}: this header is never stored or replayed")
        out.add(low)
    return frozenset(out)


def response_metadata(status: int, headers: Iterable[Tuple[bytes, bytes]], allow: frozenset) -> List[Tuple[str, str]]:
    """The record's metadata for a response: ``seawall-http=1``, ``status=NNN``, then
    ``h:<name>=value`` per allow-listed header, in order."""
    md = [(FORMAT_NAME, FORMAT_VERSION), ("status", "%03d" % status)]
    for name, value in headers:
        n = name.decode("latin-1").lower()
        if n in allow:
            md.append(("h:" + n, value.decode("latin-1")))
    return md


class StoredResponse:
    __slots__ = ("status", "content_type", "headers", "body")

    def __init__(self, status: int, content_type: str, headers: List[Tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.content_type = content_type
        self.headers = headers
        self.body = body


_STATUS = re.compile(r"^[2-5][0-9][0-9]$")
_BAD_VALUE = re.compile(r"[\r\n\0]")


def stored_response(record: Any) -> Union[StoredResponse, str]:
    """Reads a stored response from a record, or says why it cannot (a str)."""
    md = list(record.metadata)
    if len(md) < 2 or md[0][0] != FORMAT_NAME:
        return 'the record under this key is not a stored HTTP response (no "seawall-http" metadata)'
    if md[0][1] != FORMAT_VERSION:
        return f'stored HTTP response format {json.dumps(md[0][1])} is not supported (this build reads "1")'
    if md[1][0] != "status" or not _STATUS.match(md[1][1]):
        return f"the stored response has no valid status ({json.dumps(list(md[1]))})"
    headers: List[Tuple[str, str]] = []
    for name, value in md[2:]:
        if not name.startswith("h:"):
            continue
        h = name[2:]
        if not TOKEN.match(h) or h in NEVER_REPLAYED or _BAD_VALUE.search(value):
            continue
        headers.append((h, value))
    return StoredResponse(int(md[1][1]), record.content_type, headers, bytes(record.result))


def replay_headers_bytes(stored: StoredResponse, method: str) -> Tuple[List[Tuple[bytes, bytes]], bytes]:
    """Response header pairs and body for replaying ``stored`` (as docs/http.md says)."""
    out = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in stored.headers]
    if stored.content_type:
        out.append((b"content-type", stored.content_type.encode("latin-1")))
    out.append((b"idempotent-replayed", b"true"))
    bodiless = stored.status in (204, 304)
    if not bodiless:
        out.append((b"content-length", str(len(stored.body)).encode()))
    body = b"" if bodiless or method == "HEAD" else stored.body
    return out, body


def problem_headers(slug: str, detail: str, extra: Optional[List[Tuple[bytes, bytes]]] = None) -> Tuple[int, List[Tuple[bytes, bytes]], bytes]:
    body = problem_body(slug, detail)
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"cache-control", b"no-store"),
    ]
    if extra:
        headers.extend(extra)
    headers.append((b"content-length", str(len(body)).encode()))
    return PROBLEMS[slug][0], headers, body


def check_callable(field: str, value: Any) -> Optional[Callable[..., Any]]:
    from ._errors import InvalidArgument

    if value is not None and not callable(value):
        raise InvalidArgument(f"invalid argument: {field} = <{type(value).__name__}>: expected a callable (or None)")
    return value
