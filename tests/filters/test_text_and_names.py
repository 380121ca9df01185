"""What is a list at all, and what is a host name."""

from __future__ import annotations

import gzip
import io

import pytest

from filters.errors import SourceRejected
from filters.names import BadName, normalise_host
from filters.text import decode_lines, decode_list


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"<!DOCTYPE html>\n<html><body>Login</body></html>", "HTML"),
        (b"\n  <html>\n<head><title>502 Bad Gateway</title>", "HTML"),
        (b"\xef\xbb\xbf<!doctype html><p>", "HTML"),
        (b"\x00\x01\x02binary\x00", "binary"),
        (bytes(range(1, 9)) * 200, "binary"),
        (gzip.compress(b"0.0.0.0 a.com\n"), "compressed"),
        (b"PK\x03\x04zipdata", "compressed"),
    ],
)
def test_html_and_binary_sources_are_rejected_whole(data: bytes, why: str) -> None:
    with pytest.raises(SourceRejected) as e:
        decode_list("hagezi-nsfw", data)
    assert e.value.source == "hagezi-nsfw"
    assert why in str(e.value)


def test_text_lists_decode_utf8_and_fall_back_to_latin1() -> None:
    assert decode_list("s", "0.0.0.0 bücher.de\r\n".encode()) == ["0.0.0.0 bücher.de"]
    assert decode_list("s", "café.fr\n".encode("latin-1")) == ["café.fr"]
    assert decode_list("s", b"\xef\xbb\xbfa.com\n") == ["a.com"]


def test_only_newlines_end_a_line() -> None:
    # 0x85 is NEL to str.splitlines(), but a plain letter byte in Latin-1 and Shift-JIS lists
    assert decode_list("s", b"caf\x85.fr\nb.fr\rc.fr\r\nd\x0ce.fr") == [
        "caf\x85.fr",
        "b.fr",
        "c.fr",
        "d\x0ce.fr",
    ]
    assert decode_list("s", b"a.com\n\nb.com") == ["a.com", "", "b.com"]
    assert decode_list("s", b"") == []


def test_a_list_read_line_by_line_decodes_as_when_read_whole() -> None:
    """The compile reads big lists a line at a time from the file: the same lines, the same numbers."""
    data = b"\xef\xbb\xbfa.com\r\nb.fr\rc.fr\r\n\nd.com\ne.com"
    assert list(decode_lines("s", io.BytesIO(data))) == decode_list("s", data)
    assert decode_list("s", data) == ["a.com", "b.fr", "c.fr", "", "d.com", "e.com"]


def test_one_latin1_line_does_not_turn_a_utf8_list_into_latin1() -> None:
    """Each line falls back to Latin-1 on its own: the UTF-8 names around it stay as written."""
    assert decode_list("s", "bücher.de\n".encode() + b"caf\xe9.fr\n") == [
        "bücher.de",
        "café.fr",
    ]


def test_html_is_refused_before_the_first_line_is_taken() -> None:
    with pytest.raises(SourceRejected, match="HTML"):
        decode_lines("s", io.BytesIO(b"<!DOCTYPE html>\n<html>"))


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("  spaced.org ", "spaced.org"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("XN--BCHER-KVA.DE", "xn--bcher-kva.de"),
        ("a-b.c_d.example", "a-b.c_d.example"),
    ],
)
def test_normalise_host(raw: str, host: str) -> None:
    assert normalise_host(raw) == host


@pytest.mark.parametrize(
    "raw", ["", ".", "a..b", "-a.com", "a-.com", "a b.com", "x" * 64 + ".com", "a/b", "\u0300.com"]
)
def test_bad_names_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(BadName):
        normalise_host(raw)
