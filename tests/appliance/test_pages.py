"""The pages the proxy shows: the block page a child reads, "filtering unavailable", the thanks after a
report, and the staff page on installing the CA certificate. What each must say, and what it must never
show."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest

from appliance import pages
from appliance.config.proxy import Helpline
from appliance.pages import (
    REPORT_NOTE_FIELD,
    REPORT_NOTE_MAX,
    REPORT_TOKEN_FIELD,
    ReportForm,
    block_page,
    certificate_page,
    compile_pages,
    not_answering_page,
    own_certificate_page,
    reported_page,
    unavailable_page,
)
from filters.errors import ApplianceError
from profiles.categories import Area, Category, Kind, Risk, Severity
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

CATEGORIES = {
    "adult": Category(
        "adult", "Pornography and sexual content", Kind.RISK, Area.CONTENT, Risk.SEXUAL, Severity.HIGH
    ),
    "games": Category("games", "Games", Kind.RISK, Area.CONTENT, Risk.COMMERCIAL, Severity.LOW),
    "malware": Category(
        "malware", "Malware", Kind.RISK, Area.CONDUCT, Risk.COMMERCIAL, Severity.CRITICAL, always_blocked=True
    ),
    "self-harm": Category(
        "self-harm", "Self-harm and suicide", Kind.RISK, Area.CONTACT, Risk.VALUES, Severity.CRITICAL
    ),
    "personal-info": Category(
        "personal-info",
        "Sharing personal information",
        Kind.RISK,
        Area.CONTACT,
        Risk.COMMERCIAL,
        Severity.HIGH,
    ),
}
CHILDLINE = Helpline(
    "Childline", "0800 1111", "https://www.childline.org.uk/", "Free, private and confidential, any time."
)
REPORT = ReportForm("/__appliance/report", "signed.token-value_123")
PROFILE = "under-10-secret-profile"
SmallPage = Callable[..., str]

ADULT = Reason(
    Step.CATEGORY,
    Action.BLOCK,
    "domain listed under Pornography and sexual content",
    "adult",
    "content / sexual",
    Severity.HIGH,
    "demo-adult",
    12,
    "adult.example",
)
WATCHED = Reason(
    Step.WATCH_LIST,
    Action.FLAG,
    "searched on google for words on the 'self-harm' watch list",
    "self-harm",
    "contact / values",
    Severity.CRITICAL,
    rule="hurt myself",
)
PERSONAL = Reason(
    Step.PERSONAL_INFO,
    Action.FLAG,
    "sending personal information (phone)",
    "personal-info",
    "contact / commercial",
    Severity.HIGH,
    rule="07*** ***789",
)


def blocked(*reasons: Reason) -> Verdict:
    return Verdict(Action.BLOCK, PROFILE, reasons, max(r.severity for r in reasons), log=LogDetail.EVENT)


def page_for(*reasons: Reason, helpline: Helpline | None = CHILDLINE, host: str = "adult.example") -> str:
    return block_page(
        blocked(*reasons), CATEGORIES, host, report=REPORT, helpline=helpline, centre="Elm Street"
    )


class Structure(HTMLParser):
    """Checks a document is well formed: every element closed, in order; records tags and attributes."""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.errors: list[str] = []
        self.decl = ""
        self.text: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.decl = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            self.errors.append(f"end tag for void element <{tag}>")
        elif not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(page: str) -> Structure:
    """The page parsed, after checking it is a whole, well-formed, self-contained HTML document."""
    doc = Structure()
    doc.feed(page)
    doc.close()
    assert doc.errors == []
    assert doc.open == []
    assert doc.decl.lower() == "doctype html"
    assert [t for t, _ in doc.tags].count("html") == 1
    assert doc.find("html")[0].get("lang") == "en"
    assert {"charset": "utf-8"} in doc.find("meta")
    assert any(m.get("name") == "viewport" for m in doc.find("meta"))
    assert len(doc.find("title")) == 1
    # Self-contained: no scripts, no external stylesheets, images or frames.
    for tag in ("script", "link", "img", "iframe", "object", "embed"):
        assert doc.find(tag) == [], tag
    assert "@import" not in page and "url(" not in page
    return doc


def text_of(page: str) -> str:
    """What a reader sees, spaces squeezed."""
    return " ".join("".join(parse(page).text).split())


# The block page


def test_a_category_block_is_well_formed_and_names_the_host_category_and_rule() -> None:
    page = page_for(ADULT)
    text = text_of(page)
    assert "This page is blocked" in text
    assert "adult.example" in text
    assert "You have not done anything wrong" in text
    assert "It is in the group of sites called Pornography and sexual content." in text
    assert "Rule: Pornography and sexual content (adult), demo-adult:12" in text
    assert "Ask a member of staff" in text
    assert "Elm Street" in text
    assert "filtered and monitored" in text


def test_the_block_page_links_the_helpline_by_phone_and_web() -> None:
    doc = parse(page_for(ADULT))
    text = text_of(page_for(ADULT))
    assert "Childline" in text
    assert "Free, private and confidential, any time." in text
    links = {a.get("href"): a for a in doc.find("a")}
    assert "tel:08001111" in links
    assert "0800 1111" in text
    assert links["https://www.childline.org.uk/"].get("rel") == "noreferrer"
    # The blocked URL is the page's own address: it must not travel to the helpline as a referrer.
    assert {"name": "referrer", "content": "no-referrer"} in doc.find("meta")


def test_without_a_helpline_there_is_no_helpline_box() -> None:
    text = text_of(page_for(ADULT, helpline=None))
    assert "Want to talk to someone?" not in text
    assert "Ask a member of staff" in text


def test_a_helpline_address_that_is_not_a_web_address_is_never_a_link() -> None:
    odd = Helpline("Helpline", url="javascript:alert(1)")
    doc = parse(page_for(ADULT, helpline=odd))
    assert all(not (a.get("href") or "").startswith("javascript") for a in doc.find("a"))


def test_the_report_form_posts_the_token_and_an_optional_short_note() -> None:
    doc = parse(page_for(ADULT))
    (form,) = doc.find("form")
    assert form == {"method": "post", "action": "/__appliance/report"}
    inputs = {i.get("name"): i for i in doc.find("input")}
    # The fields the template writes are the ones the proxy's receiver reads.
    assert REPORT_TOKEN_FIELD == "token"
    assert inputs["token"] == {"type": "hidden", "name": "token", "value": "signed.token-value_123"}
    note = inputs[REPORT_NOTE_FIELD]
    assert note.get("type") == "text"
    assert note.get("maxlength") == str(REPORT_NOTE_MAX) == "500"
    assert "required" not in note
    assert any(label.get("for") == note.get("id") for label in doc.find("label"))
    (button,) = doc.find("button")
    assert button.get("type") == "submit"
    text = text_of(page_for(ADULT))
    assert "This page should not be blocked — tell staff" in text
    assert "What were you trying to do?" in text


def test_without_a_report_form_there_is_no_form() -> None:
    page = block_page(blocked(ADULT), CATEGORIES, "adult.example", report=None, helpline=CHILDLINE)
    assert parse(page).find("form") == []


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        (Reason(Step.SCHEDULE, Action.BLOCK, "outside this profile's opening hours"), "is closed for this"),
        (
            Reason(Step.NOT_ALLOWLISTED, Action.BLOCK, "not on this profile's allowlist"),
            "Your profile only opens sites on the allowed list",
        ),
        (
            Reason(
                Step.SAFE_SEARCH_UNSUPPORTED,
                Action.BLOCK,
                "a search engine that cannot be made safe",
                rule="search.yahoo.com",
            ),
            "Use a search engine with safe search",
        ),
        (
            Reason(
                Step.ALWAYS_BLOCKED,
                Action.BLOCK,
                "domain listed under Malware",
                "malware",
                "conduct / commercial",
                Severity.CRITICAL,
                "malware-list",
                3,
                "malware.example",
            ),
            "harmful or unsafe",
        ),
        (
            Reason(Step.DOWNLOAD, Action.BLOCK, "downloads of .exe files are blocked", rule="exe"),
            "Files of this kind cannot be downloaded here",
        ),
        (
            Reason(
                Step.PHRASES,
                Action.BLOCK,
                "a banned phrase of Pornography and sexual content",
                "adult",
                "content / sexual",
                Severity.HIGH,
                "demo-phrases",
                40,
                "some rude phrase",
            ),
            "This page has words that are not suitable",
        ),
        (
            Reason(Step.OVERRIDE, Action.BLOCK, "blocked for this profile", rule="social.example/groups"),
            "The centre has chosen to keep this page closed",
        ),
    ],
    ids=lambda v: v.step.value if isinstance(v, Reason) else "",
)
def test_each_kind_of_block_has_its_own_plain_sentence_and_a_rule_line(reason: Reason, says: str) -> None:
    text = text_of(page_for(reason))
    assert says in text
    assert "Rule: " in text
    assert "You have not done anything wrong" in text


def test_rule_lines_name_list_and_line_but_never_the_matched_text() -> None:
    phrase = Reason(
        Step.PHRASES,
        Action.BLOCK,
        "a banned phrase of Pornography and sexual content",
        "adult",
        "content / sexual",
        Severity.HIGH,
        "demo-phrases",
        40,
        "some rude phrase",
    )
    text = text_of(page_for(phrase))
    assert "Rule: Pornography and sexual content (adult), demo-phrases:40" in text
    assert "some rude phrase" not in text


def test_a_download_rule_names_the_file_type() -> None:
    exe = Reason(Step.DOWNLOAD, Action.BLOCK, "downloads of .exe files are blocked", rule="exe")
    assert "Rule: downloads (.exe files)" in text_of(page_for(exe))


def test_blocked_by_two_categories_gives_a_sentence_and_a_rule_line_for_each() -> None:
    games = Reason(
        Step.CATEGORY,
        Action.BLOCK,
        "domain listed under Games",
        "games",
        "content / commercial",
        Severity.LOW,
        "games-list",
        7,
        "games.example",
    )
    text = text_of(page_for(ADULT, games))
    assert "called Pornography and sexual content." in text
    assert "called Games." in text
    assert "Rule: Games (games), games-list:7" in text


def test_an_unknown_category_is_named_by_its_name() -> None:
    odd = Reason(Step.CATEGORY, Action.BLOCK, "listed", "gambling", source="bets", line=2)
    text = text_of(page_for(odd))
    assert "called gambling." in text
    assert "Rule: gambling, bets:2" in text


def test_flagged_reasons_riding_along_are_never_shown() -> None:
    games_flag = Reason(
        Step.FLAG_CATEGORY,
        Action.FLAG,
        "domain listed under Games",
        "games",
        "content / commercial",
        Severity.LOW,
        "games-list",
        7,
        "games.example",
    )
    text = text_of(page_for(ADULT, games_flag))
    assert "Games" not in text
    assert "games-list" not in text


def test_a_watch_list_match_is_never_revealed_only_a_gentle_line() -> None:
    page = page_for(ADULT, WATCHED)
    text = text_of(page)
    assert "hurt myself" not in page
    assert "watch" not in page.lower()
    assert "Self-harm" not in page
    assert "self-harm" not in page
    gentle = "If something is worrying you, you can talk to a member of staff, or to Childline (0800 1111)."
    assert gentle in text
    assert "Pornography and sexual content" in text


def test_a_blocking_watch_list_match_says_neither_the_words_nor_the_list() -> None:
    weapons = Reason(
        Step.WATCH_LIST,
        Action.BLOCK,
        "searched on google for words on the 'weapons' watch list",
        "adult",
        "content / sexual",
        Severity.HIGH,
        rule="buy a gun",
    )
    page = page_for(weapons, host="www.google.com")
    text = text_of(page)
    assert "buy a gun" not in page
    assert "watch" not in page.lower()
    assert "weapons" not in page
    assert "Pornography" not in page  # the watch list's category says too much about the search
    assert "Rule:" not in text
    assert "The centre's filter has closed this page." in text
    assert "If something is worrying you" in text


def test_the_gentle_line_without_a_helpline_points_to_staff() -> None:
    text = text_of(page_for(ADULT, WATCHED, helpline=None))
    assert "If something is worrying you, you can talk to a member of staff." in text


def test_no_gentle_line_when_nothing_is_of_concern() -> None:
    assert "worrying" not in page_for(ADULT)


def test_personal_information_is_never_echoed() -> None:
    stopped = Reason(
        Step.PERSONAL_INFO,
        Action.BLOCK,
        "sending personal information (phone)",
        "personal-info",
        "contact / commercial",
        Severity.HIGH,
        rule="07*** ***789",
    )
    page = page_for(stopped, host="chat.example")
    text = text_of(page)
    assert "You were about to send personal information such as a phone number or address." in text
    assert "Keep it private" in text
    assert "***" not in page
    assert "789" not in page
    assert "Rule: Sharing personal information" in text


def test_a_personal_information_flag_is_not_shown_beside_another_block() -> None:
    page = page_for(ADULT, PERSONAL)
    assert "***" not in page
    assert "789" not in page
    assert "personal information" not in page.lower()
    assert "If something is worrying you" in text_of(page)


def test_the_page_says_nothing_of_the_profile_or_other_users() -> None:
    page = page_for(ADULT, WATCHED, PERSONAL)
    assert PROFILE not in page
    assert "under-10" not in page
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", page)  # no IP address


def test_only_the_host_is_shown_never_a_url() -> None:
    text = text_of(page_for(ADULT, host="www.google.com"))
    assert "www.google.com" in text
    assert "?" not in text.replace("Want to talk to someone?", "").replace("Is this a mistake?", "").replace(
        "What were you trying to do?", ""
    )


def test_a_verdict_without_blocking_reasons_still_gets_a_kind_page() -> None:
    page = block_page(
        Verdict(Action.BLOCK, PROFILE), CATEGORIES, "example.org", report=REPORT, helpline=CHILDLINE
    )
    text = text_of(page)
    assert "This page is blocked" in text
    assert "The centre's filter has closed this page." in text
    assert "Rule:" not in text


def test_everything_dynamic_on_the_block_page_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    categories = {
        "adult": Category("adult", f"Adult {evil}", Kind.RISK, Area.CONTENT, Risk.SEXUAL, Severity.HIGH)
    }
    reason = Reason(Step.CATEGORY, Action.BLOCK, evil, "adult", source=f'list"{evil}', line=3, rule=evil)
    page = block_page(
        blocked(reason, WATCHED),
        categories,
        f"{evil}.example",
        report=ReportForm(f'/r?a=1&b="{evil}', '"><script>x</script>'),
        helpline=Helpline(f"Line {evil}", f"0800 {evil}", f'https://help.example/"{evil}', evil),
        centre=f"Centre {evil}",
    )
    doc = parse(page)  # a stray <script> would fail here too
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.example" in page
    assert "Adult &lt;script&gt;" in page
    assert "Centre &lt;script&gt;" in page
    (form,) = doc.find("form")
    assert form["action"] == f'/r?a=1&b="{evil}'
    inputs = {i.get("name"): i for i in doc.find("input")}
    assert inputs["token"]["value"] == '"><script>x</script>'
    text = text_of(page)
    assert f"Line {evil}" in text
    assert f'list"{evil}:3' in text


# Filtering unavailable, and the thanks after a report


def test_the_unavailable_page_is_calm_and_says_staff_can_help() -> None:
    page = unavailable_page(helpline=CHILDLINE, centre="Elm Street")
    text = text_of(page)
    assert "This page cannot open just now" in text
    assert "a member of staff can help" in text
    assert "You have not done anything wrong" in text
    assert "Childline" in text
    for technical in ("error", "exception", "traceback", "policy", "scorer", "proxy", "500"):
        assert technical not in text.lower(), technical


def test_the_not_answering_page_names_the_site_and_blames_no_one() -> None:
    text = text_of(not_answering_page(host="wiki.example", helpline=CHILDLINE, centre="Elm Street"))
    assert "This site is not answering" in text
    assert "wiki.example is not answering just now" in text
    assert "You have not done anything wrong" in text
    assert "has not blocked it" in text
    assert "a member of staff can help" in text
    assert "Childline" in text
    for technical in ("error", "502", "gateway", "refused", "tls", "proxy", "mitmproxy"):
        assert technical not in text.lower(), technical


def test_the_not_answering_page_without_a_site_says_this_site() -> None:
    assert "This site is not answering just now" in text_of(not_answering_page(helpline=None))


def test_the_reported_page_thanks_and_says_staff_will_look() -> None:
    text = text_of(reported_page(helpline=CHILDLINE, centre="Elm Street"))
    assert "Thank you" in text
    assert "Staff will look at" in text
    assert "Childline" in text
    assert "Elm Street" in text


@pytest.mark.parametrize("render", [unavailable_page, reported_page, not_answering_page])
def test_the_small_pages_escape_the_centre_and_helpline(render: SmallPage) -> None:
    odd = Helpline("<b>Line</b>", "<i>1</i>", "https://x.example/<u>", "<s>t</s>")
    page = render(helpline=odd, centre="<em>")
    parse(page)
    for raw in ("<b>", "<i>", "<u>", "<s>", "<em>"):
        assert raw not in page


@pytest.mark.parametrize("render", [unavailable_page, reported_page, not_answering_page])
def test_the_small_pages_work_without_a_helpline_or_centre(render: SmallPage) -> None:
    text = text_of(render(helpline=None))
    assert "member of staff" in text
    assert "Want to talk to someone?" not in text


# The certificate page, for staff

FINGERPRINT = "3f" * 8 + "a0" * 8 + "0b" * 8 + "c4" * 8


def certificate() -> str:
    return certificate_page(
        centre="Elm Street",
        fingerprint_sha256=FINGERPRINT,
        pem_url="/ca/appliance-ca.pem",
        der_url="/ca/appliance-ca.cer",
    )


def test_the_certificate_page_shows_the_fingerprint_and_both_downloads() -> None:
    doc = parse(certificate())
    text = text_of(certificate())
    shown = ":".join([*["3F"] * 8, *["A0"] * 8, *["0B"] * 8, *["C4"] * 8])
    assert shown in text
    hrefs = {a.get("href") for a in doc.find("a")}
    assert {"/ca/appliance-ca.pem", "/ca/appliance-ca.cer"} <= hrefs
    assert "Elm Street" in text


def test_a_fingerprint_with_colons_or_spaces_is_shown_the_same_way() -> None:
    spaced = " ".join(FINGERPRINT[i : i + 2] for i in range(0, 64, 2))
    page = certificate_page(centre="", fingerprint_sha256=spaced.upper(), pem_url="/p", der_url="/d")
    assert ":".join(FINGERPRINT.upper()[i : i + 2] for i in range(0, 64, 2)) in page


@pytest.mark.parametrize(
    "step",
    [
        # Windows
        "certlm.msc",
        "certmgr.msc",
        "Trusted Root Certification Authorities",
        "Group Policy",
        "certutil -addstore -f Root",
        # macOS
        "Keychain Access",
        "System keychain",
        "Always Trust",
        # ChromeOS
        "chrome://settings/certificates",
        "Authorities",
        "Google Admin console",
        # Android
        "Settings > Security > Encryption & credentials > Install a certificate > CA certificate",
        "MDM/EMM",
        # Firefox
        "Certificates.ImportEnterpriseRoots",
        "security.enterprise_roots.enabled",
    ],
)
def test_the_certificate_page_gives_the_steps_for_each_platform(step: str) -> None:
    assert step in text_of(certificate())


@pytest.mark.parametrize(
    "warning",
    [
        "Only centre-owned devices.",
        "Never install it for children on their own phones",
        "Check the fingerprint.",
        "Each appliance has its own certificate.",
        "Never copy it from, or to, another centre's appliance.",
        "Removing the certificate",
        "Trusted credentials > User",
    ],
)
def test_the_certificate_page_warns_and_says_how_to_remove_it(warning: str) -> None:
    assert warning in text_of(certificate())


# The certificate page for children's and guests' own devices


def own_certificate() -> str:
    return own_certificate_page(
        centre="Elm Street", fingerprint_sha256=FINGERPRINT, pem_url="/ca.pem", der_url="/ca.der"
    )


def test_the_own_devices_page_says_what_the_certificate_does_in_plain_words() -> None:
    text = text_of(own_certificate())
    assert "See why a site is blocked, on your own phone" in text
    assert "You do not have to." in text
    assert "Ask a parent or carer first" in text
    assert "only for sites that are blocked" in text
    assert "Take it off when you stop coming here" in text
    assert "Never add a certificate that a website or a stranger asks you to." in text
    assert ":".join([*["3F"] * 8, *["A0"] * 8, *["0B"] * 8, *["C4"] * 8]) in text


def test_the_own_devices_page_links_both_downloads() -> None:
    hrefs = {a.get("href") for a in parse(own_certificate()).find("a")}
    assert {"/ca.pem", "/ca.der"} <= hrefs


@pytest.mark.parametrize("platform", ["Android", "iPhone and iPad", "Windows", "Mac", "Chromebook"])
def test_the_own_devices_page_has_steps_to_add_and_take_off_for_each_platform(platform: str) -> None:
    text = text_of(own_certificate())
    adding, removing = text.rsplit("Taking it off again", 1)
    assert platform in adding and f"{platform}:" in removing


def test_the_own_devices_page_escapes_its_values() -> None:
    page = own_certificate_page(centre="<em>", fingerprint_sha256="<b>", pem_url='"><i>', der_url='"><u>')
    parse(page)
    for raw in ("<em>", "<b>", "<i>", "<u>"):
        assert raw not in page


def test_the_certificate_page_escapes_its_values() -> None:
    evil = '"><script>alert(1)</script>'
    page = certificate_page(centre=evil, fingerprint_sha256=evil, pem_url=evil, der_url=evil)
    doc = parse(page)
    assert "<script" not in page
    assert evil in text_of(page)
    assert sum(a.get("href") == evil for a in doc.find("a")) == 2


def test_an_install_missing_a_page_fails_at_start_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy compiles every page when it starts (`compile_pages`): a template missing from the
    install stops it there with a clear error, never on a child's first blocked page."""
    compile_pages()  # the shipped ones are all there
    monkeypatch.setattr(pages, "_PAGES", ("block.html", "lost.html"))
    with pytest.raises(ApplianceError, match=r"lost\.html.*not installed whole"):
        compile_pages()
