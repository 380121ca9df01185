"""e2guardian phrase lists: `<phrase><weight>`, combinations, banned phrases, categories, includes.

What a line may be (after leading and trailing white space is dropped; case never matters):

- `<phrase><weight>`: a weighted phrase; a negative weight marks a good phrase (it lowers the score).
- `<a>,<b>,<c><weight>`: a combination; it scores only when every part occurs on the page. White space
  around the commas is allowed, as e2guardian allows it (`< raping >, <murdering><25>` is real).
- `<phrase>` or `<a>,<b>` without a weight: a banned phrase (an immediate block), in a banned list only.
- `#listcategory: "Name"`: the category of the phrases that follow, in this file and in the files it
  includes; a missing closing quote is tolerated. `#time:` (time-limited phrases) is not supported: it
  is reported and the phrases stay active at all times. Other `#` lines are comments, and so is text
  from a `#` after the closing `>` (`<pearl necklace><10> #note`, `<金发美女><50>#blond`).
- `.Include<path>`: the lines of another list, read through the caller's `IncludeReader`, with the
  current category; nested at most `MAX_INCLUDE_DEPTH` deep; a file including itself again (directly
  or not) is refused with its `file:line`.

Whether a list is weighted or banned is `kind`: "weighted" (a line without a weight is an error),
"banned" (a line without a weight is banned; one with a weight is weighted, as in e2guardian), or
"auto" (the default): each file is banned if none of its phrase lines has a weight, else weighted;
a file whose name starts with "exception" (e2guardian's exceptionphraselist, ukenglish's
goodphrases/exception_email) has every phrase refused, as exception phrases are not supported and
reading them as banned would block the very pages they allow.

Lines that are refused, each counted with its `file:line` and the reason (e2guardian would accept
most of them silently, and some in a harmful way): an unbalanced `<` or `>` (`< self harm ><25` would
make "self harm" a banned phrase there), a missing weight in a weighted list, a weight that is not an
integer (`<25i>`), a percentage weight, a weight of 0 (e2guardian reads it as *banned*), text after the
weight (`<30>3`), an empty phrase or one with no word character (`<-->`), a phrase part longer than
`MAX_PART` bytes, a line longer than `MAX_LINE` characters, and anything else not starting with
`<`, `#` or `.Include<`.

Phrases keep their parts lower-cased but otherwise as written (`< sex >` keeps its spaces, which ask
for word boundaries); `phrase_key` gives the normalised form the matcher uses, shared by text and
phrases so that punctuation and runs of separators mean the same on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from filters.errors import FilterError
from filters.report import ReportBuilder

MAX_LINE = 2048  # e2guardian's own line limit for lists
MAX_PART = 127  # bytes (UTF-8); e2guardian truncates longer phrases, which would then match other text
MAX_PARTS = 32
MAX_WEIGHT = 1_000_000
MAX_INCLUDE_DEPTH = 8

PhraseListKind = Literal["auto", "weighted", "banned"]
IncludeReader = Callable[[str], tuple[str, Sequence[str]]]
"""Path text of an `.Include<...>` -> (origin name, lines). Raises FilterError or OSError if unreadable."""

# The bytes e2guardian turns into spaces before it matches a page (NaughtyFilter.cpp, checkme):
# controls, space and !"#$%&'()*+,-. ; :;<=>?@ ; [\]^_`. '<' and '>' are tag delimiters there and
# spaces in its raw pass. Letters, digits, '/', '{|}~' and every non-ASCII byte are word characters.
SEPARATOR_BYTES = bytes(range(0x00, 0x2F)) + bytes(range(0x3A, 0x41)) + bytes(range(0x5B, 0x61))
_TO_SPACE = bytes.maketrans(SEPARATOR_BYTES, b" " * len(SEPARATOR_BYTES))

_PHRASE_LINE = re.compile(
    r"""(?P<parts><[^<>]*>(?:\s*,\s*<[^<>]*>)*)   # <a> or <a>,<b>,...
        (?:\s*<(?P<weight>[^<>]*)>)?               # <weight>
        (?P<rest>.*)$""",
    re.VERBOSE,
)
_PART = re.compile(r"<([^<>]*)>")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_INCLUDE = re.compile(r"\.include<([^<>]+)>\s*(?:#.*)?$", re.IGNORECASE)
_CATEGORY = re.compile(r"#\s*listcategory\s*:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Phrase:
    """One phrase-list entry. `parts` has one part for a plain phrase, several for a combination."""

    parts: tuple[str, ...]  # lower-cased, otherwise as written: "< sex >" stays " sex "
    weight: int  # 0 when banned
    banned: bool
    category: str
    origin: str
    line: int

    @property
    def text(self) -> str:
        """The phrase as e2guardian lists write it, without the weight: `<a>,<b>`."""
        return ",".join(f"<{part}>" for part in self.parts)


def phrase_key(part: str) -> bytes:
    """The normalised literal the matcher looks for: lower case, UTF-8, separator runs as one space.

    A leading or trailing space stays (one), meaning "a separator or the edge of the text here"; an
    empty result means the part has no word character and can never be matched.
    """
    spaced = part.lower().encode("utf-8", "surrogatepass").translate(_TO_SPACE)
    core = b" ".join(spaced.split())
    if not core:
        return b""
    return (b" " if spaced[:1] == b" " else b"") + core + (b" " if spaced[-1:] == b" " else b"")


@dataclass(frozen=True)
class _Parsed:
    lineno: int
    parts: tuple[str, ...]
    weight: int | None  # None: no weight written
    category: str


@dataclass(frozen=True)
class _Include:
    lineno: int
    target: str
    category: str


@dataclass
class _Context:
    """What stays the same across one top-level list and everything it includes."""

    report: ReportBuilder
    include: IncludeReader | None
    kind: PhraseListKind
    out: list[Phrase]
    stack: list[tuple[str, int]]  # (origin, content identity) of the files being read


def parse_phrase_list(
    lines: Sequence[str],
    origin: str,
    report: ReportBuilder,
    *,
    category: str,
    include: IncludeReader | None = None,
    kind: PhraseListKind = "auto",
) -> list[Phrase]:
    """Parse one e2guardian phrase list (and what it includes) into phrases, in file order.

    `category` applies until a `#listcategory:` line. Every refused line is counted in `report` with
    its `file:line` and reason; every phrase kept adds one to `report.entries`.
    """
    ctx = _Context(report, include, kind, [], [(origin, _identity(lines))])
    _parse_file(lines, origin, category, ctx)
    return ctx.out


def _identity(lines: Sequence[str]) -> int:
    # Origins are often bare file names ("weighted" in every ukenglish folder): name and content
    # together tell a real cycle from two different files that happen to share a name.
    return hash(tuple(lines))


def _parse_file(lines: Sequence[str], origin: str, category: str, ctx: _Context) -> None:
    report = ctx.report
    # Banned or weighted is decided once the whole file is read ("auto" looks at every line), so
    # lines are collected first; includes are then read at their place in the order.
    items: list[_Parsed | _Include] = []
    current = category
    for lineno, raw in enumerate(lines, 1):
        if len(raw) > MAX_LINE:
            report.skip(origin, lineno, f"line longer than {MAX_LINE} characters")
            continue
        line = raw.strip().lstrip("\ufeff").strip()
        if not line:
            continue
        if line.startswith("<"):
            parsed = _parse_phrase_line(line, origin, lineno, current, report)
            if parsed is not None:
                items.append(parsed)
        elif line.startswith("#"):
            if _CATEGORY.match(line):
                name = _category_name(line)
                if name:
                    current = name
                else:
                    report.skip(origin, lineno, "#listcategory: without a name")
            elif line[1:].lstrip().lower().startswith("time:"):
                report.warn(f"{origin}:{lineno}: #time: is not supported; these phrases apply at all times")
        elif line.startswith("."):
            target = _INCLUDE.match(line)
            if target is None:
                report.skip(origin, lineno, "malformed .Include<path> directive")
            else:
                items.append(_Include(lineno, target.group(1).strip(), current))
        else:
            report.skip(origin, lineno, "not a phrase line (expected <phrase><weight>, # or .Include<...>)")

    kind = ctx.kind
    exception = kind == "auto" and _base_name(origin).startswith("exception")
    if kind == "auto":
        weights = [item.weight for item in items if isinstance(item, _Parsed)]
        kind = "banned" if weights and all(w is None for w in weights) else "weighted"
        if kind == "banned" and not exception:
            report.warn(f"{origin}: no phrase has a weight: read as a banned phrase list")
    for item in items:
        if isinstance(item, _Include):
            _read_include(item, origin, ctx)
        elif exception:
            # Its phrases would *allow* a page; read as banned they would block it instead.
            report.skip(origin, item.lineno, "exception phrase lists are not supported")
        elif item.weight is not None:
            ctx.out.append(Phrase(item.parts, item.weight, False, item.category, origin, item.lineno))
            report.entries += 1
        elif kind == "banned":
            ctx.out.append(Phrase(item.parts, 0, True, item.category, origin, item.lineno))
            report.entries += 1
        else:
            report.skip(origin, item.lineno, "missing weight (a weighted list needs <phrase><weight>)")


def _read_include(item: _Include, origin: str, ctx: _Context) -> None:
    report, target = ctx.report, item.target
    if ctx.include is None:
        report.skip(origin, item.lineno, f"cannot include {target}: includes are not allowed for this source")
        return
    if len(ctx.stack) > MAX_INCLUDE_DEPTH:
        report.skip(origin, item.lineno, f"cannot include {target}: nested deeper than {MAX_INCLUDE_DEPTH}")
        return
    try:
        inc_origin, inc_lines = ctx.include(target)
    except (FilterError, OSError) as e:
        report.skip(origin, item.lineno, f"cannot include {target}: {e}")
        return
    identity = (inc_origin, _identity(inc_lines))
    if identity in ctx.stack:
        chain = " -> ".join([name for name, _ in ctx.stack] + [inc_origin])
        report.skip(origin, item.lineno, f"cannot include {target}: include cycle {chain}")
        return
    ctx.stack.append(identity)
    try:
        _parse_file(inc_lines, inc_origin, item.category, ctx)
    finally:
        ctx.stack.pop()


def _base_name(origin: str) -> str:
    return origin.replace("\\", "/").rsplit("/", 1)[-1].lower()


def _category_name(line: str) -> str:
    rest = line.split(":", 1)[1].strip()
    if rest.startswith('"'):
        rest = rest[1:]
        end = rest.find('"')
        if end >= 0:
            rest = rest[:end]
    return rest.strip()


def _parse_phrase_line(
    line: str, origin: str, lineno: int, category: str, report: ReportBuilder
) -> _Parsed | None:
    m = _PHRASE_LINE.match(line)
    if m is None:
        report.skip(origin, lineno, "unbalanced < > in phrase line")
        return None
    rest = m.group("rest").strip()
    if rest and not rest.startswith("#"):
        if line.count("<") != line.count(">"):
            report.skip(origin, lineno, "unbalanced < > in phrase line")
        else:
            report.skip(origin, lineno, f"unexpected text after the phrase: {rest[:40]!r}")
        return None
    parts = tuple(p.lower() for p in _PART.findall(m.group("parts")))
    if len(parts) > MAX_PARTS:
        report.skip(origin, lineno, f"combination of more than {MAX_PARTS} parts")
        return None
    for part in parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_PART:
            report.skip(origin, lineno, f"phrase longer than {MAX_PART} bytes")
            return None
        if not phrase_key(part):
            report.skip(origin, lineno, f"empty phrase <{part}> (no letter or digit)")
            return None
    token = m.group("weight")
    weight: int | None = None
    if token is not None:
        token = token.strip()
        if token.endswith("%") and _INTEGER.fullmatch(token[:-1].strip()):
            report.skip(origin, lineno, f"percentage weight <{token}> is not supported")
            return None
        if not _INTEGER.fullmatch(token):
            report.skip(origin, lineno, f"weight <{token}> is not an integer")
            return None
        weight = int(token)
        if weight == 0:
            report.skip(origin, lineno, "weight 0 (e2guardian would treat the phrase as banned)")
            return None
        if abs(weight) > MAX_WEIGHT:
            report.skip(origin, lineno, f"weight {weight} out of range (±{MAX_WEIGHT})")
            return None
    return _Parsed(lineno, parts, weight, category)
