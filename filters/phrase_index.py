r"""The compiled weighted-phrase scorer: how much of each category a page or a search text contains.

Semantics, after e2guardian (src/NaughtyFilter.cpp `checkme`/`checkphrase`, src/ListContainer.cpp):

- The page is read as e2guardian's "smart" pass reads it (phrasefiltermode 1): markup is dropped, a
  tag is a word break (from `<` to the next `>`, e2guardian's naive rule), and script and style text
  is text. Inside tags nothing matches, so `<article>` or `class=` never count as words. e2guardian's
  raw pass (phrasefiltermode 0 and the second half of mode 2) is not run: it would count tag names
  (a page full of `<article>` tags scores e2guardian's `<news>,<article><-30>` goodphrase dozens of
  times) and double the work; what it alone finds are phrases in attribute values and URLs.
- Case does not matter: str text is lower-cased with Unicode rules; bytes text (taken as UTF-8) with
  ASCII rules only, so pass str when non-ASCII letters must fold too.
- Separators: e2guardian turns controls, space and most punctuation (`!"#$%&'()*+,-.:;<=>?@[\]^_``)
  into spaces before matching (`filters.phrases.SEPARATOR_BYTES`). Here the same set applies to text
  *and* phrases, and a run of separators (and tags) counts as one: `<18 u.s.c>` finds "18 U.S.C.",
  `<self-harm>` finds "self harm", `<free porn>` finds "free <b>porn</b>", and `< sex >` finds "sex"
  between two separators or tags (or at either end of the text). e2guardian only normalises the page,
  so there punctuation inside a phrase never matches at all. Entities are not decoded, as there.
- Occurrences: every occurrence counts, overlapping ones included (e2guardian's search starts again
  at every byte). An occurrence, with the tags and separators inside it, must fit in `MAX_SPAN` bytes.
- Weights: `mode="normal"` (e2guardian weightedphrasemode 1, the default here) adds weight x
  occurrences; `mode="singular"` (weightedphrasemode 2, which e2guardian's shipped config selects)
  adds each phrase's weight once. A combination `<a>,<b>` scores when every part occurs, as many times
  as its rarest part occurs (e2guardian's `lowest_occurrences`). Negative weights subtract.
- Totals are per category (a phrase's `#listcategory`) and include negative ones; e2guardian compares
  their sum, `PhraseScore.total`, with the naughtiness limit. Banned phrases (and banned combinations)
  never add to totals: they are reported in `banned`, and any of them blocks outright.
- The same phrase listed twice keeps one entry, chosen as e2guardian does: banned over weighted, then
  the higher weight, then the first listed.

Engine: one `re2.Set` (a linear-time automaton, which never falls back to anything slower) of every
normalised phrase part says which parts may occur in each 4 KiB window of the text (windows overlap
by `MAX_SPAN`). It knows separators and tags between words but not whether a word is inside a tag: a
pattern for that makes RE2's lazily built automaton explode on new pages, so it only pre-filters.
Only the parts that can change the score (plain phrases that occur, parts of combinations whose every
part occurs) are then counted, with `bytes.find` for their first word inside the windows where they
occur, a check of boundaries and of the tag state, and an RE2 check of the words after the first. No
list can make scoring worse than linear in the text and the occurrences it holds; a window crowded
with listed phrases is counted in finer windows.

Cost (bench/phrases.py, 6,226 ukenglish phrases, 100 KB pages, this 2-core VM): the automaton pass
is 0.3-0.45 ms once RE2 has built the states a page needs, and several ms on the first pages it
sees (it builds them lazily, and keeps them in up to `_RE2_MAX_MEM`). Counting costs a scan of each
window a needed first word occurs in, plus about a microsecond per candidate: ordinary prose holds
dozens of listed everyday words (goodphrases such as `< health >`, combination parts such as `<news>`,
tag names such as `article`), so a news-like page costs 1.5-2 ms, legal prose about 0.8 ms, and a
page with few listed words about 0.45 ms. Singular mode stops at each part's first occurrence.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from zlib import crc32

import re2

from filters.errors import FilterError, IndexFormatError
from filters.phrases import SEPARATOR_BYTES, Phrase, phrase_key

ScoreMode = Literal["normal", "singular"]

MAX_SPAN = 512  # bytes one occurrence may cover (a 127-byte phrase and its gaps); windows overlap by this
_WINDOW = 4096
_FINE_WINDOW = 1024
_FINE_AT = 24  # parts to count in one window before it is re-split into fine windows
_RE2_MAX_MEM = 64 << 20

_MAGIC = b"CSPHRS\r\n"
_FORMAT_VERSION = 1
_HEADER = struct.Struct("<IIII")  # version, phrase count, body length, body CRC-32

_IS_SEP = bytes(1 if b in SEPARATOR_BYTES else 0 for b in range(256))
_SEP = rb"[\x00-\x2e\x3a-\x40\x5b-\x60]"  # SEPARATOR_BYTES
_GAP_SEP = rb"[\x00-\x2e\x3a\x3b\x3d-\x40\x5b-\x60]"  # the same without '<', which opens a tag
_GAP = rb"(?:" + _GAP_SEP + rb"|<[^>]*>)+"  # between two words: separators and whole tags
assert bytes(b for b in range(256) if _IS_SEP[b]) == (
    bytes(range(0x00, 0x2F)) + bytes(range(0x3A, 0x41)) + bytes(range(0x5B, 0x61))
), "separator classes and SEPARATOR_BYTES disagree"


@dataclass(frozen=True)
class PhraseHit:
    """One listed phrase found in the text. `count` is what the score used (1 in singular mode)."""

    phrase: str  # as written, e.g. "<a>,<b>"
    weight: int
    count: int
    category: str
    origin: str
    line: int


@dataclass(frozen=True)
class PhraseScore:
    """The outcome of scoring one text. `totals` holds every category with a weighted hit."""

    totals: Mapping[str, int]
    banned: tuple[PhraseHit, ...]
    hits: tuple[PhraseHit, ...]  # weighted hits, biggest contribution first

    @property
    def total(self) -> int:
        """The sum e2guardian compares with its naughtiness limit (good phrases included)."""
        return sum(self.totals.values())


EMPTY_SCORE = PhraseScore({}, (), ())


@dataclass(frozen=True)
class _Entry:
    literals: tuple[int, ...]  # one for a plain phrase, several for a combination
    weight: int
    banned: bool
    category: str
    origin: str
    line: int
    text: str


def _escape(word: bytes) -> bytes:
    # Every byte as \xHH: RE2 (in Latin-1 mode) then matches exactly that byte, whatever it is.
    return b"".join(b"\\x%02x" % c for c in word)


@dataclass(frozen=True)
class _Literal:
    """A normalised part: words separated by separator runs, maybe bounded by a separator."""

    words: tuple[bytes, ...]
    lead: bool
    trail: bool

    @classmethod
    def of(cls, key: bytes) -> _Literal:
        return cls(tuple(key.split()), key.startswith(b" "), key.endswith(b" "))

    def pattern(self) -> bytes:
        """The automaton's pattern: the words and their boundaries, tags allowed between words.

        It does not know whether it is inside a tag (a rule for that makes RE2's lazily built automaton
        explode on every new page); counting checks that, so the automaton only pre-filters.
        """
        core = _GAP.join(map(_escape, self.words))
        return (_SEP if self.lead else b"") + core + (_SEP if self.trail else b"")

    def rest(self) -> bytes:
        """What must follow the first word, for an anchored check."""
        return b"".join(_GAP + _escape(w) for w in self.words[1:]) + (_SEP if self.trail else b"")


def _options() -> re2.Options:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False
    return options


class _Engine:
    """The decoded tables and the compiled automaton; built on first use, then shared."""

    def __init__(self, literal_keys: list[bytes], entries: list[_Entry]) -> None:
        self.literals = [_Literal.of(k) for k in literal_keys]
        self.first = [lit.words[0] for lit in self.literals]
        # (lead, trail after the first word, single word) per part: what a candidate is checked for
        self.shapes = [
            (int(lit.lead), lit.trail if len(lit.words) == 1 else True, len(lit.words) == 1)
            for lit in self.literals
        ]
        self.rests: dict[int, Any] = {}  # literal -> compiled `rest()`, made when first needed
        self.plain: dict[int, list[_Entry]] = {}
        self.combos_by: dict[int, list[tuple[_Entry, frozenset[int]]]] = {}  # keyed by the longest part
        for entry in entries:
            if len(entry.literals) == 1:
                self.plain.setdefault(entry.literals[0], []).append(entry)
                continue
            # A combination is looked at only when its longest (usually rarest) part occurs.
            parts = frozenset(entry.literals)
            rare = max(parts, key=lambda lit: (len(literal_keys[lit]), lit))
            self.combos_by.setdefault(rare, []).append((entry, parts))
        self.plain_ids = frozenset(self.plain)
        self.rare_ids = frozenset(self.combos_by)
        options = _options()
        # Case is folded by the automaton (ASCII and Latin-1 rules), which saves lower-casing the whole
        # page; it only pre-filters: counting works on lower-cased bytes, so the result is exact.
        options.case_sensitive = False
        self.set = re2.Set.SearchSet(options)
        try:
            for literal in self.literals:
                self.set.Add(literal.pattern())
            if self.literals:
                self.set.Compile()
        except re2.error as e:
            raise FilterError(f"phrase list too large for the matcher ({len(self.literals)} parts)") from e

    def present(self, view: memoryview, start: int, stop: int, step: int) -> list[tuple[int, int, list[int]]]:
        """(window start, window end, parts that may occur from there to end + MAX_SPAN) per window."""
        out = []
        n = len(view)
        match = self.set.Match
        for a in range(start, stop, step):
            b = min(a + step, stop)
            ids = match(view[a : min(n, b + MAX_SPAN)])
            if ids:
                out.append((a, b, ids))
        return out

    def count(
        self,
        text: bytes,
        word: bytes,
        lits: list[int],
        spans: list[list[int]],
        counts: dict[int, int],
        limit: int,
    ) -> None:
        """Add to `counts` the occurrences of `lits` (which all start with `word`) starting in `spans`.

        `text` is the lower-cased prepared text; `spans` are ascending [start, end) ranges; no count
        goes past `limit`. One scan serves every part that starts with this word (" sex", "sex toys").
        """
        find, rfind, is_sep, size, shapes = text.find, text.rfind, _IS_SEP, len(word), self.shapes
        checks = [(lit, *shapes[lit], None if shapes[lit][2] else self._rest(lit)) for lit in lits]
        mark, inside = 0, False  # the tag state at `mark` (text[0] is a '>')
        for start, stop in spans:
            end = stop + 1 + size  # an occurrence starts at q - lead < stop
            q = find(word, start, end)
            while q >= 0:
                # Boundaries first (cheap), then whether q is outside a tag (the last '<' or '>' before it
                # is a '>'), then the words after the first.
                before, after = is_sep[text[q - 1]], is_sep[text[q + size]]
                for lit, lead, need_after, _, rest in checks:
                    if (
                        (before or not lead)
                        and (after or not need_after)
                        and start <= q - lead < stop
                        and counts[lit] < limit
                    ):
                        if mark != q:
                            opened, closed = rfind(b"<", mark, q), rfind(b">", mark, q)
                            if opened >= 0 or closed >= 0:
                                inside = opened > closed
                            mark = q
                        if inside:
                            break
                        if rest is None or rest.match(text, q + size, q - lead + MAX_SPAN):
                            counts[lit] += 1
                q = find(word, q + 1, end)
            if limit == 1 and all(counts[lit] for lit in lits):
                return  # singular mode: every part starting with this word is found

    def _rest(self, lit: int) -> Any:
        rx = self.rests.get(lit)
        if rx is None:
            rx = self.rests[lit] = re2.compile(self.literals[lit].rest(), _options())
        return rx


def _prepare(text: str | bytes) -> bytes:
    """The text as the automaton sees it: bytes, outside any tag at the start, a separator at the end.

    ASCII case is left to the automaton and to the lower-casing of the windows that are counted;
    other str text is lower-cased here, with Unicode rules.
    """
    if isinstance(text, str):
        if not text.isascii():
            text = text.lower()
        return b">" + text.encode("utf-8", "surrogatepass") + b" "
    return b">" + bytes(text) + b" "


class PhraseIndex:
    """Weighted and banned phrases compiled for scoring text. Immutable; safe to share between threads."""

    __slots__ = ("_body", "_count", "_engine", "_entries", "_literal_keys")

    def __init__(
        self, literal_keys: list[bytes] | None, entries: list[_Entry] | None, body: bytes | None, count: int
    ) -> None:
        self._literal_keys = literal_keys
        self._entries = entries
        self._body = body
        self._count = count
        self._engine: _Engine | None = None

    @classmethod
    def build(cls, phrases: Iterable[Phrase]) -> PhraseIndex:
        """Compile phrases (duplicates resolved as e2guardian does). Raises FilterError if too large.

        Raises ValueError for a phrase with a part that has no word character (the parser never
        makes one).
        """
        chosen: dict[tuple[bool, tuple[bytes, ...]], tuple[Phrase, tuple[bytes, ...]]] = {}
        for phrase in phrases:
            keys = tuple(phrase_key(p) for p in phrase.parts)
            if not keys or not all(keys):
                raise ValueError(f"{phrase.origin}:{phrase.line}: phrase {phrase.text} has no word character")
            group = (len(keys) > 1, tuple(sorted(keys)) if len(keys) > 1 else keys)
            old = chosen.get(group)
            if old is None or _wins(phrase, old[0]):
                chosen[group] = (phrase, keys)
        literal_ids: dict[bytes, int] = {}
        entries = []
        for phrase, keys in chosen.values():
            lits = tuple(literal_ids.setdefault(k, len(literal_ids)) for k in keys)
            entries.append(
                _Entry(
                    lits,
                    phrase.weight,
                    phrase.banned,
                    phrase.category,
                    phrase.origin,
                    phrase.line,
                    phrase.text,
                )
            )
        index = cls(list(literal_ids), entries, None, len(entries))
        index._engine = _Engine(list(literal_ids), entries)  # compile now: fail at list compile time
        return index

    def to_bytes(self) -> bytes:
        """The index as bytes for `from_bytes` (a small header, then a JSON body)."""
        keys, entries = self._tables()
        strings: dict[str, int] = {}
        body = json.dumps(
            {
                "literals": [k.decode("utf-8", "surrogatepass") for k in keys],
                "entries": [
                    [
                        list(e.literals),
                        e.weight,
                        int(e.banned),
                        strings.setdefault(e.category, len(strings)),
                        strings.setdefault(e.origin, len(strings)),
                        e.line,
                        e.text,
                    ]
                    for e in entries
                ],
                "strings": list(strings),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8", "surrogatepass")
        return _MAGIC + _HEADER.pack(_FORMAT_VERSION, len(entries), len(body), crc32(body)) + body

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview) -> PhraseIndex:
        """Load what `to_bytes` made: checks it and copies it; decoding and compiling wait for first use.

        Raises IndexFormatError if the bytes are not a phrase index, of another version, or damaged.
        """
        view = memoryview(buf)
        head = len(_MAGIC) + _HEADER.size
        if view.nbytes < head or bytes(view[: len(_MAGIC)]) != _MAGIC:
            raise IndexFormatError("not a compiled phrase index (bad magic)")
        version, count, length, checksum = _HEADER.unpack_from(view, len(_MAGIC))
        if version != _FORMAT_VERSION:
            raise IndexFormatError(f"phrase index format {version} is not {_FORMAT_VERSION}: compile again")
        if view.nbytes != head + length:
            raise IndexFormatError(f"phrase index truncated: {view.nbytes} bytes, expected {head + length}")
        body = bytes(view[head:])
        if crc32(body) != checksum:
            raise IndexFormatError("phrase index damaged: checksum mismatch")
        return cls(None, None, body, count)

    def __len__(self) -> int:
        return self._count

    def score(self, text: str | bytes, *, mode: ScoreMode = "normal") -> PhraseScore:
        """Score `text` (a page, markup included, or search terms). See the module docstring."""
        if mode not in ("normal", "singular"):
            raise ValueError(f"mode must be 'normal' or 'singular', not {mode!r}")
        engine = self._engine or self._load()
        if not engine.literals:
            return EMPTY_SCORE
        data = _prepare(text)
        view = memoryview(data)
        windows = engine.present(view, 0, len(data), _WINDOW)
        if not windows:
            return EMPTY_SCORE
        present: set[int] = set()
        for _, _, ids in windows:
            present.update(ids)
        # Only parts that can change the score are counted: plain phrases that occur, and the parts of
        # combinations whose every part occurs somewhere.
        needed = present & engine.plain_ids
        combos = [
            entry
            for lit in present & engine.rare_ids
            for entry, parts in engine.combos_by[lit]
            if parts <= present
        ]
        for entry in combos:
            needed.update(entry.literals)
        if not needed:
            return EMPTY_SCORE
        limit = 1 if mode == "singular" else len(data) + 1
        counts = dict.fromkeys(needed, 0)
        # Where each needed first word must be looked for: the windows where one of its parts may occur,
        # joined when adjacent (a crowded window is first split by a finer pass).
        first = engine.first
        spans: dict[bytes, list[list[int]]] = {}
        groups: dict[bytes, set[int]] = {}
        for a, b, ids in windows:
            todo = needed.intersection(ids)
            if not todo:
                continue
            fine = engine.present(view, a, b, _FINE_WINDOW) if len(todo) > _FINE_AT else [(a, b, list(todo))]
            for fa, fb, fids in fine:
                for lit in needed.intersection(fids):
                    word = first[lit]
                    groups.setdefault(word, set()).add(lit)
                    ranges = spans.setdefault(word, [])
                    if ranges and ranges[-1][1] >= fa:
                        ranges[-1][1] = fb
                    else:
                        ranges.append([fa, fb])
        lowered = data.lower()
        for word, lits in groups.items():
            engine.count(lowered, word, sorted(lits), spans[word], counts, limit)
        return _score(engine, counts, combos, limit == 1)

    def _tables(self) -> tuple[list[bytes], list[_Entry]]:
        if self._literal_keys is None or self._entries is None:
            self._literal_keys, self._entries = _decode(self._body or b"")
        return self._literal_keys, self._entries

    def _load(self) -> _Engine:
        keys, entries = self._tables()
        engine = _Engine(keys, entries)
        self._engine = engine
        return engine


def _wins(new: Phrase, old: Phrase) -> bool:
    """e2guardian's rule when one phrase is listed twice: banned first, then the higher weight."""
    if new.banned != old.banned:
        return new.banned
    return not new.banned and new.weight > old.weight


def _decode(body: bytes) -> tuple[list[bytes], list[_Entry]]:
    try:
        doc: dict[str, Any] = json.loads(body.decode("utf-8", "surrogatepass"))
        strings: list[str] = doc["strings"]
        keys = [str(k).encode("utf-8", "surrogatepass") for k in doc["literals"]]
        entries = [
            _Entry(
                tuple(int(x) for x in lits), int(w), bool(banned), strings[c], strings[o], int(line), str(t)
            )
            for lits, w, banned, c, o, line, t in doc["entries"]
        ]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise IndexFormatError("phrase index body is damaged") from e
    if any(not 0 <= lit < len(keys) for e in entries for lit in e.literals):
        raise IndexFormatError("phrase index body is damaged: part out of range")
    return keys, entries


def _score(engine: _Engine, counts: dict[int, int], combos: Iterable[_Entry], singular: bool) -> PhraseScore:
    found: list[tuple[_Entry, int]] = []
    for lit, n in counts.items():
        if n:
            found.extend((entry, n) for entry in engine.plain.get(lit, ()))
    for entry in combos:
        n = min(counts[lit] for lit in entry.literals)
        if n:
            found.append((entry, n))
    if not found:
        return EMPTY_SCORE
    totals: dict[str, int] = {}
    banned: list[PhraseHit] = []
    hits: list[PhraseHit] = []
    for entry, n in found:
        n = 1 if singular else n
        hit = PhraseHit(entry.text, entry.weight, n, entry.category, entry.origin, entry.line)
        if entry.banned:
            banned.append(hit)
        else:
            hits.append(hit)
            totals[entry.category] = totals.get(entry.category, 0) + entry.weight * n
    hits.sort(key=lambda h: (-abs(h.weight * h.count), h.origin, h.line))
    banned.sort(key=lambda h: (h.origin, h.line))
    return PhraseScore(totals, tuple(banned), tuple(hits))
