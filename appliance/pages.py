"""The pages the proxy shows in place of a site: the block page, "filtering is unavailable", "this site is
not answering" (instead of mitmproxy's error pages), the thanks after a report, and the pages on
installing the appliance's CA certificate. The dashboard shows the
same block page (to a browser the DNS filter sent to the appliance), and its children's portal is built on
the same skeleton and look (`children/base.html`), so they live beside both rather than in either.

Pure functions from values to one self-contained HTML document each (UTF-8, inline CSS, no scripts, no
external resources), readable on a phone and on a PC, rendered from the Jinja templates in
`appliance/templates/children/` with autoescaping on: every value that does not come from this file or a
template is escaped. Plain Jinja, no Flask: the dashboard adds `template_loader()` to its own loader.
The templates are compiled once (`compile_pages`, or on first use) and kept for the process.

What a child sees is written for a child: calm, plain words, never blaming. The block page says why in
one sentence per blocking reason, names the category and rule in a small line for the member of staff
who helps, and leaks nothing else: not the profile, not other users, not the full URL (it may carry the
child's search; only the host is shown), not what a watch list matched, not the personal information
the child was about to send. The pages also ask browsers not to send them as a referrer, so following
the helpline link does not hand the blocked URL to the helpline's site.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from appliance.config.proxy import Helpline
from filters.errors import ApplianceError
from profiles.categories import Category
from profiles.controls import GRANT_LIFTS, INTERNET, Left
from profiles.verdict import Action, Reason, Step, Verdict

if TYPE_CHECKING:  # jinja2 is imported on the first page: the DNS filter and the CLI import this module
    from jinja2 import BaseLoader, Environment, Template  # for Helpline and never render a page

__all__ = [
    "ASK_NOTE_MAX",
    "ASK_PATH",
    "REPORT_NOTE_FIELD",
    "REPORT_NOTE_MAX",
    "REPORT_TOKEN_FIELD",
    "ReportForm",
    "ask_offered",
    "asked_page",
    "block_page",
    "certificate_page",
    "compile_pages",
    "not_answering_page",
    "own_certificate_page",
    "reported_page",
    "template_loader",
    "unavailable_page",
]

# The report form's fields, for whoever answers its POST (block.html spells them out: no look-up on
# the proxy's block path; the tests hold the two together).
REPORT_TOKEN_FIELD = "token"
REPORT_NOTE_FIELD = "note"  # optional, "What were you trying to do?"
REPORT_NOTE_MAX = 500  # the input's maxlength; the receiver must still cut or refuse longer text
# The block page's "Ask to use this site": posted back on the blocked host, like the report (the proxy,
# or the dashboard for a browser the DNS filter sent to it, answers it); the same fields, a shorter note.
ASK_PATH = "/.well-known/childsafe/ask"
ASK_NOTE_MAX = 200


@dataclass(frozen=True)
class ReportForm:
    """Where the block page's "report a problem" button posts, and the signed token it carries."""

    action: str  # URL the form POSTs to (same host as the blocked page, a path the proxy answers itself)
    token: str  # opaque, goes in a hidden input named "token"


# What the child reads for each kind of blocking reason. Watch lists have no sentence on purpose: the
# child is never told that a watch list matched (block.html's "worrying" line is all it says).
_SENTENCES: Mapping[Step, str] = {
    Step.SCHEDULE: "The centre's internet is closed for this right now. You can try again when it is open.",
    Step.ALWAYS_BLOCKED: (
        "This site is on a list of harmful or unsafe sites, so it is blocked for everyone here."
    ),
    Step.BYPASS_CANARY: (
        "This is a way of getting round the centre's filter, so it is blocked for everyone here."
    ),
    Step.BYPASS_ATTEMPT: (
        "This connection tried to reach a different site from the one it named, or could not say which "
        "site it was for, so the centre's filter closed it."
    ),
    Step.SAFE_SEARCH_UNSUPPORTED: (
        "This search engine cannot be made safe. Use a search engine with safe search instead: "
        "a member of staff can show you one."
    ),
    Step.OVERRIDE: "The centre has chosen to keep this page closed.",
    Step.NOT_ALLOWLISTED: (
        "Your profile only opens sites on the allowed list, and this site is not on it yet."
    ),
    Step.DOWNLOAD: "Files of this kind cannot be downloaded here.",
    Step.PHRASES: "This page has words that are not suitable.",
    Step.PERSONAL_INFO: (
        "You were about to send personal information such as a phone number or address. "
        "Keep it private: it is safer not to share it online."
    ),
}
_FALLBACK = "The centre's filter has closed this page."

# For the "Rule:" line, where a reason names no category.
_RULE_LABELS: Mapping[Step, str] = {
    Step.SCHEDULE: "opening hours",
    Step.ALWAYS_BLOCKED: "blocked for everyone",
    Step.BYPASS_CANARY: "filter-bypass check",
    Step.BYPASS_ATTEMPT: "a way round the filter",
    Step.SAFE_SEARCH_UNSUPPORTED: "safe search",
    Step.OVERRIDE: "the centre's own list",
    Step.NOT_ALLOWLISTED: "allowed list only",
    Step.DOWNLOAD: "downloads",
    Step.PHRASES: "words on the page",
    Step.PERSONAL_INFO: "personal information",
    Step.PAUSED: "paused by staff",
    Step.BUDGET: "time budget",
}

_EXTENSION = re.compile(r"[a-z0-9]{1,10}")


_PAGES = (
    "block.html",
    "unavailable.html",
    "not_answering.html",
    "reported.html",
    "asked.html",
    "certificate.html",
    "own_certificate.html",
    "helpline.html",
)


def template_loader() -> BaseLoader:
    """The loader of the children's templates (`children/...`), for another Jinja environment: the
    dashboard's portal pages extend `children/base.html`."""
    from jinja2 import PackageLoader

    return PackageLoader("appliance", "templates")


def compile_pages() -> None:
    """Compile every page's template now, kept for the process: a service that shows these pages calls
    it at start, so that an install missing them fails there, never on a child's first blocked page."""
    from jinja2 import TemplateError

    try:
        for name in _PAGES:
            _template(name)
    except TemplateError as e:
        raise ApplianceError(
            f"the children's pages cannot be loaded from appliance/templates/children ({e}): "
            "the appliance is not installed whole; reinstall it"
        ) from e


def _dial(phone: str) -> str:
    """What a `tel:` link dials: the digits (and + * #) of a phone number as written."""
    return re.sub(r"[^0-9+*#]", "", phone)


def _is_web_address(url: str) -> bool:
    return url.lower().startswith(("https://", "http://"))


def _without_scheme(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


@cache
def _environment() -> Environment:
    from jinja2 import Environment, StrictUndefined

    environment = Environment(
        loader=template_loader(),
        autoescape=True,
        undefined=StrictUndefined,  # a name a template misspells fails in the tests, never shows empty
        auto_reload=False,  # shipped templates do not change under a running service: no stat per page
    )
    environment.filters["dial"] = _dial
    environment.filters["without_scheme"] = _without_scheme
    environment.tests["web_address"] = _is_web_address
    # No globals: every render copies them into its context, and Jinja's own (range, lipsum, cycler...)
    # are of no use here.
    environment.globals.clear()
    return environment


@cache  # the block page is on the proxy's hot path: each template is compiled once
def _template(name: str) -> Template:
    return _environment().get_template(f"children/{name}")


@lru_cache(maxsize=8)  # one helpline is configured at a time: its box is rendered once, not per page
def _helpline_box(helpline: Helpline | None) -> Markup:
    if helpline is None or not helpline.name:
        return Markup()
    return Markup(_template("helpline.html").render(helpline=helpline))  # autoescaped


def block_page(
    verdict: Verdict,
    categories: Mapping[str, Category],
    host: str,
    *,
    report: ReportForm | None,
    helpline: Helpline | None,
    centre: str = "",
    ask: ReportForm | None = None,
    left: Left | None = None,
) -> str:
    """The page a child sees instead of `host`: why, in plain words, and how to get help.

    `categories` is the policy's categories by name (`CategoryMap.categories`). Only the reasons whose
    effect is `block` are explained; flags ride along unseen, except that a watch-list match or a
    personal-information flag adds a gentle "if something is worrying you" line. `report` None leaves
    out the report form (nowhere to send it), as does a pause (staff chose it); `ask` the "ask to use
    this site" form (give it only where `ask_offered(verdict)`). `left`: what is left of the child's
    budget today, said for the things not used up.
    """
    blocking = [r for r in verdict.reasons if r.effect is Action.BLOCK]
    paused = any(r.step is Step.PAUSED for r in blocking)
    if paused:
        report = None  # nothing to report: staff chose it, and can undo it
    sentences = _unique(_sentence(r, categories) for r in blocking if r.step is not Step.WATCH_LIST)
    if not sentences:
        sentences = [Markup(_FALLBACK)]  # this file's own text
    rules = _unique(_rule_line(r, categories) for r in blocking if r.step is not Step.WATCH_LIST)
    worried = any(
        r.step is Step.WATCH_LIST or (r.step is Step.PERSONAL_INFO and r.effect is not Action.BLOCK)
        for r in verdict.reasons
    )
    return _template("block.html").render(
        {
            "host": host,
            "sentences": sentences,
            "rules": rules,
            "worried": worried,
            "report": report,
            "ask": ask,
            "helpline": helpline,
            "helpline_box": _helpline_box(helpline),
            "centre": centre,
            "paused": paused,
            "left": _left_lines(left, categories) if left is not None else [],
        }
    )


def ask_offered(verdict: Verdict) -> bool:
    """Whether the block page may offer "ask to use this site": every blocking reason is one a staff
    grant lifts (a blocked category, allowlist-only, a category's time used up)."""
    blocking = [r for r in verdict.reasons if r.effect is Action.BLOCK and r.step is not Step.WATCH_LIST]
    return bool(blocking) and all(
        r.step in GRANT_LIFTS and (r.step is not Step.BUDGET or bool(r.rule)) for r in blocking
    )


def asked_page(*, helpline: Helpline | None, centre: str = "") -> str:
    """The thanks after the block page's "ask to use this site"."""
    return _template("asked.html").render(helpline_box=_helpline_box(helpline), centre=centre)


def _left_lines(left: Left, categories: Mapping[str, Category]) -> list[str]:
    """What is left of a child's budget today, one line a thing not used up ("Games: 12 minutes")."""
    lines = []
    if left.internet is not None and INTERNET not in left.spent:
        lines.append(f"The internet: {_minutes(left.internet)}")
    for name, minutes in sorted(left.categories.items()):
        if name not in left.spent:
            category = categories.get(name)
            lines.append(f"{category.title if category is not None else name}: {_minutes(minutes)}")
    return lines


def _minutes(n: int) -> str:
    return "1 minute" if n == 1 else f"{n} minutes"


def unavailable_page(*, helpline: Helpline | None, centre: str = "") -> str:
    """The page shown when the filter could not decide (it fails closed): calm, no technical detail."""
    return _template("unavailable.html").render(helpline_box=_helpline_box(helpline), centre=centre)


def not_answering_page(*, host: str = "", helpline: Helpline | None, centre: str = "") -> str:
    """The page shown in place of mitmproxy's error pages when the site itself fails (unreachable,
    refused, closed, too slow, its TLS failed): not the child's fault, not a block, no technical detail."""
    return _template("not_answering.html").render(
        host=host, helpline_box=_helpline_box(helpline), centre=centre
    )


def reported_page(*, helpline: Helpline | None, centre: str = "") -> str:
    """The thanks after the block page's report button."""
    return _template("reported.html").render(helpline_box=_helpline_box(helpline), centre=centre)


def certificate_page(*, centre: str, fingerprint_sha256: str, pem_url: str, der_url: str) -> str:
    """For staff: how to make centre-owned devices trust this appliance's CA certificate, and undo it."""
    return _template("certificate.html").render(
        centre=centre, fingerprint=_format_fingerprint(fingerprint_sha256), pem=pem_url, der=der_url
    )


def own_certificate_page(*, centre: str, fingerprint_sha256: str, pem_url: str, der_url: str) -> str:
    """For children and guests: what the centre's certificate does on their own device (the block page on
    blocked secure sites, proxy/trust.py) in plain words, and short steps per platform to add and remove
    it."""
    return _template("own_certificate.html").render(
        centre=centre, fingerprint=_format_fingerprint(fingerprint_sha256), pem=pem_url, der=der_url
    )


def _sentence(reason: Reason, categories: Mapping[str, Category]) -> Markup:
    """The plain sentence for one blocking reason, as HTML."""
    if reason.step is Step.CATEGORY:
        title = _title(reason, categories)
        if title:
            return _category_sentence(title)
    if reason.step is Step.PAUSED:
        until = reason.detail.partition(" until ")[2]  # decide's "paused by staff until HH:MM"
        text = "Staff have paused the internet on this device"
        return Markup(escape(f"{text} until {until}." if until else f"{text} for now."))
    if reason.step is Step.BUDGET:
        name = reason.category or reason.rule
        if not name:
            return Markup("Your internet time is used up for today. It comes back tomorrow.")
        category = categories.get(name)
        title = category.title if category is not None else name
        return Markup(escape(f"Your time for {title.lower()} is used up for today. It comes back tomorrow."))
    return Markup(_SENTENCES.get(reason.step, _FALLBACK))  # this file's own text


@lru_cache(maxsize=256)  # a policy has a few dozen categories: each sentence is made once
def _category_sentence(title: str) -> Markup:
    return Markup(f"It is in the group of sites called <strong>{escape(title)}</strong>.")


def _rule_line(reason: Reason, categories: Mapping[str, Category]) -> str:
    """The small "Rule:" line for staff: category title and name, and the list's source:line (text).

    Never the matched text: a personal-information finding (masked or not), a phrase, a search.
    """
    title = _title(reason, categories)
    if title and reason.category and title != reason.category:
        label = f"{title} ({reason.category})"
    elif title:
        label = title
    else:
        label = _RULE_LABELS.get(reason.step, str(reason.step))
        if reason.step is Step.DOWNLOAD and _EXTENSION.fullmatch(reason.rule):
            label += f" (.{reason.rule} files)"
    if reason.step is Step.PERSONAL_INFO:
        return label
    if reason.source and reason.line:
        return f"{label}, {reason.source}:{reason.line}"
    if reason.source:
        return f"{label}, {reason.source}"
    return label


def _title(reason: Reason, categories: Mapping[str, Category]) -> str:
    if not reason.category:
        return ""
    category = categories.get(reason.category)
    return category.title if category is not None else reason.category


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _format_fingerprint(text: str) -> str:
    """`AB:CD:...` for 64 hex digits however separated; anything else as given."""
    digits = re.sub(r"[\s:]", "", text)
    if re.fullmatch(r"[0-9A-Fa-f]{64}", digits):
        upper = digits.upper()
        return ":".join(upper[i : i + 2] for i in range(0, 64, 2))
    return text
