"""The list catalogue shipped with the appliance (`defaults/catalogue.yaml`): public lists filed under our
categories, and the presets a centre picks from (`recommended`, `minimal`, `demo`).

A configuration names a preset and may switch single entries on or off (`lists.preset`,
`lists.catalogue`, read by appliance/config/lists.py); the entries in force become `Source` values the
compile reads, beside the centre's own `lists.sources`. docs/lists.md shows the catalogue as a table
made by `catalogue_markdown` (a test checks the checked-in table agrees with the file).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from appliance.config.reader import Mapping as _Mapping
from appliance.config.reader import Reader, YamlError, load_yaml
from appliance.config.reader import Sequence as _Sequence
from filters.errors import ApplianceError
from filters.sources import Format, Rank, Source

COUNTED = ("data", "upstream", "bundled")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".gz", ".zip")
DEMO = "demo"
_ON = {"on": True, "true": True, "off": False, "false": False}


class CatalogueError(ApplianceError):
    """The catalogue or a switches file is wrong; the message starts with `file:line:`."""


@dataclass(frozen=True)
class Provider:
    """Who publishes a family of lists, and what their licence asks of us."""

    key: str
    title: str
    homepage: str
    licence: str
    attribution: str


@dataclass(frozen=True)
class Entry:
    """One list of the catalogue. Exactly one of `url` (downloaded) and `path` (shipped) is set."""

    name: str
    provider: Provider
    category: str
    format: Format
    url: str | None
    path: str | None  # relative to the catalogue's folder (appliance/defaults)
    members: tuple[str, ...]
    entries: int
    counted: str  # data, upstream or bundled: see the catalogue's header
    changes: str
    licence: str
    note: str = ""
    rank: Rank = Rank.SPECIFIC  # how far its word goes when lists disagree (docs/lists.md)
    line: int = 0

    @property
    def downloaded(self) -> bool:
        return self.url is not None

    @property
    def file_name(self) -> str:
        """The last part of the URL (or path): the name of the file a mirror keeps."""
        return (self.url or self.path or "").rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    entries: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    """The catalogue, read and checked. `entries` and `presets` keep the file's order."""

    path: Path
    providers: Mapping[str, Provider]
    entries: Mapping[str, Entry]
    presets: Mapping[str, Preset]

    def presets_of(self, name: str) -> tuple[str, ...]:
        """The presets that take entry `name`."""
        return tuple(p.name for p in self.presets.values() if name in p.entries)

    def source(self, name: str) -> Source:
        """The entry as a list source the compile reads."""
        entry = self.entries[name]
        location = entry.url or str((self.path.parent / (entry.path or "")).resolve())
        return Source(
            name=entry.name,
            format=entry.format,
            category=entry.category,
            location=location,
            members=entry.members,
        )

    def expected_entries(self, names: Iterable[str]) -> int:
        return sum(self.entries[n].entries for n in names)

    def ranks(self) -> dict[str, Rank]:
        """The entries whose rank is not `specific`, by name (what `profiles.policy.Policy` takes)."""
        return {name: e.rank for name, e in self.entries.items() if e.rank is not Rank.SPECIFIC}


def shipped_path() -> Path:
    return Path(str(resources.files("appliance") / "defaults" / "catalogue.yaml"))


_CACHE: dict[tuple[str, int], Catalogue] = {}


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check the catalogue (the shipped one by default). Raises CatalogueError naming file:line."""
    path = (path or shipped_path()).resolve()
    try:
        stamp = (str(path), path.stat().st_mtime_ns)
        found = _CACHE.get(stamp)
        if found is not None:
            return found
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogueError(f"{path}: cannot read the list catalogue: {e.strerror}") from e
    try:
        data = load_yaml(path, text)
    except YamlError as e:
        raise CatalogueError(str(e)) from e
    catalogue = _Reader(path).catalogue(data)
    _CACHE.clear()
    _CACHE[stamp] = catalogue
    return catalogue


class _Reader(Reader):
    """The catalogue's own look-ups (required and optional keys, texts with their spaces folded); the
    first mistake raises CatalogueError."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, error=CatalogueError)

    def table(self, node: _Mapping, key: str, what: str) -> _Mapping:
        value = node.get(key)
        if not isinstance(value, _Mapping):
            raise self.fail(node, key if key in node else None, f"{what} needs {key!r}: a mapping")
        return value

    def fields(self, node: _Mapping, required: set[str], optional: set[str], what: str) -> None:
        self.keys(node, required | optional, what)
        for key in sorted(required):
            if key not in node:
                raise self.fail(node, None, f"{what} needs {key!r}")

    def folded(self, node: _Mapping, key: str, what: str, default: str | None = None) -> str:
        value = node.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, key, f"{what}: {key!r} must be a text")
        return " ".join(value.split())

    def catalogue(self, data: Any) -> Catalogue:
        if not isinstance(data, _Mapping):
            raise CatalogueError(
                f"{self.path}:1: the catalogue must be a mapping (providers, presets, entries)"
            )
        self.fields(data, {"providers", "presets", "entries"}, set(), "the catalogue")
        providers = {}
        for key, node in self.table(data, "providers", "the catalogue").items():
            what = f"provider {key!r}"
            if not isinstance(node, _Mapping):
                raise self.fail(data["providers"], key, f"{what} must be a mapping")
            self.fields(node, {"title", "homepage", "licence", "attribution"}, set(), what)
            title, homepage, licence, attribution = (
                self.folded(node, k, what) for k in ("title", "homepage", "licence", "attribution")
            )
            providers[key] = Provider(key, title, homepage, licence, attribution)
        entries = {}
        table = self.table(data, "entries", "the catalogue")
        for name, node in table.items():
            if not isinstance(node, _Mapping):
                raise self.fail(table, name, f"entry {name!r} must be a mapping")
            if not name or not all(c.isalnum() or c in "-_." for c in name):
                raise self.fail(table, name, f"entry name {name!r}: use letters, digits, - _ . only")
            entries[name] = self.entry(name, node, providers)
        presets = {}
        section = self.table(data, "presets", "the catalogue")
        for name, node in section.items():
            what = f"preset {name!r}"
            if not isinstance(node, _Mapping):
                raise self.fail(section, name, f"{what} must be a mapping")
            self.fields(node, {"description", "entries"}, set(), what)
            names = node["entries"]
            if not isinstance(names, _Sequence) or not all(isinstance(n, str) for n in names):
                raise self.fail(node, "entries", f"{what}: entries must be a list of entry names")
            for i, entry in enumerate(names):
                if entry not in entries:
                    line = names.item_lines[i]
                    raise CatalogueError(
                        f"{self.path}:{line}: {what}: no entry {entry!r}{_close(entry, entries)}"
                    )
            if len(set(names)) != len(names):
                raise self.fail(node, "entries", f"{what}: an entry is named twice")
            presets[name] = Preset(name, self.folded(node, "description", what), tuple(names))
        if DEMO not in presets or any(entries[n].downloaded for n in presets[DEMO].entries):
            raise self.fail(section, None, f"preset {DEMO!r} must exist and take shipped entries only")
        return Catalogue(self.path, providers, entries, presets)

    def entry(self, name: str, node: _Mapping, providers: Mapping[str, Provider]) -> Entry:
        what = f"entry {name!r}"
        required = {"provider", "category", "format", "entries", "counted", "changes"}
        self.fields(node, required, {"url", "path", "members", "licence", "note", "rank"}, what)
        provider = providers.get(node["provider"])
        if provider is None:
            raise self.fail(node, "provider", f"{what}: no provider {node['provider']!r}")
        try:
            fmt = Format(node["format"])
        except ValueError as e:
            known = ", ".join(f.value for f in Format)
            raise self.fail(
                node, "format", f"{what}: unknown format {node['format']!r} (known: {known})"
            ) from e
        if ("url" in node) == ("path" in node):
            raise self.fail(node, None, f"{what}: give exactly one of url and path")
        url = path = None
        if "url" in node:
            url = self.folded(node, "url", what)
            if not url.startswith(("https://", "http://")):
                raise self.fail(node, "url", f"{what}: url must start with https://")
        else:
            path = self.folded(node, "path", what)
            if not (self.path.parent / path).exists():
                raise self.fail(node, "path", f"{what}: {path} is not shipped beside the catalogue")
        members: tuple[str, ...] = ()
        if "members" in node:
            raw = node["members"]
            if not isinstance(raw, _Sequence) or not raw or not all(isinstance(m, str) and m for m in raw):
                raise self.fail(node, "members", f"{what}: members must be a list of paths in the archive")
            if url is None or not url.lower().endswith(ARCHIVE_SUFFIXES):
                raise self.fail(
                    node, "members", f"{what}: members are for an archive url (.tar.gz, .zip ...)"
                )
            members = tuple(raw)
        count = node["entries"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise self.fail(node, "entries", f"{what}: entries must be a whole number")
        rank = Rank.SPECIFIC
        if "rank" in node:
            try:
                rank = Rank.parse(self.folded(node, "rank", what))
            except ValueError as e:
                known = ", ".join(str(r) for r in Rank)
                raise self.fail(
                    node, "rank", f"{what}: unknown rank {node['rank']!r} (known: {known})"
                ) from e
            if rank is Rank.EXCEPTIONS and (path is None or fmt is not Format.ADBLOCK_DNS):
                raise self.fail(
                    node, "rank", f"{what}: an exceptions list is a shipped adblock-dns file of @@ entries"
                )
        counted = self.folded(node, "counted", what)
        if counted not in COUNTED or (counted == "bundled") != (path is not None):
            raise self.fail(
                node,
                "counted",
                f"{what}: counted is data or upstream for a download, bundled for a shipped file",
            )
        return Entry(
            name=name,
            provider=provider,
            category=self.folded(node, "category", what),
            format=fmt,
            url=url,
            path=path,
            members=members,
            entries=count,
            counted=counted,
            changes=self.folded(node, "changes", what),
            licence=self.folded(node, "licence", what, provider.licence),
            note=self.folded(node, "note", what) if "note" in node else "",
            rank=rank,
            line=node.line,
        )


def _close(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# ---- what a configuration takes from it ----


@dataclass(frozen=True)
class Selection:
    """What a configuration takes from the catalogue: a preset, switches over it, and the entries that
    result (in catalogue order). `switches_file` is where the switches live when `lists.catalogue`
    names a file (the dashboard's Lists page writes that file); `unknown` holds switched names the
    catalogue no longer has, with their `file:line` (ignored: an update must not stop the filter)."""

    preset: str | None = None
    switches: Mapping[str, bool] = field(default_factory=dict)
    switches_file: Path | None = None
    inline: bool = False  # the switches are written in the configuration file itself
    entries: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()

    def why(self, name: str) -> str:
        """Why an entry is in force or not: `preset recommended`, `switched on`, `switched off` ..."""
        if name in self.switches:
            return "switched on" if self.switches[name] else "switched off"
        return f"preset {self.preset}" if name in self.entries else "not in the preset"


def select(
    catalogue: Catalogue,
    preset: str | None,
    switches: Mapping[str, bool],
    *,
    switches_file: Path | None = None,
    inline: bool = False,
    unknown: tuple[str, ...] = (),
) -> Selection:
    """The entries in force: the preset's, with the switches applied. `preset` must be in the catalogue."""
    chosen = set(catalogue.presets[preset].entries) if preset else set()
    for name, on in switches.items():
        if name in catalogue.entries:
            (chosen.add if on else chosen.discard)(name)
    return Selection(
        preset=preset,
        switches=dict(switches),
        switches_file=switches_file,
        inline=inline,
        entries=tuple(n for n in catalogue.entries if n in chosen),
        unknown=unknown,
    )


def parse_switch(value: Any) -> bool | None:
    """`on`/`off` (or true/false) as a bool; None for anything else."""
    if isinstance(value, bool):
        return value
    return _ON.get(value.strip().lower()) if isinstance(value, str) else None


def read_switches(path: Path, catalogue: Catalogue) -> tuple[dict[str, bool], tuple[str, ...]]:
    """The switches kept in `path` (`name: on` lines), and the names the catalogue does not have (each
    as `file:line: ...`). A missing file has no switches. Raises CatalogueError for a file that is not
    such a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, ()
    except OSError as e:
        raise CatalogueError(f"{path}: cannot read the catalogue switches: {e.strerror}") from e
    try:
        data = load_yaml(path, text)
    except YamlError as e:
        raise CatalogueError(str(e)) from e
    if not isinstance(data, _Mapping):
        raise CatalogueError(f"{path}:1: the catalogue switches are lines like `ut1-adult: off`")
    return switches_of(data, path, catalogue)


def switches_of(node: _Mapping, path: Path, catalogue: Catalogue) -> tuple[dict[str, bool], tuple[str, ...]]:
    """`name: on|off` items of a mapping; raises CatalogueError for a value that is neither."""
    switches: dict[str, bool] = {}
    unknown = []
    for name, value in node.items():
        on = parse_switch(value)
        if on is None:
            raise CatalogueError(
                f"{path}:{node.line_of(name)}: catalogue entry {name!r}: {value!r} is not on or off"
            )
        if name not in catalogue.entries:
            unknown.append(
                f"{path}:{node.line_of(name)}: no catalogue entry {name!r}{_close(name, catalogue.entries)}"
                " (ignored)"
            )
            continue
        switches[name] = on
    return switches, tuple(unknown)


def switches_text(switches: Mapping[str, bool]) -> str:
    """A switches file's text, as the dashboard writes it."""
    lines = [
        "# Catalogue entries switched on or off over the preset (lists.preset), one a line. Written by the",
        "# dashboard's Lists page; `appliance lists catalogue` shows every entry. Takes effect at the next",
        "# list update (`appliance lists compile`, or the nightly one).",
    ]
    lines += [f"{name}: {'on' if on else 'off'}" for name, on in sorted(switches.items())]
    return "\n".join(lines) + "\n"


# ---- the table in docs/lists.md ----

MARK_START = "<!-- catalogue: made by `appliance lists catalogue --markdown` from its file; do not edit -->"
MARK_END = "<!-- end of catalogue -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def catalogue_markdown(catalogue: Catalogue) -> str:
    """The catalogue as Markdown tables: the presets, then every entry, then the notes."""
    out = [MARK_START, "", "| preset | entries | expected entries | what for |", "|---|---|---|---|"]
    for preset in catalogue.presets.values():
        total = catalogue.expected_entries(preset.entries)
        out.append(f"| `{preset.name}` | {len(preset.entries)} | {total:,} | {_cell(preset.description)} |")
    out += [
        "",
        "| entry | category | rank | format | entries | changes | from | licence | presets |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in catalogue.entries.values():
        where = f"[`{e.name}`]({e.url})" if e.url else f"`{e.name}` (`{e.path}`)"
        fmt = e.format.value + (f" in `{e.file_name}` ({', '.join(e.members)})" if e.members else "")
        size = {"data": f"{e.entries:,}", "upstream": f"≈{e.entries:,}", "bundled": f"{e.entries:,}"}
        presets = ", ".join(catalogue.presets_of(e.name)) or "—"
        out.append(
            f"| {where} | {e.category} | {e.rank} | {fmt} | {size[e.counted]} | {e.changes} "
            f"| {_cell(e.provider.title)} | {_cell(e.licence)} | {presets} |"
        )
    out += ["", "Notes:", ""]
    out += [f"- `{e.name}`: {e.note}" for e in catalogue.entries.values() if e.note]
    out += ["", "Attribution:", ""]
    out += [
        f"- {p.title} ({p.homepage}): {p.attribution}; {p.licence}." for p in catalogue.providers.values()
    ]
    out += ["", MARK_END]
    return "\n".join(out) + "\n"
