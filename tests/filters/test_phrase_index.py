"""Phrase scoring: what counts as an occurrence, how weights add up, the index round trip, and a
property test against a plain reference scorer (the smart view built by hand, then `bytes.find`)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters import phrase_index
from filters.errors import FilterError, IndexFormatError
from filters.phrase_index import MAX_SPAN, PhraseIndex, PhraseScore
from filters.phrases import SEPARATOR_BYTES, Phrase, PhraseListKind, parse_phrase_list, phrase_key
from filters.report import ReportBuilder


def index_of(text: str, *, kind: PhraseListKind = "auto") -> PhraseIndex:
    report = ReportBuilder("test")
    phrases = parse_phrase_list(text.splitlines(), "test", report, category="cat", kind=kind)
    assert report.skipped == 0, report.first_skipped
    return PhraseIndex.build(phrases)


def counts(score: PhraseScore) -> dict[str, int]:
    return {h.phrase: h.count for h in score.hits + score.banned}


@pytest.mark.parametrize(
    ("phrase", "text", "expected"),
    [
        ("<porn>", "PORN and Porn and porn", 3),  # case does not matter
        ("<porn>", "pornography, freeporn.com", 2),  # no spaces: a substring anywhere
        ("< sex >", "sex, (sex) <b>sex</b> sex", 4),  # separators and tags are word boundaries
        ("< sex >", "sussex sexy sexsex", 0),
        ("< sex >", "sex", 1),  # the ends of the text count as boundaries
        ("< sex>", "sexy sex", 2),
        ("<sex >", "unisex sexy", 1),
        ("<18 u.s.c>", "see 18 U.S.C. 2257 and 18-u-s-c", 2),  # punctuation in the phrase is a separator too
        ("<self-harm>", "self harm, self-harm, self_harm, self--harm", 4),
        ("<free porn>", "free <b>porn</b> and FREE\n\t  porn", 2),  # tags and runs of separators in between
        ("<free porn>", "freeporn free-porn", 1),
        ("<porn>", '<a href="porn.html" title="porn">x</a> <porn>', 0),  # nothing inside tags counts
        ("<article>", "<article class='x'></article>", 0),
        ("<article>", "an article", 1),
        ("<porn>", "<script>var t = 'porn';</script><style>.porn{}</style>", 2),  # script text is text
        ("<porn>", "x < y, porn > z porn", 1),  # a stray '<' hides text up to the next '>', as in e2guardian
        ("<porn>", "a > porn", 1),
        ("<aa>", "aaaa", 3),  # overlapping occurrences all count
        ("< sex >", "sex sex sex", 3),  # and sharing a separator is overlapping too
        ("<a b a>", "a b a b a", 2),
        ("<c++>", "c++ and c", 2),  # "+" is a separator: the phrase is "c" followed by a boundary
        ("<(.*)+[a-z]$>", "(.*)+[a-z]$ ok", 1),  # regex syntax in a phrase is just text
        ("<ünïcode>", "ÜNÏCODE ünïcode", 2),  # str text folds non-ASCII case too
    ],
)
def test_what_counts_as_an_occurrence(phrase: str, text: str, expected: int) -> None:
    index = index_of(f"{phrase}<1>")
    assert index.score(text).total == expected
    if text.isascii():
        assert index.score(text.encode()).total == expected


def test_bytes_text_folds_ascii_case_only() -> None:
    index = index_of("<ünïcode><1>")
    assert index.score("ÜNÏCODE ünïcode".encode()).total == 1


def test_normal_and_singular_modes() -> None:
    index = index_of('#listcategory: "Adult"\n<porn><10>\n< xxx ><5>\n#listcategory: "Good"\n<education><-3>')
    text = "porn porn porn xxx education education"
    normal = index.score(text)
    assert dict(normal.totals) == {"Adult": 35, "Good": -6}
    assert normal.total == 29
    assert [(h.phrase, h.weight, h.count, h.category) for h in normal.hits] == [
        ("<porn>", 10, 3, "Adult"),
        ("<education>", -3, 2, "Good"),
        ("< xxx >", 5, 1, "Adult"),
    ]
    singular = index.score(text, mode="singular")
    assert dict(singular.totals) == {"Adult": 15, "Good": -3}
    assert all(h.count == 1 for h in singular.hits)
    assert index.score(text) == normal  # scoring has no memory
    with pytest.raises(ValueError, match="mode"):
        index.score(text, mode="loud")  # type: ignore[arg-type]


def test_combinations_need_every_part_and_count_as_often_as_the_rarest() -> None:
    index = index_of("<nude>,<pictures><20>\n<alpha>,<beta>,<gamma><7>")
    assert counts(index.score("nude nude pictures nude")) == {"<nude>,<pictures>": 1}
    assert index.score("nude nude pictures nude").total == 20
    assert counts(index.score("pictures pictures nude nude nude")) == {"<nude>,<pictures>": 2}
    assert index.score("nude only").total == 0
    assert index.score("gamma beta alpha").total == 7  # order does not matter
    assert index.score("gamma beta").total == 0


def test_banned_phrases_are_reported_apart_and_never_add_to_totals() -> None:
    index = PhraseIndex.build(
        [
            Phrase(("motherfucking",), 0, True, "Banned", "banned", 1),
            Phrase(("family filter is off", "altavista"), 0, True, "Banned", "banned", 2),
            Phrase(("porn",), 10, False, "Adult", "weighted", 1),
        ]
    )
    score = index.score("AltaVista: family filter is off. Motherfucking porn")
    assert [(h.phrase, h.count, h.origin, h.line) for h in score.banned] == [
        ("<motherfucking>", 1, "banned", 1),
        ("<family filter is off>,<altavista>", 1, "banned", 2),
    ]
    assert dict(score.totals) == {"Adult": 10}


def test_the_same_phrase_twice_keeps_one_entry_as_e2guardian_does() -> None:
    index = PhraseIndex.build(
        [
            Phrase(("x",), 5, False, "A", "one", 1),
            Phrase(("x",), 10, False, "B", "two", 7),  # the higher weight wins
            Phrase(("x",), 10, False, "C", "three", 9),  # a tie keeps the first
            Phrase(("y",), 50, False, "A", "one", 2),
            Phrase(("y",), 0, True, "Banned", "banned", 3),  # banned wins over weighted
            Phrase(("a", "b"), 3, False, "A", "one", 4),
            Phrase(("b", "a"), 4, False, "A", "one", 5),  # the same combination, parts reordered
        ]
    )
    assert len(index) == 3
    score = index.score("x y a b")
    assert [(h.phrase, h.weight, h.origin) for h in score.hits] == [("<x>", 10, "two"), ("<b>,<a>", 4, "one")]
    assert [h.phrase for h in score.banned] == ["<y>"]


def test_empty_index_and_empty_text() -> None:
    assert PhraseIndex.build([]).score("anything at all") == PhraseScore({}, (), ())
    assert len(PhraseIndex.build([])) == 0
    assert index_of("<x><1>").score("") == PhraseScore({}, (), ())
    assert index_of("<x><1>").score(b"") == PhraseScore({}, (), ())


def test_an_occurrence_must_fit_in_max_span() -> None:
    index = index_of("<free porn><1>")
    assert index.score("free" + " " * (MAX_SPAN - 20) + "porn").total == 1
    assert index.score("free" + " " * (MAX_SPAN + 10) + "porn").total == 0


def test_a_part_without_word_characters_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="no word character"):
        PhraseIndex.build([Phrase(("--",), 5, False, "c", "o", 1)])


def test_round_trip_through_bytes() -> None:
    index = index_of(
        '#listcategory: "Adult"\n<porn><10>\n<nude>,<pics><20>\n< sex ><-2>\n<金发美女><50>\n<ünï><3>'
    )
    blob = index.to_bytes()
    loaded = PhraseIndex.from_bytes(memoryview(blob))
    assert len(loaded) == len(index) == 5
    text = "Porn! nude PICS sex 金发美女 ünï"
    assert loaded.score(text) == index.score(text)
    assert loaded.to_bytes() == blob
    again = PhraseIndex.from_bytes(memoryview(bytearray(blob)))
    assert again.score(text, mode="singular") == index.score(text, mode="singular")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"NOTPHRS!" + b[8:], "bad magic"),
        (lambda b: b[:5], "bad magic"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"x", "truncated"),
        (lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:], "checksum"),
        (lambda b: b[:8] + b"\x09" + b[9:], "format 9"),
    ],
)
def test_damaged_bytes_are_refused(damage: object, message: str) -> None:
    blob = index_of("<porn><10>").to_bytes()
    with pytest.raises(IndexFormatError, match=message):
        PhraseIndex.from_bytes(damage(blob))  # type: ignore[operator]


def test_loading_defers_compiling_to_first_use() -> None:
    phrases = [Phrase((f"word{i} thing{i}",), i % 50 + 1, False, "c", "o", i) for i in range(20_000)]
    blob = PhraseIndex.build(phrases).to_bytes()
    loaded = PhraseIndex.from_bytes(blob)
    assert loaded._engine is None  # nothing compiled until the first score
    assert loaded.score("a word7 thing7 here").total == 8


# A plain reference scorer: e2guardian's smart view built character by character, then every
# (overlapping) occurrence of each normalised part found with bytes.find.


def _reference_view(text: str | bytes) -> bytes:
    data = text.lower().encode("utf-8", "surrogatepass") if isinstance(text, str) else text.lower()
    out = bytearray()
    in_tag = False
    for c in data:
        if c == ord("<"):
            in_tag = True
        elif c == ord(">"):
            in_tag = False
            out.append(32)
        elif not in_tag:
            out.append(32 if c in SEPARATOR_BYTES else c)
    return b" " + b" ".join(bytes(out).split()) + b" "


def _occurrences(view: bytes, key: bytes) -> int:
    found, at = 0, view.find(key)
    while at >= 0:
        found += 1
        at = view.find(key, at + 1)
    return found


def _reference(
    phrases: list[Phrase], text: str | bytes, singular: bool
) -> tuple[dict[str, int], set[tuple[str, int]]]:
    chosen: dict[tuple[bool, tuple[bytes, ...]], Phrase] = {}
    for p in phrases:
        keys = tuple(phrase_key(part) for part in p.parts)
        group = (len(keys) > 1, tuple(sorted(keys)) if len(keys) > 1 else keys)
        old = chosen.get(group)
        if (
            old is None
            or (p.banned and not old.banned)
            or (not p.banned and not old.banned and p.weight > old.weight)
        ):
            chosen[group] = p
    view = _reference_view(text)
    totals: dict[str, int] = {}
    found: set[tuple[str, int]] = set()
    for p in chosen.values():
        n = min(_occurrences(view, phrase_key(part)) for part in p.parts)
        if n:
            n = 1 if singular else n
            found.add((p.text, n))
            if not p.banned:
                totals[p.category] = totals.get(p.category, 0) + p.weight * n
    return totals, found


_WORDS = ["ab", "ba", "abc", "a", "b", "cab", "x1", "é"]
_part = st.builds(
    lambda lead, words, trail: lead + " ".join(words) + trail,
    st.sampled_from(["", " ", "-", " _"]),
    st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3),
    st.sampled_from(["", " ", ".", "! "]),
)
_phrase = st.builds(
    lambda parts, weight, banned, category, line: Phrase(
        tuple(parts), 0 if banned else weight, banned, category, "gen", line
    ),
    st.lists(_part, min_size=1, max_size=3),
    st.integers(-20, 20).filter(bool),
    st.booleans(),
    st.sampled_from(["A", "B"]),
    st.integers(1, 1000),
)
_token = st.one_of(
    st.sampled_from([*_WORDS, "AB", "Cab", "É"]),
    st.sampled_from([" ", "  ", "\n", "\t", "\x00", ".", ", ", "-", "_", "'", '"', "&amp;", "7"]),
    st.sampled_from(["<b>", "</b>", "<a href='ab cab'>", "<", ">", "<i ab>", "<br/>"]),
)
_text = st.lists(_token, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_phrase, max_size=12), _text, st.booleans(), st.booleans())
def test_scores_match_the_reference(phrases: list[Phrase], text: str, as_bytes: bool, singular: bool) -> None:
    index = PhraseIndex.build(phrases)
    # bytes text folds ASCII case only, as does the reference's bytes.lower()
    subject: str | bytes = text.encode() if as_bytes else text
    score = index.score(subject, mode="singular" if singular else "normal")
    totals, found = _reference(phrases, subject, singular)
    assert {k: v for k, v in score.totals.items()} == totals
    assert {(h.phrase, h.count) for h in score.hits + score.banned} == found


@settings(max_examples=150, deadline=None)
@given(st.lists(_phrase, max_size=12), _text, st.booleans())
def test_small_and_fine_windows_give_the_same_scores(
    phrases: list[Phrase], text: str, singular: bool
) -> None:
    index = PhraseIndex.build(phrases)
    expected = _reference(phrases, text * 3, singular)
    with pytest.MonkeyPatch.context() as patch:
        # Windows of a few bytes put every occurrence across a window edge, and a threshold of zero
        # sends every window through the finer pass.
        patch.setattr(phrase_index, "_WINDOW", 7)
        patch.setattr(phrase_index, "_FINE_WINDOW", 3)
        patch.setattr(phrase_index, "_FINE_AT", 0)
        score = index.score(text * 3, mode="singular" if singular else "normal")
    assert dict(score.totals) == expected[0]
    assert {(h.phrase, h.count) for h in score.hits + score.banned} == expected[1]


def test_nested_prefixes_over_a_run_of_one_letter() -> None:
    # Every occurrence of every phrase overlaps every other: about 100,000 of them, counted exactly.
    index = PhraseIndex.build([Phrase(("a" * k,), 1, False, "c", "o", k) for k in range(1, 21)])
    score = index.score("a" * 5000)
    assert {h.phrase: h.count for h in score.hits} == {f"<{'a' * k}>": 5001 - k for k in range(1, 21)}


def test_a_huge_list_and_a_page_full_of_it() -> None:
    words = [f"w{i:05d}" for i in range(30_000)]
    phrases = [Phrase((w,), 1, False, "c", "o", i) for i, w in enumerate(words)]
    phrases += [
        Phrase((f"{a} {b}",), 2, False, "c", "o", i) for i, (a, b) in enumerate(itertools.pairwise(words))
    ]
    index = PhraseIndex.build(phrases)
    page = " ".join(words[:20_000])  # 120 KB in which some 40,000 listed phrases occur
    score = index.score(page)
    assert score.total == 20_000 + 2 * 19_999


def test_too_large_for_the_matcher_is_a_filter_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phrase_index, "_RE2_MAX_MEM", 1 << 16)
    with pytest.raises(FilterError, match="too large"):
        PhraseIndex.build([Phrase((f"phrase number {i}",), 1, False, "c", "o", i) for i in range(2_000)])
