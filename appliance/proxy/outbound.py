"""What a child is sending, as plain text for the personal-information check
(`profiles.pii.find_personal_info`): the values of a form post, the strings of a JSON body or a GraphQL
call, the text fields of a multipart form, a plain-text body, a websocket chat message.

Pure functions over plain values, called by the proxy add-on once per request or message; they never
import mitmproxy, and they never raise on malformed input (they return what could be read, or None).

The text is the values one per line, in the order they were sent, each once: a phone number in one field
is then never glued to the next field's text. Field names are left out, with two exceptions that give
the check the context it needs and nothing else:

- a value under a name that speaks of a phone (`phone`, `tel`, `mobile`, `cell`, `whatsapp`, `sms`...)
  becomes `phone: <value>`, and one under an address name (`address`, `addr`, `street`) becomes
  `address: <value>`: a number without a trunk 0 ("7700900123"), or a street written in lower case, is
  personal information only with such words before it;
- values under names of secrets (passwords, PINs, one-time codes, CSRF and other tokens, signatures,
  captchas, ASP.NET view state) are dropped: they are not what the check looks for, and are not for the
  proxy to pass around.

Values that look like machine tokens are dropped as well: more than 32 printable ASCII characters without
a space or an `@` (CSRF tokens, session ids, base64, JWTs, URLs; an e-mail address keeps its `@` and
stays), and 16 to 32 hex digits with both letters and digits (ids, hashes, UUID-like values).
"""

from __future__ import annotations

import codecs
import json
import re
import zlib
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["MAX_OUTBOUND_BYTES", "outbound_text", "websocket_text"]

MAX_OUTBOUND_BYTES = 65536  # only this much of a body (or a websocket message) is read

# Kinds of field names: what to do with the values under them.
_PLAIN = 0
_PHONE = 1
_ADDRESS = 2
_SECRET = 3
_LABELS = {_PHONE: "phone: ", _ADDRESS: "address: "}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Field names in English, French, Spanish, Italian, German and Dutch.
_PHONE_WORDS = _words(
    "phone telephone tel tele mobile mob cell cellphone msisdn whatsapp sms téléphone portable telefon"
    " telefono teléfono movil móvil celular cellulare handy handynummer telefoon mobiel gsm"
)
_PHONE_STEMS = ("phone", "telephone", "mobile", "cellphone", "whatsapp", "telefon", "téléphone")
_ADDRESS_WORDS = _words(
    "address addr street adresse adres direccion dirección indirizzo anschrift strasse straße rue calle"
)
_ADDRESS_STEMS = ("address", "street", "adresse")
_SECRET_WORDS = _words(
    "pass pwd pw pin otp totp mfa cvv cvc sig signature hmac nonce secret apikey sid sessionid"
    " jsessionid phpsessid auth authorization bearer cookie recaptcha hcaptcha turnstile"
)
_SECRET_PARTS = ("passw", "passcode", "token", "csrf", "xsrf", "captcha", "viewstate", "eventvalidation")
# Words of a field name: `phoneNumber`, `contact_tel`, `user[mobile]`, `__VIEWSTATE`, `téléphone`.
_CAMEL_HUMP = re.compile(r"(?<=[a-zà-ÿ])(?=[A-ZÀ-Þ])")
_NAME_WORDS = re.compile(r"[^\W\d_]+")

# More than 32 printable ASCII characters, no space and no "@"; or 16-32 hex digits, letters and digits.
_TOKEN = re.compile(r"[!-?A-~]{33,}|(?=[0-9a-fA-F-]*[a-fA-F])(?=[0-9a-fA-F-]*[0-9])[0-9a-fA-F-]{16,32}")
# A JSON string literal (group 1), and a `:` after it when it is an object key (group 2). One cut off by
# the end of the text runs to the end, so that a scan never starts again inside it: linear time.
_LITERAL = re.compile(r'"([^"\\]*+(?:\\.[^"\\]*+)*+)(?:"(\s*:)?|\\?\Z)', re.DOTALL)
# A content type's parameters: ;name=value or ;name="quoted value".
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^;]*))')
# Socket.IO frames: engine.io and socket.io packet types, an optional namespace and ack id, then JSON.
_SOCKET_IO = re.compile(r"[0-9]{1,3}(?:/[^,\[{]{0,200},)?[0-9]{0,20}(?=[\[{])")
_SMALL_INT_DIGITS = 7  # a number under a phone name is kept from this many digits up
_BIG_INT_DIGITS = 15  # ... to this many (the longest phone number)
# Text codecs that cannot decode a body with errors="replace", or would read escapes into it.
_NOT_FOR_BODIES = frozenset({"idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape"})


def outbound_text(content_type: str, body: bytes) -> str | None:
    """What a request sends, as text for the personal-information check; None when there is none.

    `content_type` is the request's Content-Type header ("" if absent), `body` its content. Only the
    first MAX_OUTBOUND_BYTES are read (a gzip or zlib body, which some apps send, is inflated up to
    that much). The charset comes from the content type (default UTF-8; undecodable bytes are
    replaced). Read:

    - `application/x-www-form-urlencoded`: the values, URL-decoded (`+` is a space);
    - `application/json`, `*+json`, other `*json` types (NDJSON), GraphQL calls (JSON too): every string
      value at any depth (a string that is itself JSON is read as JSON, once). Numbers, booleans and
      nulls are left out, except a whole number of 7 to 15 digits under a phone name (a phone number
      sent as a number). A body that does not parse (cut at the limit, or malformed) gives the string
      literals found in it; one that does not look like JSON at all is read as plain text;
    - `multipart/form-data`: the parts without a filename whose type is absent, text/* or JSON; files are
      skipped. The boundary comes from the content type (or the body's first line);
    - `text/plain`: as it is, unless it is a whole JSON object or array (beacons post JSON as text/plain
      to avoid a CORS preflight): then its strings;
    - `application/graphql`: the query text as it is;
    - anything else (images, uploads, binary protocols): None.

    Field-name labels and token skipping are described in the module docstring.
    """
    if not body or not content_type:
        return None
    try:
        media, _, rest = content_type.partition(";")
        kind = _body_kind(media.strip().lower())
        if kind is None:
            return None
        params = _params(rest) if rest else {}
        codec = _codec(params.get("charset", "utf-8"))
        body = _inflated(body[:MAX_OUTBOUND_BYTES])
        if kind == "multipart":
            values = _multipart(body, params.get("boundary", ""), codec)
        else:
            text = _decode(body, codec)
            if kind == "form":
                values = _form(text, codec)
            elif kind == "json":
                values = _json_values(text, loose=False)
            else:  # plain text, GraphQL
                values = _json_values(text, loose=True) if kind == "text" else _plain(text)
        return _joined(values)
    except (ValueError, LookupError, TypeError, RecursionError, MemoryError, zlib.error):  # pragma: no cover
        return None  # a safety net: the parsers above are written not to raise


def websocket_text(content: bytes | str, is_text: bool) -> str | None:
    """The text of a websocket message a child sends (a chat message), or None.

    A text frame (`is_text`; bytes are decoded as UTF-8) that is JSON gives its string values as
    `outbound_text` reads JSON, also behind a Socket.IO packet prefix (`42["chat", {...}]`) and as
    SignalR records (ended by 0x1e); any other text is returned as it is. Binary frames give None.
    Only the first MAX_OUTBOUND_BYTES (characters for a str) are read.
    """
    if not is_text:
        return None
    try:
        if isinstance(content, bytes | bytearray | memoryview):
            text = bytes(content[:MAX_OUTBOUND_BYTES]).decode("utf-8", "replace")
        else:
            text = content[:MAX_OUTBOUND_BYTES]
        values: list[str] = []
        for record in text.split("\x1e") if "\x1e" in text else (text,):
            record = record.strip()
            if not record:
                continue
            prefix = _SOCKET_IO.match(record) if record[0].isdigit() else None
            if prefix is not None:
                try:
                    packet = json.loads(record[prefix.end() :])
                except (ValueError, RecursionError):
                    pass  # "3[a]": a message that starts with digits, not a packet
                else:
                    _walk(packet, _PLAIN, values)
                    continue
            values += _json_values(record, loose=True)
        return _joined(values)
    except (ValueError, LookupError, TypeError, RecursionError, MemoryError):  # pragma: no cover
        return None


# --- content types, charsets, encodings ------------------------------------------------------------


def _body_kind(media: str) -> str | None:
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media == "multipart/form-data":
        return "multipart"
    if media == "text/plain":
        return "text"
    if media == "application/graphql":
        return "graphql"
    if media.endswith("json") and (media.startswith(("application/", "text/"))):
        return "json"
    return None


def _params(rest: str) -> dict[str, str]:
    """A content type's parameters (after the first `;`), names in lower case."""
    found: dict[str, str] = {}
    for m in _PARAM.finditer(";" + rest):
        name = m[1].lower()
        if name not in found:
            value = m[2] if m[2] is not None else m[3]
            found[name] = value.strip() if m[2] is None else value.replace('\\"', '"')
    return found


@lru_cache(maxsize=64)
def _codec(charset: str) -> str:
    """A text codec for a declared charset: UTF-8 for unknown names and for codecs that are not for
    bodies (base64, idna...)."""
    name = charset.strip().strip("\"'").lower()
    try:
        info = codecs.lookup(name)
        if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_FOR_BODIES:
            return "utf-8"
        b"ok \xff\xfe".decode(info.name, "replace")
        return info.name
    except (LookupError, ValueError, TypeError, UnicodeError):
        return "utf-8"


def _decode(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec, "replace")
    except (LookupError, ValueError, TypeError):  # UnicodeError is a ValueError
        return data.decode("utf-8", "replace")


def _inflated(body: bytes) -> bytes:
    """A gzip or zlib body inflated (up to MAX_OUTBOUND_BYTES), any other as it is."""
    if body[:2] == b"\x1f\x8b":
        wbits = 16 + zlib.MAX_WBITS
    elif len(body) > 1 and body[0] == 0x78 and (body[0] << 8 | body[1]) % 31 == 0:
        wbits = zlib.MAX_WBITS
    else:
        return body
    try:
        return zlib.decompressobj(wbits).decompress(body, MAX_OUTBOUND_BYTES) or body
    except zlib.error:
        return body


# --- field names and values -------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _name_kind(name: str) -> int:
    """What a field name says about its values: _PHONE, _ADDRESS, _SECRET or _PLAIN."""
    name = name[:100]
    low = name.lower()
    words = _NAME_WORDS.findall(_CAMEL_HUMP.sub(" ", name).lower())
    if any(w in _SECRET_WORDS for w in words) or any(part in low for part in _SECRET_PARTS):
        return _SECRET
    if any(w in _PHONE_WORDS or w.startswith(_PHONE_STEMS) for w in words):
        return _PHONE
    if any(w in _ADDRESS_WORDS or w.startswith(_ADDRESS_STEMS) for w in words):
        return _ADDRESS
    return _PLAIN


def _add(out: list[str], kind: int, value: str, nested: bool = False) -> None:
    """Add a string value under a name of `kind` (tokens and secrets dropped, JSON inside read)."""
    if kind == _SECRET:
        return
    value = value.strip()
    if not value:
        return
    if not nested and value[0] in "{[" and value[-1] in "}]":
        try:
            inner = json.loads(value)
        except (ValueError, RecursionError):
            pass
        else:
            _walk(inner, kind, out, nested=True)
            return
    if _TOKEN.fullmatch(value):
        return
    out.append(_LABELS[kind] + value if kind in _LABELS else value)


def _walk(obj: Any, kind: int, out: list[str], nested: bool = False) -> None:
    """Every string in a parsed JSON value, in document order (iteratively: depth cannot overflow)."""
    stack: list[tuple[Any, int]] = [(obj, kind)]
    while stack:
        item, kind = stack.pop()
        cls = type(item)
        if cls is str:
            _add(out, kind, item, nested)
        elif cls is dict:
            children = []
            for key, value in item.items():
                key_kind = _name_kind(key)
                if key_kind == _SECRET and type(value) in (dict, list):
                    key_kind = kind  # `{"session": {...}}`: only a secret's own values are dropped
                children.append((value, key_kind if key_kind != _PLAIN else kind))
            stack.extend(reversed(children))
        elif cls is list:
            stack.extend((child, kind) for child in reversed(item))
        elif cls is int and kind == _PHONE:
            digits = str(abs(item)) if -(10**_BIG_INT_DIGITS) < item < 10**_BIG_INT_DIGITS else ""
            if len(digits) >= _SMALL_INT_DIGITS:
                out.append(_LABELS[_PHONE] + digits)


def _json_values(text: str, loose: bool, kind: int = _PLAIN) -> list[str]:
    """The strings of a JSON text. `loose` (a text that may or may not be JSON): only a whole object or
    array is read as JSON, anything else is the text itself. Otherwise a JSON body that does not parse
    gives its string literals, and one that does not look like JSON is the text itself. `kind` is what
    the name the text was sent under says (a multipart field's name)."""
    text = text.strip()
    if not text:
        return []
    if text[0] in "{[" or (not loose and text[0] == '"'):
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            if not loose:
                return _literals(text, kind)
        else:
            out: list[str] = []
            _walk(parsed, kind, out)
            return out
    out = []
    _add(out, kind, text, nested=True)
    return out


def _literals(text: str, kind: int = _PLAIN) -> list[str]:
    """The string values in JSON text that does not parse (cut short, or malformed): each string
    literal not followed by `:`, read left to right. A literal cut off by the end of the text is read
    to the end."""
    out: list[str] = []
    outer = kind
    for m in _LITERAL.finditer(text):
        raw = m[1]
        value = _unescaped(raw) if "\\" in raw else raw
        if m[2] is None:
            _add(out, kind, value)
        else:
            kind = _name_kind(value)
            if kind == _PLAIN:
                kind = outer
    return out


def _unescaped(raw: str) -> str:
    """A JSON string literal's content with its escapes decoded (as it is if they are malformed)."""
    try:
        value = json.loads('"' + raw + '"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


def _form(text: str, codec: str) -> list[str]:
    """The values of a URL-encoded form (a body that is in fact JSON is read as JSON)."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return _json_values(stripped, loose=True)
    out: list[str] = []
    for field in text.split("&"):
        if not field:
            continue
        name, eq, value = field.partition("=")
        if not eq:
            name, value = "", name  # a bare value
        kind = _name_kind(unquote_plus(name, codec, "replace")) if name else _PLAIN
        if kind != _SECRET and value:
            _add(out, kind, unquote_plus(value, codec, "replace"))
    return out


def _plain(text: str) -> list[str]:
    text = text.strip()
    return [text] if text else []


def _multipart(body: bytes, boundary: str, codec: str) -> list[str]:
    """The text fields of a multipart/form-data body; files and binary parts are skipped."""
    if boundary:
        delimiter = b"--" + boundary.encode("utf-8", "replace")
    else:  # no boundary in the content type: the body's first line is the first delimiter
        if not body.startswith(b"--"):
            return []
        delimiter = body.split(b"\n", 1)[0].rstrip(b"\r")
        if len(delimiter) < 3:
            return []
    out: list[str] = []
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = part.partition(b"\n\n")
            if not sep:
                continue  # cut off inside the part's headers
        name = ""
        part_type = ""
        part_params: dict[str, str] = {}
        skip = False
        for line in head.decode("utf-8", "replace").splitlines():
            field, colon, value = line.partition(":")
            if not colon:
                continue
            field = field.strip().lower()
            if field == "content-disposition":
                disposition = _params(value.partition(";")[2])
                if "filename" in disposition or "filename*" in disposition:
                    skip = True
                name = disposition.get("name", "")
            elif field == "content-type":
                media, _, rest = value.partition(";")
                part_type = media.strip().lower()
                part_params = _params(rest) if rest else {}
        if skip:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        part_codec = _codec(part_params["charset"]) if "charset" in part_params else codec
        kind = _name_kind(name) if name else _PLAIN
        if kind == _SECRET:
            continue
        if not part_type or part_type.startswith("text/"):
            _add(out, kind, _decode(content, part_codec))
        elif _body_kind(part_type) == "json":
            out += _json_values(_decode(content, part_codec), loose=False, kind=kind)
    return out


def _joined(values: list[str]) -> str | None:
    """The values one per line, each once, in order; None when there are none."""
    if not values:
        return None
    if len(values) > 1:
        values = list(dict.fromkeys(values))
    return "\n".join(values)
