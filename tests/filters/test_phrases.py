"""e2guardian phrase-list parser: what each kind of line becomes, and which lines are refused, with why."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from filters.errors import FilterError
from filters.phrases import (
    MAX_INCLUDE_DEPTH,
    MAX_LINE,
    MAX_PART,
    Phrase,
    PhraseListKind,
    parse_phrase_list,
    phrase_key,
)
from filters.report import ReportBuilder


def parse(
    text: str, *, kind: PhraseListKind = "auto", origin: str = "list", include: dict[str, str] | None = None
) -> tuple[list[Phrase], ReportBuilder]:
    report = ReportBuilder(origin)

    def reader(path: str) -> tuple[str, Sequence[str]]:
        if include is None or path not in include:
            raise FilterError(f"{path}: no such list")
        return path, include[path].splitlines()

    phrases = parse_phrase_list(
        text.splitlines(),
        origin,
        report,
        category="default",
        include=reader if include is not None else None,
        kind=kind,
    )
    return phrases, report


def one(text: str, *, kind: PhraseListKind = "weighted") -> Phrase:
    phrases, report = parse(text, kind=kind)
    assert report.skipped == 0, report.first_skipped
    assert len(phrases) == 1
    return phrases[0]


@pytest.mark.parametrize(
    ("line", "parts", "weight"),
    [
        ("<porn><50>", ("porn",), 50),
        ("< sex ><10>", (" sex ",), 10),  # the spaces ask for word boundaries; kept as written
        ("<Free PORN><80>", ("free porn",), 80),  # lower-cased
        ("<education><-5>", ("education",), -5),  # a good phrase
        ("<+18><+7>", ("+18",), 7),
        ("<a>,<b><20>", ("a", "b"), 20),  # a combination
        ("< raping >, <murdering><25>", (" raping ", "murdering"), 25),  # white space around the comma
        ("<a> , <b> ,<c> <30>", ("a", "b", "c"), 30),  # and before the weight
        ("<pearl necklace>,< cum ><70> #JMH overblocking", ("pearl necklace", " cum "), 70),  # comment
        ("<金发美女><50>#blond beauty", ("金发美女",), 50),  # a comment with no space before it
        ("   <indented><5>   ", ("indented",), 5),
        ("\ufeff<bom><5>", ("bom",), 5),
        ("<hl[include_form]><25>", ("hl[include_form]",), 25),
        ('<10"+ cock><70>', ('10"+ cock',), 70),
        ("< 5 ><< 3 >", None, None),  # unbalanced: refused
    ],
)
def test_weighted_lines(line: str, parts: tuple[str, ...] | None, weight: int | None) -> None:
    phrases, report = parse(line, kind="weighted")
    if parts is None:
        assert phrases == [] and report.skipped == 1
        return
    assert [(p.parts, p.weight, p.banned) for p in phrases] == [(parts, weight, False)]
    assert report.entries == 1 and report.skipped == 0


def test_phrase_records_where_it_came_from() -> None:
    phrases, _ = parse("# comment\n\n<one><1>\n<two><2>\n", origin="porn/weighted")
    assert [(p.origin, p.line, p.category) for p in phrases] == [
        ("porn/weighted", 3, "default"),
        ("porn/weighted", 4, "default"),
    ]
    assert phrases[1].text == "<two>"
    assert Phrase(("a", " b "), 5, False, "c", "o", 1).text == "<a>,< b >"


def test_banned_lists() -> None:
    phrases, report = parse("<motherfucking>\n<family filter is off>,<altavista>,<search>\n", kind="banned")
    assert [(p.parts, p.weight, p.banned) for p in phrases] == [
        (("motherfucking",), 0, True),
        (("family filter is off", "altavista", "search"), 0, True),
    ]
    assert report.entries == 2


def test_a_weight_in_a_banned_list_makes_a_weighted_phrase_as_in_e2guardian() -> None:
    phrases, _ = parse("<bad>\n<meh><5>\n", kind="banned")
    assert [(p.parts, p.weight, p.banned) for p in phrases] == [(("bad",), 0, True), (("meh",), 5, False)]


def test_missing_weight_in_a_weighted_list_is_refused_not_banned() -> None:
    # e2guardian would ban "arse bandit" outright; in a weighted list it is surely a typo.
    phrases, report = parse("<ok><5>\n< arse bandit>\n", kind="weighted")
    assert [p.parts for p in phrases] == [("ok",)]
    assert [str(s) for s in report.first_skipped] == [
        "list:2: missing weight (a weighted list needs <phrase><weight>)"
    ]


def test_auto_kind_decides_per_file() -> None:
    banned, report = parse("<x>\n<y>,<z>\n")
    assert all(p.banned for p in banned) and len(banned) == 2
    assert report.warnings == ["list: no phrase has a weight: read as a banned phrase list"]
    mixed, report = parse("<x><5>\n<y>\n")
    assert [(p.parts, p.banned) for p in mixed] == [(("x",), False)]
    assert report.skipped == 1


def test_auto_kind_refuses_exception_lists() -> None:
    # exceptionphraselist phrases allow a page; read as banned phrases they would block it.
    phrases, report = parse("<hotmail inbox>\n<folder: inbox>\n", origin="goodphrases/exception_email")
    assert phrases == []
    assert report.skipped == 2
    assert "exception phrase lists are not supported" in str(report.first_skipped[0])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("<lesbian ezine<20>", "unbalanced < > in phrase line"),
        ("< self harm ><25", "unbalanced < > in phrase line"),  # e2guardian would ban "self harm"
        ("< keygens ><25i>", "weight <25i> is not an integer"),
        ("<x><50%>", "percentage weight <50%> is not supported"),
        ("<x><0>", "weight 0 (e2guardian would treat the phrase as banned)"),
        ("<美女明星><30>3 #beauty star", "unexpected text after the phrase: '3 #beauty star'"),
        ("<dojrzałe kobiety><porno><70>", "unexpected text after the phrase: '<70>'"),
        ("<><5>", "empty phrase <> (no letter or digit)"),
        ("<-- !!><5>", "empty phrase <-- !!> (no letter or digit)"),
        ("<x><>", "weight <> is not an integer"),
        ("<x><99999999999>", "weight 99999999999 out of range (±1000000)"),
        ("<" + "x" * (MAX_PART + 1) + "><5>", f"phrase longer than {MAX_PART} bytes"),
        ("<" + "é" * 64 + "><5>", f"phrase longer than {MAX_PART} bytes"),  # 128 bytes of UTF-8
        ("<x>," * 32 + "<x><5>", "combination of more than 32 parts"),
        ("(HN.608037292182080914)", "not a phrase line (expected <phrase><weight>, # or .Include<...>)"),
        ("plain words", "not a phrase line (expected <phrase><weight>, # or .Include<...>)"),
        (".Include /etc/list", "malformed .Include<path> directive"),
        ("#listcategory:", "#listcategory: without a name"),
        ("<" + "x" * MAX_LINE + "><5>", f"line longer than {MAX_LINE} characters"),
    ],
)
def test_bad_lines_are_skipped_with_file_and_line(line: str, reason: str) -> None:
    phrases, report = parse(f"<fine><1>\n{line}\n<also fine><2>\n", kind="weighted", origin="w")
    assert [p.parts for p in phrases] == [("fine",), ("also fine",)]
    assert report.skipped == 1
    assert [str(s) for s in report.first_skipped] == [f"w:2: {reason}"]
    assert report.entries == 2


def test_listcategory_sets_the_category_of_what_follows() -> None:
    text = '<a><1>\n#listcategory: "Pornography"\n<b><2>\n#listcategory: unquoted name\n<c><3>\n'
    text += '#listcategory: "Pornography (Polish)\n<d><4>\n#LISTCATEGORY: "Upper"\n<e><5>\n'
    phrases, report = parse(text)
    assert [(p.parts[0], p.category) for p in phrases] == [
        ("a", "default"),
        ("b", "Pornography"),
        ("c", "unquoted name"),
        ("d", "Pornography (Polish)"),  # a missing closing quote is tolerated
        ("e", "Upper"),
    ]
    assert report.skipped == 0


def test_comments_blank_lines_and_unsupported_directives() -> None:
    phrases, report = parse(
        "# a comment\n#<commented><5>\n\n   \n#noconvert\n#time: 9 0 17 0 01234\n<x><1>\n"
    )
    assert [p.parts for p in phrases] == [("x",)]
    assert report.skipped == 0
    assert report.warnings == ["list:6: #time: is not supported; these phrases apply at all times"]


def test_include_reads_the_other_list_in_place_with_the_current_category() -> None:
    include = {
        "porn/weighted": '#listcategory: "Pornography"\n<porn><50>\n',
        "games/weighted": "<game><10>\n",
    }
    text = (
        '<first><1>\n.Include<porn/weighted>\n#listcategory: "Games"\n.include<games/weighted>\n<last><2>\n'
    )
    phrases, report = parse(text, include=include)
    assert [(p.parts[0], p.category, p.origin, p.line) for p in phrases] == [
        ("first", "default", "list", 1),
        ("porn", "Pornography", "porn/weighted", 2),
        ("game", "Games", "games/weighted", 1),
        ("last", "Games", "list", 5),  # the included file's #listcategory did not leak back
    ]
    assert report.entries == 4 and report.skipped == 0


def test_include_cycles_are_refused() -> None:
    include = {"a": "<in a><1>\n.Include<b>\n", "b": "<in b><2>\n.Include<a>\n"}
    phrases, report = parse(".Include<a>\n", include=include, origin="top")
    assert [p.parts[0] for p in phrases] == ["in a", "in b"]
    assert [str(s) for s in report.first_skipped] == [
        "b:2: cannot include a: include cycle top -> a -> b -> a"
    ]


def test_a_list_including_itself_is_refused() -> None:
    text = "<x><1>\n.Include<list>\n"
    phrases, report = parse(text, include={"list": text}, origin="list")
    assert [p.parts for p in phrases] == [("x",)]
    assert report.skipped == 1 and "include cycle" in str(report.first_skipped[0])


def test_two_different_files_with_the_same_name_are_not_a_cycle() -> None:
    # ukenglish has a "weighted" in every folder; an include reader may name them all "weighted".
    report = ReportBuilder("weighted")
    files = {"../adult/weighted": ["<adult><5>"]}

    def reader(path: str) -> tuple[str, Sequence[str]]:
        return "weighted", files[path]

    phrases = parse_phrase_list(
        ["<porn><50>", ".Include<../adult/weighted>"], "weighted", report, category="c", include=reader
    )
    assert [p.parts[0] for p in phrases] == ["porn", "adult"] and report.skipped == 0


def test_include_depth_is_limited() -> None:
    include = {f"l{i}": f"<p{i}><1>\n.Include<l{i + 1}>\n" for i in range(MAX_INCLUDE_DEPTH + 5)}
    phrases, report = parse(".Include<l0>\n", include=include)
    assert len(phrases) == MAX_INCLUDE_DEPTH
    assert report.skipped == 1 and "nested deeper than" in str(report.first_skipped[0])


def test_unreadable_includes_are_skipped_lines() -> None:
    phrases, report = parse("<x><1>\n.Include<missing>\n", include={})
    assert [p.parts for p in phrases] == [("x",)]
    assert [str(s) for s in report.first_skipped] == ["list:2: cannot include missing: missing: no such list"]

    def broken(path: str) -> tuple[str, Sequence[str]]:
        raise OSError(13, "Permission denied", path)

    report = ReportBuilder("list")
    parse_phrase_list([".Include<secret>"], "list", report, category="c", include=broken)
    assert report.skipped == 1 and "Permission denied" in str(report.first_skipped[0])


def test_includes_without_a_reader_are_refused() -> None:
    phrases, report = parse("<x><1>\n.Include<other>\n")
    assert len(phrases) == 1
    assert "includes are not allowed for this source" in str(report.first_skipped[0])


@pytest.mark.parametrize(
    ("part", "key"),
    [
        ("sex", b"sex"),
        (" sex ", b" sex "),
        ("  Sex  ", b" sex "),
        ("18 u.s.c", b"18 u s c"),
        ("self-harm", b"self harm"),
        ("_analfuck_", b" analfuck "),
        ('10"+ cock', b"10 cock"),
        ("schema.org/WebPage", b"schema org/webpage"),
        ("hl[include_form]", b"hl include form "),
        ("Ünïcode", "ünïcode".encode()),
        ("--", b""),
        ("", b""),
    ],
)
def test_phrase_key_normalises_like_the_text(part: str, key: bytes) -> None:
    assert phrase_key(part) == key
