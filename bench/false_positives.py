"""False positives: which ordinary popular sites a preset's lists block for a profile, and why.

The hosts: the 49,999 popular host names of ../shared/data/requests/top50k-hostnames.txt and the hosts
of the top-500 site list (requests/top500-sitelist.txt). The lists: the preset's catalogue entries
(`recommended` by default) compiled from the copies in ../shared/data (an entry with no copy there is
left out and named in `missing`), with the shipped policy. Each host is asked as the DNS filter asks
(`decide` on the host alone) for the profile (`13-17` by default) inside its opening hours.

Every blocked host is then put in the first of these classes that fits it:

- `ads_trackers`: EasyList or EasyPrivacy block a request to it (as a third-party script, image, XHR,
  frame or other): meant to be blocked.
- `agreed`: lists of two or more providers (UT1, StevenBlack, HaGeZi, the Block List Project, ...) name
  it under a category it is blocked under: independent judgements agree it is what it is blocked as.
  Every catalogue entry with a copy counts, in the preset or not, and UT1's adult name expressions
  (`adult/very_restrictive_expression`, UT1's own judgement from the name) count for UT1.
- `harmful`: reviewed by hand in bench/false_positives_review.txt as what the list says (an adult,
  piracy or gambling site that only one provider lists).
- `kept`: reviewed as an ordinary site that stays blocked on purpose, with the reason in the same file
  (docs/lists.md sums them up).
- `unreviewed`: none of these.

`false_positives` = kept + unreviewed: ordinary sites the profile blocks. The bar (docs/lists.md):
`share` = false_positives / hosts <= 0.005, and `unreviewed` == 0 (each one either allowed by a shipped
exception list, or reviewed and kept with a reason).

The peer baseline: a plain suffix match of StevenBlack's unified hosts file (what a Pi-hole installs by
default): the hosts it blocks, and those of them EasyList/EasyPrivacy do not call ads or trackers
(`peer_not_ads_trackers`, to set beside our `not_ads_trackers`: the peer blocks adware and malware
only, where a child's profile also blocks adult, gambling, piracy and dating sites).

    .venv/bin/python bench/false_positives.py [--preset recommended] [--profile 13-17] [--list]

`--list` prints every false positive and unreviewed host with the reasons it is blocked, and the reviewed
names no host met (`unused_reviews` counts them); `--all` every blocked host. The last line printed is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data"
TOP50K = DATA / "requests" / "top50k-hostnames.txt"
TOP500 = DATA / "requests" / "top500-sitelist.txt"
UT1_ADULT_NAMES = DATA / "lists" / "ut1" / "adult" / "very_restrictive_expression"
REVIEW = Path(__file__).with_name("false_positives_review.txt")
AD_LISTS = ("easylist", "easyprivacy")
PEER = "stevenblack-unified"
NAME_EXPRESSIONS = "ut1-adult-names"  # the reference source made of UT1's adult name expressions
# Tuesday 24 November 2026, 16:00 in London: inside the shipped profiles' opening hours.
NOW = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
BAR = 0.005
VERDICTS = ("harmful", "kept")


def hosts() -> list[str]:
    """The popular host names and the top-500 sites' hosts, canonical, each once, sorted."""
    from filters.urls import canonical_host

    found = {line.strip() for line in TOP50K.read_text(encoding="utf-8").splitlines()}
    for line in TOP500.read_text(encoding="utf-8").splitlines():
        found.add(urlsplit(line.strip()).hostname or "")
    return sorted({canonical_host(h) for h in found if h})


@dataclass(frozen=True)
class Review:
    """One reviewed name (covering its subdomains): `harmful` or `kept`, and why."""

    name: str
    verdict: str
    why: str
    line: int


def read_review(path: Path = REVIEW) -> dict[str, Review]:
    """The review file: `name verdict why...` lines, `#` comments. Raises ValueError naming the line."""
    out: dict[str, Review] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(None, 2)
        if len(parts) < 3 or parts[1] not in VERDICTS:
            raise ValueError(f"{path}:{number}: expected `name harmful|kept why`, got {raw!r}")
        if parts[0] in out:
            raise ValueError(f"{path}:{number}: {parts[0]} is reviewed twice")
        out[parts[0]] = Review(parts[0], parts[1], parts[2], number)
    return out


def reviewed(host: str, review: dict[str, Review]) -> Review | None:
    """The review of `host` or of the nearest parent domain reviewed."""
    while True:
        found = review.get(host)
        if found is not None:
            return found
        dot = host.find(".")
        if dot < 0:
            return None
        host = host[dot + 1 :]


@dataclass
class Indexes:
    """The preset's index (what the appliance would run) and the reference index (the catalogue's other
    lists with a copy, EasyList and EasyPrivacy if the preset lacks them, and UT1's adult names)."""

    preset: Any
    reference: Any
    providers: dict[str, str]  # source name -> provider
    missing: list[str] = field(default_factory=list)
    compile_s: float = 0.0


def _sources(names: Iterable[str], missing: list[str]) -> Iterator[Any]:
    from appliance.config.catalogue import load_catalogue
    from filters.sources import Format, Source
    from tests.catalogue_mirror import shared_copy

    catalogue = load_catalogue()
    for name in names:
        entry = catalogue.entries[name]
        if entry.url is None:
            yield catalogue.source(name)
            continue
        if entry.format is Format.PHRASES:
            continue  # pages, not names: nothing to do with a host
        copy = shared_copy(entry)
        if copy is None:
            missing.append(name)
            continue
        yield Source(name, entry.format, entry.category, str(copy))


def compile_indexes(preset: str, work: Path) -> Indexes:
    """Compile the preset's lists and the reference lists under `work`, from ../shared/data."""
    from appliance.config import Config, FetchSettings
    from appliance.config.catalogue import load_catalogue
    from appliance.lists import compile_lists
    from appliance.storage import open_index
    from filters.sources import Format, Source

    catalogue = load_catalogue()
    chosen = catalogue.presets[preset].entries
    started = time.perf_counter()
    missing: list[str] = []
    preset_sources = tuple(_sources(chosen, missing))
    preset_index = compile_lists(Config("preset", work / "preset", preset_sources, FetchSettings()), now=NOW)
    others = [
        n
        for n, e in catalogue.entries.items()
        if n not in chosen and e.url is not None and e.category not in ("children-safe", "educational")
    ]
    reference_sources = list(_sources(others, []))
    names = work / NAME_EXPRESSIONS
    names.mkdir(parents=True, exist_ok=True)
    (names / "usage").write_text("black\n", encoding="utf-8")
    (names / "expressions").write_bytes(UT1_ADULT_NAMES.read_bytes())
    reference_sources.append(Source(NAME_EXPRESSIONS, Format.UT1, "adult", str(names)))
    reference = compile_lists(
        Config("reference", work / "reference", tuple(reference_sources), FetchSettings()), now=NOW
    )
    providers = {n: e.provider.key for n, e in catalogue.entries.items()}
    providers[NAME_EXPRESSIONS] = "ut1"
    return Indexes(
        open_index(preset_index.index_path),
        open_index(reference.index_path),
        providers,
        missing,
        time.perf_counter() - started,
    )


_REQUEST_TYPES = ("script", "image", "xmlhttprequest", "subdocument", "other")


def ad_or_tracker(host: str, indexes: Indexes) -> str | None:
    """The EasyList/EasyPrivacy rule that blocks a third-party request to `host`, if one does."""
    url = f"https://{host}/"
    for index in (indexes.preset, indexes.reference):
        if not any(s.name in AD_LISTS for s in index.sources):
            continue
        for kind in _REQUEST_TYPES:
            for hit in index.match_url(url, source_url="https://example.org/", request_type=kind).blocking:
                if hit.source in AD_LISTS:
                    return f"{hit.source}:{hit.line}: {hit.rule}"
    return None


def providers_naming(host: str, category: str, indexes: Indexes) -> set[str]:
    """The providers whose lists (preset or reference) block `host` under `category`."""
    found = set()
    for index in (indexes.preset, indexes.reference):
        for hit in index.match_url(f"http://{host}/").blocking:
            if hit.category == category:
                found.add(indexes.providers.get(hit.source, hit.source))
    return found


@dataclass(frozen=True)
class Blocked:
    host: str
    kind: str  # ads_trackers, agreed, harmful, kept, unreviewed
    reasons: str
    note: str = ""


def measure(preset: str = "recommended", profile: str = "13-17", work: Path | None = None) -> dict[str, Any]:
    """The figures (see the module's docstring), with every blocked host's class under `blocked`."""
    from appliance.config import PolicySettings
    from appliance.policy_files import read_policy_files
    from profiles.decide import decide
    from profiles.identity import Identity, Via
    from profiles.request import Request
    from profiles.verdict import Action

    with tempfile.TemporaryDirectory() as tmp:
        indexes = compile_indexes(preset, work or Path(tmp))
        policy = read_policy_files(PolicySettings()).bind(indexes.preset)
        review = read_review()
        identity = Identity(profile, Via.ASSUMED)
        names = hosts()
        blocked: list[Blocked] = []
        peer_blocked = peer_not_ads = 0
        peer_id = next((i for i, s in enumerate(indexes.reference.sources) if s.name == PEER), None)
        for host in names:
            verdict = decide(Request(host), policy, identity, NOW)
            peer = peer_id is not None and any(
                hit.source == PEER for hit in indexes.reference.match_host(host).blocking
            )
            ad = ad_or_tracker(host, indexes) if verdict.action is Action.BLOCK or peer else None
            if peer:
                peer_blocked += 1
                peer_not_ads += ad is None
            if verdict.action is not Action.BLOCK:
                continue
            shown = " | ".join(
                f"{r.category or r.step}:{r.source or '-'}:{r.rule}"
                for r in verdict.reasons
                if r.effect is Action.BLOCK
            )
            if ad is not None:
                blocked.append(Blocked(host, "ads_trackers", shown, ad))
                continue
            categories = {r.category for r in verdict.reasons if r.effect is Action.BLOCK and r.category}
            agreeing = [c for c in sorted(categories) if len(providers_naming(host, c, indexes)) >= 2]
            if agreeing:
                blocked.append(Blocked(host, "agreed", shown, ", ".join(agreeing)))
                continue
            found = reviewed(host, review)
            if found is not None:
                blocked.append(Blocked(host, found.verdict, shown, f"{found.name}: {found.why}"))
                continue
            blocked.append(Blocked(host, "unreviewed", shown))
    count = {k: sum(1 for b in blocked if b.kind == k) for k in ("ads_trackers", "agreed", "harmful", "kept")}
    unreviewed = sum(1 for b in blocked if b.kind == "unreviewed")
    false_positives = count["kept"] + unreviewed
    used = {r.name for b in blocked if (r := reviewed(b.host, review)) is not None}
    return {
        "preset": preset,
        "profile": profile,
        "hosts": len(names),
        "blocked": len(blocked),
        "not_ads_trackers": len(blocked) - count["ads_trackers"],
        "not_ads_share": round((len(blocked) - count["ads_trackers"]) / len(names), 5),
        **count,
        "unreviewed": unreviewed,
        "false_positives": false_positives,
        "share": round(false_positives / len(names), 5),
        "bar": BAR,
        "peer": PEER,
        "peer_blocked": peer_blocked,
        "peer_not_ads_trackers": peer_not_ads,
        "peer_not_ads_share": round(peer_not_ads / len(names), 5),
        "missing": indexes.missing,
        "unused_reviews": sorted(set(review) - used),
        "compile_s": round(indexes.compile_s, 1),
        "blocked_hosts": [b.__dict__ for b in blocked],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="recommended")
    parser.add_argument("--profile", default="13-17")
    parser.add_argument("--list", action="store_true", help="print each false positive and unreviewed host")
    parser.add_argument("--all", action="store_true", help="print every blocked host with its class")
    args = parser.parse_args()
    if not TOP50K.exists():
        print(f"bench/false_positives.py: {DATA} is absent: nothing measured")
        print(json.dumps({"skipped": "no ../shared/data"}))
        return 0
    started = time.perf_counter()
    result = measure(args.preset, args.profile)
    blocked = result.pop("blocked_hosts")
    for b in blocked:
        if args.all or (args.list and b["kind"] in ("kept", "unreviewed")):
            print(f"{b['kind']:12} {b['host']:40} {b['reasons']}  {b['note']}".rstrip())
    unused = result.pop("unused_reviews")
    if args.list or args.all:
        print("\n".join(f"unused review {name}" for name in unused))
    result["unused_reviews"] = len(unused)  # names the review file holds that this run did not meet
    print(
        f"{args.profile} on the {args.preset} preset: {result['false_positives']} of {result['hosts']:,} "
        f"hosts blocked that are ordinary sites ({result['share']:.2%}; bar {BAR:.1%}), "
        f"{result['unreviewed']} unreviewed; in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
