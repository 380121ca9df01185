"""The pages the proxy shows in place of a site: the block page, "filtering is unavailable", the thanks
after a report, and the staff page on installing the appliance's CA certificate. The dashboard shows the
same block page (to a browser the DNS filter sent to the appliance) and the same look (CHILD_CSS) on the
children's portal, so they live beside both rather than in either.

Pure functions from values to one self-contained HTML document each (UTF-8, inline CSS, no scripts, no
external resources), readable on a phone and on a PC. Every value that does not come from this file goes
through `html.escape`.

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
from html import escape

from profiles.categories import Category
from profiles.verdict import Action, Reason, Step, Verdict

__all__ = [
    "CHILD_CSS",
    "REPORT_NOTE_FIELD",
    "REPORT_NOTE_MAX",
    "REPORT_TOKEN_FIELD",
    "Helpline",
    "ReportForm",
    "block_page",
    "certificate_page",
    "reported_page",
    "unavailable_page",
]

# The report form's fields, for whoever answers its POST.
REPORT_TOKEN_FIELD = "token"
REPORT_NOTE_FIELD = "note"  # optional, "What were you trying to do?"
REPORT_NOTE_MAX = 500  # the input's maxlength; the receiver must still cut or refuse longer text


@dataclass(frozen=True)
class Helpline:
    """The national helpline the block page links (from the configuration)."""

    name: str  # "Childline"
    phone: str = ""  # "0800 1111"
    url: str = ""  # "https://www.childline.org.uk/"
    text: str = ""  # one short line, e.g. "Free, private and confidential, any time."


@dataclass(frozen=True)
class ReportForm:
    """Where the block page's "report a problem" button posts, and the signed token it carries."""

    action: str  # URL the form POSTs to (same host as the blocked page, a path the proxy answers itself)
    token: str  # opaque, goes in a hidden input named "token"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


# What the child reads for each kind of blocking reason. Watch lists have no sentence on purpose: the
# child is never told that a watch list matched (see `_WORRY`).
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
}

_EXTENSION = re.compile(r"[a-z0-9]{1,10}")


def block_page(
    verdict: Verdict,
    categories: Mapping[str, Category],
    host: str,
    *,
    report: ReportForm | None,
    helpline: Helpline | None,
    centre: str = "",
) -> str:
    """The page a child sees instead of `host`: why, in plain words, and how to get help.

    `categories` is the policy's categories by name (`CategoryMap.categories`). Only the reasons whose
    effect is `block` are explained; flags ride along unseen, except that a watch-list match or a
    personal-information flag adds a gentle "if something is worrying you" line. `report` None leaves
    out the report form (nowhere to send it).
    """
    blocking = [r for r in verdict.reasons if r.effect is Action.BLOCK]
    sentences = _unique(_sentence(r, categories) for r in blocking if r.step is not Step.WATCH_LIST)
    if not sentences:
        sentences = [_FALLBACK]
    rules = _unique(_rule_line(r, categories) for r in blocking if r.step is not Step.WATCH_LIST)
    worried = any(
        r.step is Step.WATCH_LIST or (r.step is Step.PERSONAL_INFO and r.effect is not Action.BLOCK)
        for r in verdict.reasons
    )

    parts = [
        '<section class="card">',
        "<h1>This page is blocked</h1>",
        f'<p class="host">{_e(host)}</p>',
        "<p>You have not done anything wrong. The centre's filter keeps some pages closed, "
        "to keep everyone safe.</p>",
        '<ul class="why">',
        *(f"<li>{sentence}</li>" for sentence in sentences),
        "</ul>",
    ]
    if worried:
        parts.append(f'<p class="worry">{_worry(helpline)}</p>')
    parts += [f'<p class="rule">Rule: {rule}</p>' for rule in rules]
    parts += [
        "</section>",
        '<section class="card">',
        "<h2>Ask a member of staff</h2>",
        "<p>A member of staff can tell you more about this page and help you find what you need.</p>",
        "</section>",
    ]
    if report is not None:
        parts += _report_form(report)
    parts += _helpline_box(helpline)
    return _page("This page is blocked", parts, centre=centre)


def unavailable_page(*, helpline: Helpline | None, centre: str = "") -> str:
    """The page shown when the filter could not decide (it fails closed): calm, no technical detail."""
    parts = [
        '<section class="card">',
        "<h1>This page cannot open just now</h1>",
        "<p>The centre's safety filter is taking a short break, so pages stay closed until it is back. "
        "You have not done anything wrong.</p>",
        "<p>Please try again in a few minutes. If it keeps happening, a member of staff can help.</p>",
        "</section>",
        *_helpline_box(helpline),
    ]
    return _page("This page cannot open just now", parts, centre=centre)


def reported_page(*, helpline: Helpline | None, centre: str = "") -> str:
    """The thanks after the block page's report button."""
    parts = [
        '<section class="card">',
        "<h1>Thank you for telling us</h1>",
        "<p>Staff will look at this page and decide whether it should be open.</p>",
        "<p>If you need it now, ask a member of staff. You can use your browser's back button "
        "to go back.</p>",
        "</section>",
        *_helpline_box(helpline),
    ]
    return _page("Thank you for telling us", parts, centre=centre)


def certificate_page(*, centre: str, fingerprint_sha256: str, pem_url: str, der_url: str) -> str:
    """For staff: how to make centre-owned devices trust this appliance's CA certificate, and undo it."""
    fingerprint = _e(_format_fingerprint(fingerprint_sha256))
    pem = _e(pem_url)
    der = _e(der_url)
    where = f" at {_e(centre)}" if centre else ""
    parts = f"""
<section class="card">
<h1>Installing this appliance's certificate</h1>
<p>This appliance filters secure (HTTPS) pages on the centre's own computers and tablets. To do that,
each of those devices must trust the appliance's own certificate authority (CA) certificate. This page
says how, for each kind of device{where}, and how to remove it again.</p>
</section>

<section class="card warn">
<h2>Before you start</h2>
<ul>
<li><strong>Only centre-owned devices.</strong> Install it only on computers, laptops, Chromebooks and
tablets that the centre owns and manages.</li>
<li><strong>Never on children's own phones</strong> or tablets, nor on visitors' or staff's personal
devices. A device that trusts this certificate lets the appliance read its secure connections.
Children's own devices are filtered by site name and need nothing installed.</li>
<li><strong>Check the fingerprint.</strong> After downloading, compare the SHA-256 fingerprint your
device shows with the one below. If they differ, do not install it: ask for help.</li>
<li><strong>Each appliance has its own certificate.</strong> Never copy it from, or to, another centre's
appliance. A device that moves to another centre needs that centre's certificate and this one removed.</li>
<li>When a device leaves the centre, or this appliance is replaced, lost or stolen, remove the
certificate (see "Removing the certificate" below).</li>
</ul>
</section>

<section class="card">
<h2>1. Download the certificate</h2>
<ul>
<li><a href="{pem}">Certificate in PEM format</a> (macOS, ChromeOS, Android, Firefox)</li>
<li><a href="{der}">Certificate in DER format (.cer)</a> (Windows, Group Policy)</li>
</ul>
<p>Its SHA-256 fingerprint:</p>
<p class="fingerprint"><code>{fingerprint}</code></p>
<p class="note">Some systems show the fingerprint in lower case, with spaces, or without separators:
the 64 letters and digits must be the same, in the same order.</p>
</section>

<section class="card">
<h2>2. Install it</h2>

<h3>Windows</h3>
<ol>
<li>Sign in with an administrator account and download the DER (.cer) file.</li>
<li>Open <code>certlm.msc</code> (Manage computer certificates; <code>certmgr.msc</code> covers only
your own user account).</li>
<li>Right-click <strong>Trusted Root Certification Authorities</strong>, choose
<strong>All Tasks &gt; Import</strong>, pick the file and finish the wizard.</li>
<li>Or, from an administrator command prompt: <code>certutil -addstore -f Root file.cer</code></li>
<li>For many PCs in a domain, use Group Policy: <strong>Computer Configuration &gt; Policies &gt;
Windows Settings &gt; Security Settings &gt; Public Key Policies &gt; Trusted Root Certification
Authorities</strong>, then <strong>Import</strong>.</li>
<li>Open the imported certificate, <strong>Details</strong> tab, and check its fingerprint.</li>
</ol>

<h3>macOS</h3>
<ol>
<li>Download the PEM file and double-click it: <strong>Keychain Access</strong> opens.</li>
<li>Add it to the <strong>System</strong> keychain (not "login"), with an administrator password.</li>
<li>In Keychain Access, choose <strong>System</strong>, then <strong>Certificates</strong>, and
double-click the certificate.</li>
<li>Open <strong>Trust</strong> and set <strong>When using this certificate</strong> to
<strong>Always Trust</strong>. Close the window and confirm with the password.</li>
<li>Check the SHA-256 fingerprint shown in the certificate's details.</li>
<li>Macs managed by an MDM: push the certificate in a configuration profile instead.</li>
</ol>

<h3>ChromeOS (Chromebooks)</h3>
<ol>
<li>Managed Chromebooks: in the <strong>Google Admin console</strong>, go to <strong>Devices &gt;
Networks &gt; Certificates</strong>, add the certificate and tick it as a certificate authority for
<strong>Chromebook</strong>. This reaches every Chromebook in the organisational unit.</li>
<li>A single Chromebook: open <code>chrome://settings/certificates</code>, go to
<strong>Authorities</strong>, choose <strong>Import</strong>, pick the PEM file and tick
<strong>Trust this certificate for identifying websites</strong>. (On newer versions the page is called
Certificate manager; import it among your own trusted certificates.)</li>
</ol>

<h3>Android (centre-managed devices)</h3>
<ol>
<li>With an MDM/EMM (Android Enterprise): add the certificate to the CA certificates of the device
policy.</li>
<li>By hand: <strong>Settings &gt; Security &gt; Encryption &amp; credentials &gt; Install a
certificate &gt; CA certificate</strong>, accept the warning and pick the PEM file. (The menu names vary
a little between makers; search Settings for "certificate".)</li>
<li>Browsers use it; many other apps ignore certificates installed this way.</li>
</ol>

<h3>iPad and iPhone (centre-owned only)</h3>
<ol>
<li>Open the PEM file in Safari and allow the profile download, then install it in
<strong>Settings &gt; General &gt; VPN &amp; Device Management</strong>.</li>
<li>Turn on full trust in <strong>Settings &gt; General &gt; About &gt; Certificate Trust
Settings</strong>. Devices managed by an MDM: push it in a profile instead.</li>
</ol>

<h3>Firefox (on any system)</h3>
<ol>
<li>Firefox keeps its own list of certificates. On Windows and macOS, let it trust the system's:
set the enterprise policy <code>Certificates.ImportEnterpriseRoots</code> to <code>true</code>
(Group Policy or <code>policies.json</code>), or on one PC set <code>security.enterprise_roots.enabled</code>
to <code>true</code> in <code>about:config</code>.</li>
<li>Or import it into Firefox itself: <strong>Settings &gt; Privacy &amp; Security &gt; Certificates
&gt; View Certificates &gt; Authorities &gt; Import</strong>, and tick <strong>Trust this CA to identify
websites</strong>.</li>
</ol>
</section>

<section class="card">
<h2>3. Removing the certificate</h2>
<ul>
<li><strong>Windows:</strong> in <code>certlm.msc</code>, <strong>Trusted Root Certification
Authorities &gt; Certificates</strong>, select it and <strong>Delete</strong> (or remove it from the
Group Policy object).</li>
<li><strong>macOS:</strong> in Keychain Access, <strong>System &gt; Certificates</strong>, select it and
delete it (or remove the MDM profile).</li>
<li><strong>ChromeOS:</strong> <code>chrome://settings/certificates</code>, <strong>Authorities</strong>,
the certificate's menu, <strong>Delete</strong>; for managed Chromebooks delete it in the Admin console.</li>
<li><strong>Android:</strong> <strong>Settings &gt; Security &gt; Encryption &amp; credentials &gt;
Trusted credentials &gt; User</strong>, tap it and <strong>Remove</strong> (or remove it from the device
policy).</li>
<li><strong>iPad and iPhone:</strong> <strong>Settings &gt; General &gt; VPN &amp; Device
Management</strong>, the profile, <strong>Remove Profile</strong>.</li>
<li><strong>Firefox:</strong> <strong>View Certificates &gt; Authorities</strong>, select it and
<strong>Delete or Distrust</strong>; turn the enterprise policy off if you set it.</li>
</ul>
</section>
"""
    return _page("Installing this appliance's certificate", [parts], centre=centre, wide=True)


def _sentence(reason: Reason, categories: Mapping[str, Category]) -> str:
    """The plain sentence for one blocking reason, as HTML."""
    if reason.step is Step.CATEGORY:
        title = _title(reason, categories)
        if title:
            return f"It is in the group of sites called <strong>{_e(title)}</strong>."
    return _SENTENCES.get(reason.step, _FALLBACK)


def _rule_line(reason: Reason, categories: Mapping[str, Category]) -> str:
    """The small "Rule:" line for staff: category title and name, and the list's source:line, as HTML.

    Never the matched text: a personal-information finding (masked or not), a phrase, a search.
    """
    title = _title(reason, categories)
    if title and reason.category and title != reason.category:
        label = f"{_e(title)} ({_e(reason.category)})"
    elif title:
        label = _e(title)
    else:
        label = _e(_RULE_LABELS.get(reason.step, str(reason.step)))
        if reason.step is Step.DOWNLOAD and _EXTENSION.fullmatch(reason.rule):
            label += f" (.{_e(reason.rule)} files)"
    if reason.step is Step.PERSONAL_INFO:
        return label
    if reason.source and reason.line:
        return f"{label}, {_e(reason.source)}:{reason.line}"
    if reason.source:
        return f"{label}, {_e(reason.source)}"
    return label


def _title(reason: Reason, categories: Mapping[str, Category]) -> str:
    if not reason.category:
        return ""
    category = categories.get(reason.category)
    return category.title if category is not None else reason.category


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _worry(helpline: Helpline | None) -> str:
    if helpline is None:
        return "If something is worrying you, you can talk to a member of staff."
    phone = f" ({_e(helpline.phone)})" if helpline.phone else ""
    return (
        f"If something is worrying you, you can talk to a member of staff, or to {_e(helpline.name)}{phone}."
    )


def _report_form(report: ReportForm) -> list[str]:
    return [
        '<section class="card">',
        "<h2>Is this a mistake?</h2>",
        f'<form method="post" action="{_e(report.action)}">',
        f'<input type="hidden" name="{REPORT_TOKEN_FIELD}" value="{_e(report.token)}">',
        f'<label for="{REPORT_NOTE_FIELD}">What were you trying to do? (You can leave this empty. '
        "Please do not write your name, phone number or address.)</label>",
        f'<input type="text" id="{REPORT_NOTE_FIELD}" name="{REPORT_NOTE_FIELD}" '
        f'maxlength="{REPORT_NOTE_MAX}" autocomplete="off">',
        '<button type="submit">This page should not be blocked — tell staff</button>',
        "</form>",
        "</section>",
    ]


def _helpline_box(helpline: Helpline | None) -> list[str]:
    if helpline is None or not helpline.name:
        return []
    parts = [
        '<section class="card helpline">',
        "<h2>Want to talk to someone?</h2>",
        f"<p><strong>{_e(helpline.name)}</strong></p>",
    ]
    if helpline.text:
        parts.append(f"<p>{_e(helpline.text)}</p>")
    if helpline.phone:
        dial = re.sub(r"[^0-9+*#]", "", helpline.phone)
        shown = _e(helpline.phone)
        number = f'<a href="tel:{_e(dial)}">{shown}</a>' if dial else shown
        parts.append(f"<p>Call {number}</p>")
    if helpline.url:
        shown = helpline.url.split("://", 1)[-1].rstrip("/")
        if helpline.url.lower().startswith(("https://", "http://")):
            parts.append(f'<p><a href="{_e(helpline.url)}" rel="noreferrer">{_e(shown)}</a></p>')
        else:  # not a web address: shown, never a link (no javascript: or data: URLs)
            parts.append(f"<p>{_e(helpline.url)}</p>")
    parts.append("</section>")
    return parts


def _format_fingerprint(text: str) -> str:
    """`AB:CD:...` for 64 hex digits however separated; anything else as given."""
    digits = re.sub(r"[\s:]", "", text)
    if re.fullmatch(r"[0-9A-Fa-f]{64}", digits):
        upper = digits.upper()
        return ":".join(upper[i : i + 2] for i in range(0, 64, 2))
    return text


_CSS = """
:root{color-scheme:light dark;--bg:#eef3f8;--card:#fff;--ink:#1d2733;--soft:#52606d;--accent:#1f6391;
--line:#d5dfe9;--calm:#e6f2ea}
@media (prefers-color-scheme:dark){:root{--bg:#121820;--card:#1c242e;--ink:#e8edf2;--soft:#a9b6c3;
--accent:#8cc8ee;--line:#313e4c;--calm:#1f3327}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);
font:1.0625rem/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header,main,footer{max-width:38rem;margin:0 auto;padding:0 1rem}
.wide header,.wide main,.wide footer{max-width:52rem}
header{padding-top:1rem;color:var(--soft);font-weight:600}
main{padding-top:1rem;padding-bottom:1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:14px;padding:1.1rem 1.25rem;
margin:0 0 1rem}
h1{font-size:1.6rem;line-height:1.25;margin:0 0 .75rem}
h2{font-size:1.2rem;line-height:1.3;margin:0 0 .5rem}
h3{font-size:1.05rem;margin:1.25rem 0 .4rem}
p{margin:0 0 .75rem}
ul,ol{margin:0 0 .75rem;padding-left:1.25rem}
li{margin:.25rem 0}
a{color:var(--accent)}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em;overflow-wrap:anywhere}
.host{font-size:1.15rem;font-weight:600;overflow-wrap:anywhere}
.worry,.helpline{background:var(--calm)}
.worry{border-radius:10px;padding:.6rem .8rem}
.rule{color:var(--soft);font-size:.875rem;margin:.25rem 0 0;overflow-wrap:anywhere}
.warn{border-left:6px solid var(--accent)}
.fingerprint{font-size:1.05rem}
.note{color:var(--soft);font-size:.9rem}
label{display:block;margin:0 0 .35rem}
input[type=text]{display:block;width:100%;font:inherit;color:inherit;background:var(--bg);
padding:.6rem .7rem;border:1px solid var(--line);border-radius:8px;margin:0 0 .8rem}
button{font:inherit;font-weight:600;color:#fff;background:var(--accent);border:0;border-radius:10px;
padding:.7rem 1rem;min-height:44px;width:100%;cursor:pointer}
@media (prefers-color-scheme:dark){button{color:#10161d}}
@media (min-width:40rem){button{width:auto}}
footer{color:var(--soft);font-size:.875rem;text-align:center;padding-bottom:1.5rem}
"""


CHILD_CSS = _CSS  # the portal's pages (dashboard/templates/portal/) share this look


def _page(title: str, parts: list[str], *, centre: str, wide: bool = False) -> str:
    """One whole document around `parts` (HTML already escaped where it must be)."""
    header = f"<header>{_e(centre)}</header>\n" if centre else ""
    body_class = ' class="wide"' if wide else ""
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body{body_class}>
{header}<main>
{body}
</main>
<footer>This connection is filtered and monitored to keep everyone safe.</footer>
</body>
</html>
"""
