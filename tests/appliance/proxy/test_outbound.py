"""What a child sends, as text for the personal-information check: form posts, JSON and GraphQL calls,
multipart forms, plain text and websocket chat messages. Malformed input never raises."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.proxy.outbound import MAX_OUTBOUND_BYTES, outbound_text, websocket_text
from profiles.pii import PiiKind, find_personal_info

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"

SCHOOL_CONTACT_FORM = (
    b"name=Lily+Smith&phone=07700+900123&address=12+Acacia+Avenue%2C+Leeds&postcode=LS1+4AP"
    b"&message=Please+call+me+after+school&submit=Send"
)
LOGIN_FORM = (
    b"csrfmiddlewaretoken=Jx8dkq7fP2mN4vR9sT1uW3yZ5aB6cD8eF0gH2iK4lM6nO8pQrS0tU2vW4xY6zA8b"
    b"&username=lily_x&password=hunter2&next=%2Fhome"
)


def multipart(*parts: tuple[str, str | None, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body as Chrome writes it: (name, filename, content type, content) per part."""
    out = b""
    for name, filename, content_type, content in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += disposition.encode() + b"\r\n"
        if content_type is not None:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def kinds(text: str | None) -> list[PiiKind]:
    assert text is not None
    return [f.kind for f in find_personal_info(text)]


# --- url-encoded forms ------------------------------------------------------------------------------


def test_a_school_contact_form_gives_its_values_one_per_line() -> None:
    text = outbound_text(FORM, SCHOOL_CONTACT_FORM)
    assert text == (
        "Lily Smith\nphone: 07700 900123\naddress: 12 Acacia Avenue, Leeds\nLS1 4AP\n"
        "Please call me after school\nSend"
    )
    lines = text.splitlines()
    assert any("07700 900123" in line and "Acacia" not in line for line in lines)
    assert any("12 Acacia Avenue" in line and "07700" not in line for line in lines)


def test_end_to_end_a_phone_number_in_a_form_post_is_found() -> None:
    text = outbound_text(FORM, SCHOOL_CONTACT_FORM)
    assert kinds(text) == [PiiKind.PHONE, PiiKind.ADDRESS, PiiKind.ADDRESS]


def test_a_login_forms_csrf_token_and_password_are_dropped() -> None:
    assert outbound_text(FORM, LOGIN_FORM) == "lily_x\n/home"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"q=hello+world%21", "hello world!", id="plus-is-a-space"),
        pytest.param(b"a=1&&b=&=x&c", "1\nx\nc", id="empty-fields-and-bare-values"),
        pytest.param(b"msg=%E2%9C%93+done", "✓ done", id="utf-8-escapes"),
        pytest.param(b"msg=caf\xc3\xa9", "café", id="raw-utf-8"),
        pytest.param(b"msg=bad%ZZescape%", "bad%ZZescape%", id="broken-escapes-kept"),
        pytest.param(b"mobile=7700900123", "phone: 7700900123", id="phone-name-gives-context"),
        pytest.param(b"user%5Bphone_number%5D=7700900123", "phone: 7700900123", id="nested-name"),
        pytest.param(b"street_address=12+acacia+avenue", "address: 12 acacia avenue", id="address-name"),
        pytest.param(b"hotel=Grand", "Grand", id="hotel-is-not-tel"),
        pytest.param(b"session_id=4f9a8b7c6d5e4f3a2b1c0d9e", None, id="hex-id-is-a-token"),
        pytest.param(b"uuid=123e4567-e89b-12d3-a456-426614174000", None, id="uuid-is-a-token"),
        pytest.param(
            b"email=averyveryverylongname.surname%40school-mail.example",
            "averyveryverylongname.surname@school-mail.example",
            id="long-email-is-not-a-token",
        ),
        pytest.param(b"pin=1234&otp=987654&g-recaptcha-response=03AGdBq2", None, id="secrets"),
        pytest.param(b"data=%7B%22text%22%3A%22hi+there%22%7D", "hi there", id="json-in-a-field"),
        pytest.param(b'{"text": "sent as a form by mistake"}', "sent as a form by mistake", id="json-body"),
        pytest.param(b"a=same&b=same", "same", id="each-value-once"),
        pytest.param(b"", None, id="empty"),
    ],
)
def test_form_values(body: bytes, expected: str | None) -> None:
    assert outbound_text(FORM, body) == expected


def test_a_phone_sent_without_its_trunk_zero_is_found_by_its_field_name() -> None:
    assert kinds(outbound_text(FORM, b"name=Lily&mobile=7700900123")) == [PiiKind.PHONE]
    assert kinds(outbound_text(FORM, b"name=Lily&code=7700900123")) == []


def test_latin_1_charset() -> None:
    body = "nom=Zoé&adresse=12 rue de la Paix".encode("latin-1").replace(b" ", b"+")
    body += b"&msg=caf%E9"
    text = outbound_text(f"{FORM}; charset=ISO-8859-1", body)
    assert text == "Zoé\naddress: 12 rue de la Paix\ncafé"
    assert kinds(text) == [PiiKind.ADDRESS]
    assert outbound_text('text/plain; charset="windows-1252"', b"na\xefve \x80") == "naïve €"


@pytest.mark.parametrize(
    "charset",
    ["no-such-charset", "base64", "idna", "undefined", "unicode_escape", "rot13", "utf-16", '"', ""],
)
def test_odd_charsets_fall_back_without_raising(charset: str) -> None:
    text = outbound_text(f"{FORM}; charset={charset}", b"msg=hello+07700+900123&x=%FF")
    assert text is None or isinstance(text, str)
    if charset not in ("utf-16",):
        assert text is not None and "07700 900123" in text


# --- JSON -------------------------------------------------------------------------------------------


def test_a_json_chat_message() -> None:
    body = b'{"message": {"text": "call me on 07700 900123"}, "id": 123456789012}'
    text = outbound_text(JSON, body)
    assert text == "call me on 07700 900123"  # the id is not a phone number: numbers are left out
    assert kinds(text) == [PiiKind.PHONE]


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        pytest.param(JSON, b'{"a": ["x", {"b": "y"}], "c": "z"}', "x\ny\nz", id="document-order"),
        pytest.param(JSON, b'{"n": 3.5, "ok": true, "none": null, "big": 7700900123}', None, id="no-strings"),
        pytest.param(JSON, b'{"phone": 7700900123}', "phone: 7700900123", id="number-under-phone-name"),
        pytest.param(
            JSON, b'{"phone": {"number": 447700900123}}', "phone: 447700900123", id="name-inherited"
        ),
        pytest.param(JSON, b'{"phone": 12345}', None, id="short-number-under-phone-name"),
        pytest.param(JSON, b'{"session": {"text": "hi"}, "token": "abc"}', "hi", id="secret-container-read"),
        pytest.param(JSON, b'{"auth": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"}', None, id="bearer"),
        pytest.param(
            JSON,
            b'{"jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"}',
            None,
            id="long-token",
        ),
        pytest.param(JSON, b'{"payload": "{\\"text\\": \\"nested\\"}"}', "nested", id="json-in-a-string"),
        pytest.param(JSON, b'"just a string"', "just a string", id="top-level-string"),
        pytest.param(JSON, b"hello, not json at all", "hello, not json at all", id="not-json-is-text"),
        pytest.param(JSON, b'{"a": "caf\\u00e9", "b": "line\\nbreak"}', "café\nline\nbreak", id="escapes"),
        pytest.param(JSON, b'{"a": "one", "b": "tw', "one\ntw", id="cut-short"),
        pytest.param(JSON, b"{'a': 'single quotes'}", None, id="single-quotes"),
        pytest.param(JSON, b'{"a": "x\\"y", "b": "z\\\\", "c": "w"}', 'x"y\nz\\\nw', id="escaped-quotes"),
        pytest.param(
            "application/vnd.api+json", b'{"data": {"attributes": {"body": "hi"}}}', "hi", id="+json"
        ),
        pytest.param("application/x-ndjson", b'{"t": "one"}\n{"t": "two"}\n', "one\ntwo", id="ndjson"),
        pytest.param(
            "text/plain;charset=UTF-8", b'{"events": [{"name": "click"}]}', "click", id="beacon-json"
        ),
        pytest.param("text/plain", b"  my number is 07700 900123\n", "my number is 07700 900123", id="text"),
        pytest.param("text/plain", b'"quoted" she said', '"quoted" she said', id="text-with-quotes"),
        pytest.param("text/plain", b"[not json", "[not json", id="text-bracket"),
        pytest.param("application/graphql", b"{ me { name } }", "{ me { name } }", id="graphql-query"),
    ],
)
def test_json_and_text_bodies(content_type: str, body: bytes, expected: str | None) -> None:
    assert outbound_text(content_type, body) == expected


def test_graphql_variables_are_read() -> None:
    body = json.dumps(
        {
            "operationName": "SendMessage",
            "query": "mutation SendMessage($text: String!) { send(text: $text) { id } }",
            "variables": {"roomId": "4f9a8b7c6d5e4f3a2b1c", "text": "my snap is lily_x"},
            "extensions": {"persistedQuery": {"sha256Hash": "a" * 64, "version": 1}},
        }
    ).encode()
    text = outbound_text(JSON, body)
    assert text is not None
    assert text.splitlines()[-1] == "my snap is lily_x"
    assert "a" * 64 not in text and "4f9a8b7c6d5e4f3a2b1c" not in text
    assert kinds(text) == [PiiKind.HANDLE]


def test_a_200_kb_json_body_is_read_up_to_the_limit() -> None:
    messages = [{"id": i, "text": f"message number {i}"} for i in range(8000)]
    messages[5]["text"] = "text me on 07700 900123"
    body = json.dumps({"messages": messages}).encode()
    assert len(body) > 200_000
    text = outbound_text(JSON, body)
    assert text is not None
    lines = text.splitlines()
    assert lines[:3] == ["message number 0", "message number 1", "message number 2"]
    assert "text me on 07700 900123" in lines
    assert len(text.encode()) < MAX_OUTBOUND_BYTES
    last = int(lines[-1].rsplit(" ", 1)[1] or 0) if lines[-1].startswith("message number") else None
    assert last is not None and 1000 < last < 3000  # only what was in the first 64 KB
    assert kinds(text) == [PiiKind.PHONE]


def test_a_gzip_body_is_inflated() -> None:
    body = gzip.compress(b'{"text": "call me on 07700 900123"}')
    assert outbound_text(JSON, body) == "call me on 07700 900123"


# --- multipart --------------------------------------------------------------------------------------


def test_multipart_text_fields_are_read_and_files_skipped() -> None:
    body = multipart(
        ("name", None, None, b"Lily"),
        ("message", None, None, b"ring me on 07700 900123\r\nthanks"),
        ("avatar", "me.png", "image/png", b"\x89PNG\r\n\x1a\n\x00\x00 07711 111111"),
        ("notes", "notes.txt", "text/plain", b"my address is 1 Secret Street"),
        ("empty-file", "", "application/octet-stream", b""),
        ("authenticity_token", None, None, b"abc123=="),
        ("meta", None, "application/json", b'{"caption": "at 12 Acacia Avenue"}'),
        ("blob", None, "application/octet-stream", b"\x00\x01 07722 222222"),
    )
    text = outbound_text(MULTIPART, body)
    assert text == "Lily\nring me on 07700 900123\r\nthanks\nat 12 Acacia Avenue"
    assert kinds(text) == [PiiKind.PHONE, PiiKind.ADDRESS]


CUT_MULTIPART = multipart(("a", None, None, b"first"), ("b", None, None, b"cut off here"))


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        pytest.param(
            f'multipart/form-data; boundary="{BOUNDARY}"',
            multipart(("a", None, None, b"quoted boundary")),
            "quoted boundary",
            id="quoted-boundary",
        ),
        pytest.param(
            "multipart/form-data",
            multipart(("a", None, None, b"boundary from the body")),
            "boundary from the body",
            id="no-boundary-parameter",
        ),
        pytest.param(
            MULTIPART, CUT_MULTIPART[: CUT_MULTIPART.index(b" here")], "first\ncut off", id="cut-short"
        ),
        pytest.param(
            MULTIPART, CUT_MULTIPART[: CUT_MULTIPART.index(b'name="b"')], "first", id="cut-in-part-headers"
        ),
        pytest.param(MULTIPART, b"no delimiters at all", None, id="not-multipart"),
        pytest.param("multipart/form-data; boundary=", b"--\r\n\r\n", None, id="empty-boundary"),
        pytest.param(
            MULTIPART,
            f"--{BOUNDARY}\nContent-Disposition: form-data; name=a\n\nunix newlines\n--{BOUNDARY}--".encode(),
            "unix newlines",
            id="bare-newlines",
        ),
        pytest.param(
            MULTIPART,
            multipart(("a", None, "text/plain; charset=iso-8859-1", "Zoé".encode("latin-1"))),
            "Zoé",
            id="part-charset",
        ),
        pytest.param(
            MULTIPART,
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''a.txt\r\n\r\nx\r\n"
            f"--{BOUNDARY}--".encode(),
            None,
            id="filename-star",
        ),
    ],
)
def test_multipart_edges(content_type: str, body: bytes, expected: str | None) -> None:
    assert outbound_text(content_type, body) == expected


# --- what is not read -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("image/jpeg", b"\xff\xd8\xff\xe0 07700 900123", id="image"),
        pytest.param("application/octet-stream", b"07700 900123", id="binary"),
        pytest.param("application/x-protobuf", b"\x0a\x0c07700 900123", id="protobuf"),
        pytest.param("", b"07700 900123", id="no-content-type"),
        pytest.param("text/html", b"<p>07700 900123</p>", id="html"),
        pytest.param(JSON, b"", id="empty-body"),
        pytest.param(JSON, b"   \n ", id="blank-body"),
        pytest.param("text/plain", b"\n\n", id="blank-text"),
        pytest.param(JSON, b"[[[[[[[[[[" * 10_000, id="deep-nesting-cut-short"),
        pytest.param(JSON, b"[" * 100_000 + b"]" * 100_000, id="deep-nesting"),
        pytest.param(JSON, b"1" * 10_000, id="huge-number"),
    ],
)
def test_bodies_with_nothing_to_read_give_none(content_type: str, body: bytes) -> None:
    assert outbound_text(content_type, body) is None


# --- websockets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "is_text", "expected"),
    [
        pytest.param('{"type": "message", "text": "hi there"}', True, "message\nhi there", id="json"),
        pytest.param(b'{"text": "caf\xc3\xa9"}', True, "café", id="json-bytes"),
        pytest.param("just chatting", True, "just chatting", id="plain-text"),
        pytest.param("07700900123", True, "07700900123", id="a-number-stays-text"),
        pytest.param('42["chat message",{"text":"hello"}]', True, "chat message\nhello", id="socket-io"),
        pytest.param('42/chat,7["say","hi"]', True, "say\nhi", id="socket-io-namespace-and-ack"),
        pytest.param("3[a]", True, "3[a]", id="digits-then-not-json"),
        pytest.param("2", True, "2", id="socket-io-ping"),
        pytest.param(
            '{"type":1,"target":"Send","arguments":["lily","hello"]}\x1e{"type":6}\x1e',
            True,
            "Send\nlily\nhello",
            id="signalr",
        ),
        pytest.param('{"token": "abc", "ping": 1}', True, None, id="nothing-to-read"),
        pytest.param("   ", True, None, id="blank"),
        pytest.param(b"\x82\x00binary chat 07700 900123", False, None, id="binary-frame"),
        pytest.param("text given as binary", False, None, id="binary-flag"),
    ],
)
def test_websocket_text(content: bytes | str, is_text: bool, expected: str | None) -> None:
    assert websocket_text(content, is_text) == expected


def test_end_to_end_a_phone_number_in_a_websocket_chat_message_is_found() -> None:
    text = websocket_text(b'42["message",{"room":"r1","body":"whatsapp me 07700 900123"}]', True)
    assert text is not None
    assert PiiKind.PHONE in kinds(text)


def test_a_long_websocket_message_is_cut_at_the_limit() -> None:
    text = websocket_text("a b " * MAX_OUTBOUND_BYTES, True)
    assert text is not None and len(text) <= MAX_OUTBOUND_BYTES


# --- never raises -----------------------------------------------------------------------------------

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            FORM,
            f"{FORM}; charset=latin-1",
            JSON,
            "application/json; charset=utf-16",
            "application/problem+json",
            "text/plain",
            "text/plain; charset=shift_jis",
            "application/graphql",
            MULTIPART,
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            'multipart/form-data; boundary="',
            "image/png",
            "",
        ]
    ),
    st.text(max_size=80),
    st.builds(
        lambda m, p: f"{m};{p}", st.sampled_from([FORM, JSON, "text/plain", "multipart/form-data"]), st.text()
    ),
)


def _structured_bodies() -> st.SearchStrategy[bytes]:
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=12,
    )
    as_json = values.map(lambda v: json.dumps(v).encode())
    cut_json = st.tuples(as_json, st.integers(0, 200)).map(lambda t: t[0][: t[1]])
    form = st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)), max_size=5).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    )
    parts = st.lists(
        st.tuples(
            st.text(max_size=8),
            st.none() | st.text(max_size=8),
            st.none() | st.text(max_size=20),
            st.binary(),
        ),
        max_size=3,
    ).map(lambda ps: multipart(*ps))
    return st.one_of(st.binary(max_size=400), as_json, cut_json, form, parts)


@given(CONTENT_TYPES, _structured_bodies())
def test_outbound_text_never_raises(content_type: str, body: bytes) -> None:
    text = outbound_text(content_type, body)
    assert text is None or (isinstance(text, str) and text.strip())


@given(st.one_of(st.binary(max_size=400), st.text(max_size=400)), st.booleans())
def test_websocket_text_never_raises(content: bytes | str, is_text: bool) -> None:
    text = websocket_text(content, is_text)
    assert text is None or (isinstance(text, str) and text.strip())
