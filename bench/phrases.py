"""Benchmark: e2guardian weighted phrases (every ukenglish `weighted*` list) over a ~100 KB HTML page.

Measures building, loading (`from_bytes`) and scoring with `filters.phrase_index`, and, in the same
run on the same lists and page, the peers: a pyahocorasick automaton counting every occurrence (if
installed), google-re2 and Python `re` alternations over the lower-cased page (`re` takes seconds, so
it runs only a few times). Contenders take turns, so machine noise hits them alike.

The page is generated deterministically: markup, navigation, styles, scripts, a JSON blob, and
prose (Zipf-sampled common English words with a long tail of made-up ones) with six listed phrases
sprinkled in. `page_p50_ms` scores that one page again and again (RE2 has built the automaton states
it needs); `fresh_page_p50_ms` scores twenty other pages once each, as a proxy sees pages.

Run from the repository root: `.venv/bin/python bench/phrases.py`. The last line is one JSON object.
"""

from __future__ import annotations

import functools
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from filters.phrase_index import PhraseIndex
    from filters.phrases import Phrase

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
LISTS = DATA / "phrases" / "e2guardian" / "ukenglish"
PAGE_BYTES = 100_000
RUNS = 1000
RE_RUNS = 3  # Python `re` takes about a second per page
FRESH_PAGES = 20
SEED = 20240611


def _words(text: str) -> list[str]:
    return text.split()


# The most frequent English words, most frequent first, then ordinary content words. Sampled with Zipf
# weights, plus a long tail of made-up words, they read to an automaton like real prose: half the
# tokens are function words, and content words rarely repeat (a small vocabulary would repeat every
# listed word on the page dozens of times, which real pages do not).
_FUNCTION = _words(
    """
the of and to a in is that for it as was with be by on not he i this are or his from at which but have an
they you were her she there been one all we their has would when if so no what up more out about into than
them can only other new some could these two may then do first any my now such like our over me even most
made after also did many before must through back where much your way well down should because each just
those how too very still own see here between both being never same another while last might us great old
off come since go came right used take three himself few use during without again around however once upon
every does away something though less put almost enough far yet nothing why going look later next let
given several rather often early become within along ever least others done although perhaps itself
whether either
"""
)
_CONTENT = _words(
    """
time year people day man way thing world life hand part child eye woman place work week case point number
group problem fact house area money story month lot right study book job word business issue side kind
head service friend father power hour game line end member law car city community name president team
minute idea kid body information back parent face others level office door health person art war history
party result change morning reason research girl guy moment air teacher force education foot boy age
policy process music market sense nation plan college interest death experience effect class control care
field development role effort rate heart drug show leader light voice wife police mind price report
decision son view relationship town road arm difference value building action model season society tax
director position player record paper space ground form event official matter center couple site project
activity star table need court oil situation cost industry figure street image phone data picture practice
piece land product doctor wall patient worker news test movie north love support technology step baby
computer type attention film tree source organization hair window evidence population truth garden river
library council museum festival recipe bicycle harbour mountain village station weekend volunteer concert
bakery footpath allotment theatre gallery railway timetable newsletter committee charity donation meeting
evening afternoon summer winter spring autumn bridge weather traffic school church hospital shop farm
field coast beach island valley castle market square
"""
)
_SYLLABLES = _words(
    """
ba be bi bo bu ca co de di do fa fe ga go ha he ka la le li lo lu ma me mi mo na ne no pa pe po ra re ri
ro sa se so ta te ti to va ve wa we
"""
)
_ENDINGS = [
    "",
    "",
    "n",
    "r",
    "s",
    "t",
    "l",
    "ck",
    "nd",
    "st",
    "ng",
    "rd",
    "th",
    "ton",
    "ley",
    "ford",
    "ment",
    "ness",
    "ing",
    "ed",
]

_PLACES = _words(
    """
Ashford Bramley Castleton Dunmore Eastleigh Fenwick Glenrock Harrowby Ilkley Kingsbridge
"""
)
_TOPICS = _words(
    """
News Sport Weather Culture Travel Food Health Science Business Local Opinion Events
"""
)


def main() -> int:
    if not LISTS.is_dir():
        reason = f"{LISTS} not found: the e2guardian phrase lists are not available"
        print(reason)
        print(json.dumps({"skipped": reason}))
        return 0
    sys.path.insert(0, str(ROOT))
    from filters.phrase_index import PhraseIndex
    from filters.phrases import parse_phrase_list
    from filters.report import ReportBuilder
    from filters.text import decode_list

    phrases: list[Phrase] = []
    skipped = 0
    files = sorted(LISTS.glob("*/weighted*"))
    for path in files:
        report = ReportBuilder(str(path))
        lines = decode_list(path.name, path.read_bytes())
        origin = f"{path.parent.name}/{path.name}"
        phrases += parse_phrase_list(lines, origin, report, category=path.parent.name)
        skipped += report.skipped

    started = time.perf_counter()
    index = PhraseIndex.build(phrases)
    build_s = time.perf_counter() - started
    blob = index.to_bytes()
    started = time.perf_counter()
    loaded = PhraseIndex.from_bytes(blob)
    load_s = time.perf_counter() - started

    page = make_page(phrases, index, SEED).encode()
    # The same page made without the everyday content words (many of which are listed goodphrases or
    # combination parts): what the automaton pass alone costs, with little to count.
    sparse = make_page(phrases, index, SEED, content=False).encode()
    started = time.perf_counter()
    first = loaded.score(page)  # decodes the tables and compiles the automaton
    first_ms = (time.perf_counter() - started) * 1e3

    parts = sorted({p for phrase in phrases for p in phrase.parts})
    contenders: dict[str, Callable[[], object]] = {
        "ours": lambda: loaded.score(page),
        "ours_singular": lambda: loaded.score(page, mode="singular"),
        "ours_sparse": lambda: loaded.score(sparse),
    }
    aho = _ahocorasick(parts)
    if aho is not None:
        contenders["ahocorasick"] = lambda: aho(page)
    re2_count = _re2_alternation(parts)
    contenders["re2"] = lambda: re2_count(page)
    timings = _interleaved(contenders, RUNS)
    re_count = _re_alternation(parts)
    re_times = [_timed(lambda: re_count(page)) for _ in range(RE_RUNS)]
    # Pages the automaton has not seen yet: RE2 builds its states lazily, so these cost more.
    fresh = [make_page(phrases, index, SEED + 1 + i).encode() for i in range(FRESH_PAGES)]
    fresh_times = [_timed(functools.partial(loaded.score, p)) for p in fresh]

    ours_ms = sorted(t * 1e3 for t in timings["ours"])
    result: dict[str, Any] = {
        "phrases": len(phrases),
        "index_entries": len(loaded),
        "lists": len(files),
        "skipped_lines": skipped,
        "page_kb": round(len(page) / 1000, 1),
        "page_p50_ms": round(statistics.median(ours_ms), 3),
        "page_p99_ms": round(ours_ms[int(len(ours_ms) * 0.99) - 1], 3),
        "page_min_ms": round(ours_ms[0], 3),
        "page_singular_p50_ms": _p50_ms(timings["ours_singular"]),
        "sparse_page_p50_ms": _p50_ms(timings["ours_sparse"]),
        "sparse_page_occurrences": sum(h.count for h in loaded.score(sparse).hits),
        "fresh_page_p50_ms": _p50_ms(fresh_times),
        "runs": RUNS,
        "build_s": round(build_s, 3),
        "load_s": round(load_s, 6),
        "first_score_ms": round(first_ms, 1),
        "index_bytes": len(blob),
        "page_total": first.total,
        "page_hits": len(first.hits),
        "page_occurrences": sum(h.count for h in first.hits),
        "ahocorasick_p50_ms": _p50_ms(timings.get("ahocorasick")),
        "re2_alternation_p50_ms": _p50_ms(timings["re2"]),
        "re_alternation_p50_ms": _p50_ms(re_times),
        "re_alternation_runs": RE_RUNS,
    }
    print(f"{len(phrases)} phrases from {len(files)} lists ({skipped} lines skipped), page {len(page)} bytes")
    print(f"page total {first.total}: " + ", ".join(f"{h.phrase} x{h.count}" for h in first.hits[:10]))
    print(json.dumps(result))
    return 0


def make_page(phrases: Sequence[Phrase], index: PhraseIndex, seed: int, *, content: bool = True) -> str:
    """A deterministic ~100 KB news-style page with six listed phrases in its prose.

    The made-up words of the long tail are kept only if they score nothing (no "fukaduck").
    """
    rng = random.Random(seed)
    tail = sorted(
        {"".join(rng.choices(_SYLLABLES, k=rng.randint(1, 3))) + rng.choice(_ENDINGS) for _ in range(4000)}
    )
    tail = [word for word in tail if index.score(word).total <= 0]
    vocabulary = _FUNCTION + (_CONTENT if content else []) + tail
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    plain = sorted({p.parts[0].strip() for p in phrases if len(p.parts) == 1 and p.weight > 0})
    good = sorted({p.parts[0].strip() for p in phrases if len(p.parts) == 1 and p.weight < 0})
    sprinkle = rng.sample(plain, 4) + rng.sample(good, 2)

    def sentence() -> str:
        words = rng.choices(vocabulary, weights, k=rng.randint(7, 24))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(_PLACES))
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(2, 2024)))
        if len(words) > 10 and rng.random() < 0.5:
            words[rng.randrange(3, len(words) - 2)] += ","
        return " ".join(words).capitalize() + rng.choice(".....?!")

    head = [
        "<!DOCTYPE html>",
        '<html lang="en-GB">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Ashford Community News - Local stories, events and weather</title>",
        '<meta name="description" content="News, events and weather for Ashford and its villages.">',
        '<link rel="stylesheet" href="/static/css/site.min.css?v=4.2.1">',
        '<link rel="icon" href="/favicon.ico">',
        "<style>",
    ]
    for i in range(90):
        head.append(
            f".card-{i} {{ margin: {i % 7}px {i % 5}px; padding: 0 {i % 9}px;"
            f" color: #{(i * 7919) % 0xFFFFFF:06x}; font-size: {12 + i % 6}px; }}"
        )
    head.append("@media (max-width: 640px) { .nav li { display: block; } .sidebar { display: none; } }")
    head += ["</style>", "<script>", "window.dataLayer = window.dataLayer || [];"]
    for i in range(45):
        head.append(
            f"function track{i}(event) {{ var el = document.getElementById('item-{i}'); "
            f"if (el && event.target.value.length > {i}) {{ el.classList.add('active'); "
            f"dataLayer.push({{'event': 'click', 'id': {i}}}); }} }}"
        )
    state = {
        "articles": [
            {"id": i, "slug": f"story-{i}", "title": sentence()[:-1], "section": rng.choice(_TOPICS)}
            for i in range(40)
        ]
    }
    head += [
        "</script>",
        f'<script id="state" type="application/json">{json.dumps(state)}</script>',
        "</head>",
        '<body class="home">',
    ]
    nav = ['<header><nav class="nav"><ul>']
    for topic in _TOPICS:
        nav.append(f'<li><a href="/{topic.lower()}/" title="{topic} from Ashford">{topic}</a></li>')
    nav.append("</ul></nav></header>")
    side = ['<aside class="sidebar"><h3>Most read</h3><ol>']
    for i in range(15):
        side.append(f'<li><a href="/news/story-{i}.html">{sentence()[:-1]}</a></li>')
    side.append("</ol></aside>")
    out = head + nav + side + ['<main id="content">']
    size = sum(len(x) + 1 for x in out) + 400
    k = 0
    while size < PAGE_BYTES:
        if k % 4 == 0:
            link = f'<a href="/news/story-{k}.html">{sentence()[:-1]}</a>'
            block = f'<article class="card-{k % 90}"><h2>{link}</h2>'
        else:
            block = ""
        body = [sentence() for _ in range(rng.randint(3, 7))]
        if sprinkle and k % 7 == 3:
            body.insert(rng.randrange(len(body)), f"Some say it was {sprinkle.pop()} after all.")
        block += f"<p>{' '.join(body)}</p>"
        if k % 4 == 3:
            block += (
                f'<p class="meta">Posted in <a href="/{rng.choice(_TOPICS).lower()}/">local</a></p></article>'
            )
        out.append(block)
        size += len(block) + 1
        k += 1
    out += [
        "</main>",
        '<footer><p>&copy; 2024 Ashford Community News. <a href="/privacy">Privacy</a></p></footer>',
        "</body>",
        "</html>",
    ]
    return "\n".join(out)


def _ahocorasick(parts: Sequence[str]) -> Callable[[bytes], dict[str, int]] | None:
    try:
        import ahocorasick
    except ImportError:
        return None
    automaton = ahocorasick.Automaton()
    for part in parts:
        automaton.add_word(part, part)
    automaton.make_automaton()

    def count(page: bytes) -> dict[str, int]:
        found: dict[str, int] = {}
        for _, part in automaton.iter(page.decode("utf-8", "replace").lower()):
            found[part] = found.get(part, 0) + 1
        return found

    return count


def _re2_alternation(parts: Sequence[str]) -> Callable[[bytes], dict[bytes, int]]:
    import re2

    options = re2.Options()
    options.max_mem = 256 << 20
    pattern = re2.compile(
        b"|".join(re.escape(p.encode()) for p in sorted(parts, key=len, reverse=True)), options
    )
    return _counter(pattern.findall)


def _re_alternation(parts: Sequence[str]) -> Callable[[bytes], dict[bytes, int]]:
    pattern = re.compile(b"|".join(re.escape(p.encode()) for p in sorted(parts, key=len, reverse=True)))
    return _counter(pattern.findall)


def _counter(findall: Callable[[bytes], list[bytes]]) -> Callable[[bytes], dict[bytes, int]]:
    """Occurrences per phrase of a lower-cased page, by an alternation's `findall`."""

    def count(page: bytes) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        for m in findall(page.lower()):
            found[m] = found.get(m, 0) + 1
        return found

    return count


def _interleaved(runs: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    """Time each contender `n` times, taking turns, so that machine noise hits all of them alike."""
    for fn in runs.values():
        for _ in range(20):
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(n):
        for name, fn in runs.items():
            times[name].append(_timed(fn))
    return times


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _p50_ms(times: list[float] | None) -> float | None:
    return None if not times else round(statistics.median(times) * 1e3, 3)


if __name__ == "__main__":
    sys.exit(main())
