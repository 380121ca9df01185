"""What a child typed into a search engine, read from the request URL."""

from __future__ import annotations

import pytest

from profiles.search_terms import SearchQuery, extract_search, is_search_host


@pytest.mark.parametrize(
    ("url", "engine", "terms"),
    [
        # Google: any country site, with or without www., images.google.*, and the suggestion endpoint
        ("https://www.google.com/search?q=cats", "google", "cats"),
        ("https://google.com/search?q=cats", "google", "cats"),
        ("https://www.google.co.uk/search?q=cats&hl=en", "google", "cats"),
        ("https://www.google.com.au/search?q=cats", "google", "cats"),
        ("https://www.google.de/search?q=katzen", "google", "katzen"),
        ("https://www.google.fr/webhp?q=chats", "google", "chats"),
        ("https://www.google.com/complete/search?q=how+to+dr&client=gws-wiz", "google", "how to dr"),
        ("https://www.google.com/images?q=cats", "google", "cats"),
        ("https://images.google.com/search?q=cats&tbm=isch", "google", "cats"),
        ("https://suggestqueries.google.com/complete/search?client=firefox&q=cats", "google", "cats"),
        # Bing
        ("https://www.bing.com/search?q=cats&form=QBLH", "bing", "cats"),
        ("https://www.bing.com/images/search?q=cats", "bing", "cats"),
        ("https://www.bing.com/videos/search?q=cats", "bing", "cats"),
        ("https://www.bing.com/AS/Suggestions?pt=page.home&qry=x&q=cat&cvid=1", "bing", "cat"),
        # DuckDuckGo
        ("https://duckduckgo.com/?q=cats&ia=web", "duckduckgo", "cats"),
        ("https://duckduckgo.com/html/?q=cats", "duckduckgo", "cats"),
        ("https://html.duckduckgo.com/html/?q=cats", "duckduckgo", "cats"),
        ("https://lite.duckduckgo.com/lite/?q=cats", "duckduckgo", "cats"),
        ("https://duckduckgo.com/ac/?q=cat&kl=wt-wt", "duckduckgo", "cat"),
        # YouTube, and its suggestion endpoints (Google's own is YouTube's when ds=yt)
        ("https://www.youtube.com/results?search_query=minecraft+songs", "youtube", "minecraft songs"),
        ("https://m.youtube.com/results?search_query=minecraft", "youtube", "minecraft"),
        (
            "https://suggestqueries-clients6.youtube.com/complete/search?client=youtube&q=mine",
            "youtube",
            "mine",
        ),
        ("https://suggestqueries.google.com/complete/search?client=youtube&ds=yt&q=mine", "youtube", "mine"),
        # Yahoo, with country sites and the ;_ylt= path parameters it adds
        ("https://search.yahoo.com/search?p=cats&fr=yfp", "yahoo", "cats"),
        ("https://uk.search.yahoo.com/search?p=cats", "yahoo", "cats"),
        ("https://search.yahoo.com/search;_ylt=AwrE.x;_ylu=Y29sbwM-?p=cats", "yahoo", "cats"),
        # the rest
        ("https://www.ecosia.org/search?method=index&q=trees", "ecosia", "trees"),
        ("https://www.ecosia.org/images?q=trees", "ecosia", "trees"),
        ("https://yandex.ru/search/?text=koshki&lr=213", "yandex", "koshki"),
        ("https://yandex.com.tr/search/?text=kedi", "yandex", "kedi"),
        ("https://ya.ru/search/?text=koshki", "yandex", "koshki"),
        ("https://www.baidu.com/s?ie=utf-8&wd=%E7%8C%AB", "baidu", "猫"),
        ("https://www.qwant.com/?q=cats&t=web", "qwant", "cats"),
        ("https://www.startpage.com/do/search?query=cats", "startpage", "cats"),
        ("https://www.startpage.com/sp/search?q=cats", "startpage", "cats"),
        ("https://search.brave.com/search?q=cats&source=web", "brave", "cats"),
        ("https://en.wikipedia.org/w/index.php?search=cats&title=Special%3ASearch", "wikipedia", "cats"),
        ("https://fr.wikipedia.org/wiki/Special:Search?search=chats", "wikipedia", "chats"),
        ("https://en.m.wikipedia.org/w/index.php?search=cats", "wikipedia", "cats"),
        ("https://www.ask.com/web?q=cats&qo=homepageSearchBox", "ask", "cats"),
        ("https://search.aol.com/aol/search?q=cats", "aol", "cats"),
    ],
)
def test_every_engine_yields_its_terms(url: str, engine: str, terms: str) -> None:
    assert extract_search(url) == SearchQuery(engine, terms)


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("q=%C3%A9cole+primaire", "école primaire"),
        ("q=caf%C3%A9", "café"),
        ("q=%F0%9F%90%B1+videos", "🐱 videos"),  # emoji: a four-byte sequence
        ("q=cute%20cats", "cute cats"),  # %20 and + are both spaces
        ("q=c%2B%2B+tutorial", "c++ tutorial"),  # an encoded plus stays a plus
        ("q=100%25+real", "100% real"),
        ("q=50%+off", "50% off"),  # a lone % is kept
        ("q=%E7%8C%AB", "猫"),
        ("q=%ff%fe+x", "\ufffd\ufffd x"),  # bytes that are not UTF-8 become U+FFFD
        ("q=%c3%a9", "é"),  # lower-case hex
        ("q=école", "école"),  # already decoded by the client
        ("q=++lots+++of+++space++", "lots of space"),
        ("q=tab%09and%0Anewline", "tab and newline"),
        ("q=nul%00byte", "nul byte"),  # control characters count as whitespace
    ],
)
def test_terms_are_decoded_and_whitespace_collapsed(query: str, terms: str) -> None:
    assert extract_search(f"https://www.google.com/search?{query}") == SearchQuery("google", terms)


@pytest.mark.parametrize(
    ("url", "terms"),
    [
        ("https://www.google.com/search?q=first&q=second", "first"),
        ("https://www.google.com/search?q=&q=second", "second"),  # the first non-empty
        ("https://www.google.com/search?q=+&q=%20&q=third", "third"),  # blank counts as empty
        ("https://www.google.com/search?hl=en&q=cats#q=dogs", "cats"),  # the fragment is never read
        ("https://www.google.com/search?q=cats&oq=cat&aqs=chrome", "cats"),  # only q
        ("https://www.startpage.com/do/search?q=second&query=first", "first"),  # query before q
        ("https://www.baidu.com/s?word=second&wd=first", "first"),
    ],
)
def test_which_value_is_taken(url: str, terms: str) -> None:
    query = extract_search(url)
    assert query is not None
    assert query.terms == terms


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://WWW.GOOGLE.COM/search?q=cats",  # upper-case host (and scheme)
        "https://www.Google.co.UK/search?q=cats",
        "https://www.google.com./search?q=cats",  # trailing dot
        "https://www.google.com:443/search?q=cats",  # port
        "https://www.google.com.:8443/search?q=cats",
        "http://user@www.google.com/search?q=cats",  # user info
        "www.google.com/search?q=cats",  # scheme-less, as proxies sometimes log
        "https://www.google.com/search/?q=cats",  # trailing slash on the path
        "https://www.google.com/SEARCH?q=cats",  # paths match case-insensitively
    ],
)
def test_host_and_path_spellings(url: str) -> None:
    assert extract_search(url) == SearchQuery("google", "cats")


@pytest.mark.parametrize(
    "url",
    [
        # search hosts, but not a search
        "https://www.google.com/",
        "https://www.google.com/?q=cats",  # the home page does not search
        "https://www.google.com/search",
        "https://www.google.com/search?hl=en",
        "https://www.google.com/search?q=",
        "https://www.google.com/search?q=+++",
        "https://www.google.com/search#q=cats",  # only in the fragment
        "https://www.google.com/webhp?hl=en#q=cats",
        "https://www.google.com/search#frag?q=cats",  # the "?" is inside the fragment
        "https://www.google.com/maps?q=london",  # decided: a place look-up, not a web search
        "https://www.google.com/url?q=https://example.com/",  # a redirect's target
        "https://mail.google.com/mail/u/0/?q=cats",
        "https://maps.google.com/?q=london",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://www.youtube.com/results?q=cats",  # YouTube's parameter is search_query
        "https://www.bing.com/maps?q=london",
        "https://search.yahoo.com/search?q=cats",  # Yahoo's parameter is p
        "https://en.wikipedia.org/wiki/Cat?search=cats",
        "https://en.wikipedia.org/w/index.php?title=Cat&action=edit",
        "https://yandex.ru/maps/?text=moscow",
        # other hosts with a search-like parameter
        "https://example.com/search?q=cats",
        "https://shop.example/search?q=cats&p=2",
        "https://google.com.evil.example/search?q=cats",
        "https://notgoogle.com/search?q=cats",
        "https://www.google.evil/search?q=cats",
        "https://googleapis.com/search?q=cats",
        "https://www.google.com.attacker.net/search?q=cats",
        "https://www.bing.com.example/search?q=cats",
        "https://wikipedia.org/w/index.php?search=cats",  # the bare domain serves no wiki
        "https://cdn.example/search?q=cats&u=https://www.google.com/search?q=dogs",
        # no query at all
        "https://www.google.com/search/cats",
        "",
        "not a url",
    ],
)
def test_not_a_search(url: str) -> None:
    assert extract_search(url) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.google.com", True),
        ("WWW.GOOGLE.CO.UK.", True),
        ("de.wikipedia.org", True),
        ("fr.search.yahoo.com", True),
        ("yandex.ru", True),
        ("mail.google.com", False),
        ("example.com", False),
        ("google.com.evil.example", False),
    ],
)
def test_is_search_host(host: str, expected: bool) -> None:
    assert is_search_host(host) is expected


def test_everyday_urls_with_queries_are_not_searches() -> None:
    urls = [
        "https://cdn.jsdelivr.net/npm/bootstrap@5.3.0/dist/css/bootstrap.min.css?v=123",
        "https://fonts.googleapis.com/css2?family=Roboto:wght@400;700&display=swap",
        "https://mail.google.com/mail/u/0/?tab=rm",
    ]
    assert [extract_search(url) for url in urls] == [None, None, None]
