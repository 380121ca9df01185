"""DNS messages on the wire: the strict reading of a client's question, and the answers we build.

The question is read by hand (it is on every query's path and must refuse anything odd cheaply); answers
are built with dnslib, then kept as bytes with the offsets of their TTLs so a cached answer can be sent
again with the query id and the remaining TTLs patched in.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from dnslib import CLASS, QTYPE, RR, DNSHeader, DNSLabel, DNSQuestion, DNSRecord
from dnslib.dns import EDNS0

from appliance.dns.errors import Malformed
from appliance.resolver.protocol import OUR_UDP, Rcode

HEADER = struct.Struct("!HHHHHH")
MAX_QUERY = 4096  # a question with EDNS options fits in a few hundred bytes: anything bigger is refused
PLAIN_UDP = 512
TYPE_NS, TYPE_OPT, TYPE_HTTPS, TYPE_ANY = 2, 41, 65, 255


BADVERS = 16  # an extended rcode (RFC 6891): carried partly in the OPT record


_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*")


@dataclass(frozen=True)
class Question:
    """One client question. `host` is lower case without the trailing dot (`""` for the root);
    `host` is None for a name no list can hold (spaces, dots inside labels, binary): answered REFUSED.
    `question` the raw question section (name as the client spelt it, type, class); `udp_size` the
    largest UDP answer the client takes (512 without EDNS); `edns` whether it sent an OPT record."""

    id: int
    rd: bool
    host: str | None
    qtype: int
    question: bytes
    udp_size: int
    edns: bool
    cd: bool = False
    plain: bool = True  # nothing after the question and a bare OPT record: fit to be remembered by its bytes


def read_question(data: bytes) -> Question:
    """The question in `data`, or Malformed with the rcode to answer (None: drop the packet silently).

    Refused: anything shorter than a header, responses (QR set), other opcodes (NOTIMP), a count of
    questions other than one, compression pointers or bad label lengths in the question (FORMERR), names
    longer than 255 bytes, classes other than IN (NOTIMP), a malformed OPT record.
    """
    if len(data) < HEADER.size or len(data) > MAX_QUERY:
        raise Malformed(None, "shorter than a header" if len(data) < HEADER.size else "oversized")
    ident, flags, qdcount, _an, _ns, arcount = HEADER.unpack_from(data)
    if flags & 0x8000:
        raise Malformed(None, "a response, not a query")  # answering responses invites loops
    if (flags >> 11) & 0xF:
        raise Malformed(Rcode.NOTIMP, "only standard queries")
    if qdcount != 1:
        raise Malformed(Rcode.FORMERR, f"{qdcount} questions")
    pos, end, labels = HEADER.size, len(data), []
    while True:
        if pos >= end:
            raise Malformed(Rcode.FORMERR, "the name runs past the end")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            raise Malformed(Rcode.FORMERR, "a compression pointer or bad label length in the question")
        label = data[pos + 1 : pos + 1 + length]
        if len(label) != length:
            raise Malformed(Rcode.FORMERR, "the name runs past the end")
        labels.append(label)
        pos += 1 + length
        if pos - HEADER.size >= 255:  # with the root byte still to come: over RFC 1035's 255
            raise Malformed(Rcode.FORMERR, "a name longer than 255 bytes")
    if pos + 4 > end:
        raise Malformed(Rcode.FORMERR, "no type and class after the name")
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    question = data[HEADER.size : pos + 4]
    if qclass != 1:
        raise Malformed(Rcode.NOTIMP, "only class IN", question, edns=_has_opt(data, pos + 4, arcount))
    pos += 4
    udp_size, edns, plain = PLAIN_UDP, False, True
    if arcount:
        # The first additional record, if it is the OPT record; any other record there is ignored.
        if pos + 11 > end:  # no record is shorter than a root name and its 10 fixed bytes
            raise Malformed(Rcode.FORMERR, "the additional section is cut short", question)
        if data[pos] == 0 and data[pos + 1 : pos + 3] == b"\x00\x29":
            size, _ext, version, _flags, rdlen = struct.unpack_from("!HBBHH", data, pos + 3)
            if pos + 11 + rdlen > end:
                raise Malformed(Rcode.FORMERR, "the OPT record runs past the end", question)
            if version != 0:
                # RFC 6891 6.1.3: BADVERS, with our OPT record saying which version we speak.
                raise Malformed(BADVERS, f"EDNS version {version}", question, edns=True)
            udp_size, edns = max(PLAIN_UDP, min(size, OUR_UDP)), True
            pos += 11 + rdlen
            plain = rdlen == 0
    host = None
    if all(_NAME_BYTES.issuperset(label) for label in labels):
        host = b".".join(labels).decode("ascii").lower()
    # Options (cookies, padding) and trailing bytes make every query's bytes unique: such questions
    # are answered, but not remembered by their bytes, or one device could fill the memory with them.
    plain = plain and pos == end
    return Question(
        ident, bool(flags & 0x0100), host, qtype, question, udp_size, edns, bool(flags & 0x0010), plain
    )


def _header_and_question(q: Question, rcode: int) -> DNSRecord:
    record = DNSRecord(DNSHeader(id=q.id, qr=1, ra=1, rd=int(q.rd), cd=int(q.cd), rcode=rcode))
    record.add_question(DNSQuestion(asked_name(q), q.qtype, CLASS.IN))
    if q.edns:
        record.add_ar(EDNS0(udp_len=OUR_UDP))
    return record


def asked_name(q: Question) -> DNSLabel:
    """The question's name as the client spelt it (case kept), for the answer's records."""
    question = q.question
    labels, pos = [], 0
    while question[pos]:
        labels.append(question[pos + 1 : pos + 1 + question[pos]])
        pos += 1 + question[pos]
    return DNSLabel(labels)


def build(q: Question, rcode: int, answers: Sequence[RR] = (), authority: Sequence[RR] = ()) -> bytes:
    """The answer to `q`: header (id, RD echoed, RA), the question as sent, records, OPT if asked."""
    record = _header_and_question(q, rcode)
    for rr in answers:
        record.add_answer(rr)
    for rr in authority:
        record.add_auth(rr)
    return bytes(record.pack())


def error_answer(data: bytes, rcode: int, question: bytes = b"", *, edns: bool = False) -> bytes | None:
    """An answer with `rcode` to a query we could not read whole: its id, and its question if read, with
    an OPT record if the query had one (an extended rcode such as BADVERS goes in it). None for what must
    not be answered: a packet shorter than a header, or a response (answering those invites loops)."""
    if len(data) < HEADER.size or data[2] & 0x80:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    opcode_rd = flags & 0x7900
    edns = edns or rcode > 0xF
    header = HEADER.pack(ident, 0x8080 | opcode_rd | (rcode & 0xF), 1 if question else 0, 0, 0, int(edns))
    if not edns:
        return header + question
    # OPT: root name, type 41, our UDP size as class, extended rcode in the TTL's top byte, no options.
    return header + question + struct.pack("!BHHBBHH", 0, TYPE_OPT, OUR_UDP, rcode >> 4, 0, 0, 0)


def _has_opt(data: bytes, pos: int, arcount: int) -> bool:
    return bool(arcount) and pos + 11 <= len(data) and data[pos : pos + 3] == b"\x00\x00\x29"


def truncated(answer: bytes) -> bytes:
    """`answer` cut to its header, question and OPT record with TC set: the client asks again over TCP."""
    ident, flags, qd, _an, _ns, ar = HEADER.unpack_from(answer)
    pos = HEADER.size
    while answer[pos]:
        pos += 1 + answer[pos]
    opt = answer[-11:] if ar and answer[-11:-8] == b"\x00\x00\x29" else b""  # ours: last, no options
    return HEADER.pack(ident, flags | 0x0200, qd, 0, 0, 1 if opt else 0) + answer[HEADER.size : pos + 5] + opt


def ttl_offsets(answer: bytes) -> tuple[int, ...]:
    """Where the TTL of each answer and authority record sits in `answer` (not the OPT record's)."""
    _id, _flags, qd, an, ns, _ar = HEADER.unpack_from(answer)
    pos = HEADER.size
    for _ in range(qd):
        pos = _skip_name(answer, pos) + 4
    offsets = []
    for _ in range(an + ns):
        pos = _skip_name(answer, pos)
        offsets.append(pos + 4)
        (rdlen,) = struct.unpack_from("!H", answer, pos + 8)
        pos += 10 + rdlen
    return tuple(offsets)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length >= 0xC0:
            return pos + 2
        pos += 1 + length


def qtype_name(qtype: int) -> str:
    """`A`, `AAAA`, `HTTPS`, ... or `TYPE123` for a type dnslib does not name."""
    name = QTYPE.get(qtype, None)
    return str(name) if name is not None else f"TYPE{qtype}"
