"""A mirror of the list catalogue for tests: each downloaded entry's file at `<mirror>/<name><archive suffix>`
(filters.sources.Source.mirror_path), as head office or a local cache would keep it.

Built from the copies of the real lists in ../shared/data where there is one (UT1 category folders packed
into `<category>.tar.gz` as UT1 publishes them), else a small generated file in the entry's format whose
one name is `probe_name(entry)`. The shared data is not part of the project: without it every file is
generated."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

from appliance.config.catalogue import Catalogue, Entry
from filters.sources import Format

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ALLOWLISTS = ("children-safe", "educational")


def shared_copy(entry: Entry) -> Path | None:
    """The copy of `entry`'s list in ../shared/data (a file, or a UT1 category folder), if there is one."""
    if entry.url is None:
        return None
    url = entry.url
    name = entry.file_name
    if entry.provider.key == "ut1":
        found = SHARED / "lists" / "ut1" / entry.members[0].strip("/")
    elif entry.provider.key == "stevenblack":
        variant = url.split("/alternates/")[1].split("/")[0] if "/alternates/" in url else "unified"
        found = SHARED / "lists" / "stevenblack" / f"{variant}.hosts"
    elif entry.provider.key == "hagezi":
        found = SHARED / "lists" / "hagezi" / name
    elif entry.provider.key == "blocklistproject":
        found = SHARED / "lists" / "blocklistproject" / name
    elif entry.provider.key == "easylist":
        found = SHARED / "lists" / "easylist" / name
    elif entry.provider.key == "e2guardian":
        language, topic = url.split("/phraselists/")[1].split("/")[:2]
        found = SHARED / "phrases" / "e2guardian" / language / topic / "weighted"
    else:
        return None
    return found if found.exists() else None


def probe_name(entry: Entry) -> str:
    """The one name (or phrase) a generated stand-in for `entry` lists."""
    return f"{entry.name.replace('_', '-')}.probe.example"


def _generated(entry: Entry) -> bytes:
    probe = probe_name(entry)
    text = {
        Format.HOSTS: f"# stand-in for {entry.name}\n0.0.0.0 {probe}\n",
        Format.DOMAINS: f"{probe}\n",
        Format.ADBLOCK_DNS: f"! stand-in for {entry.name}\n||{probe}^\n",
        Format.ADBLOCK: f"! stand-in for {entry.name}\n||{probe}^\n",
        Format.PHRASES: f'#listcategory: "{entry.category}"\n<{probe}><200>\n',
    }[entry.format]
    return text.encode()


def _tar(folder: str, files: dict[str, bytes]) -> bytes:
    """A .tar.gz holding `folder/<name>` for each file, as UT1 publishes a category."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_mirror(root: Path, catalogue: Catalogue, names: list[str] | tuple[str, ...]) -> dict[str, bool]:
    """Lay out the downloaded entries among `names` under `root`; returns, per entry, whether its file is
    the real list from ../shared/data (True) or a generated stand-in (False)."""
    real = {}
    for name in names:
        entry = catalogue.entries[name]
        if entry.url is None:
            continue
        target = root / catalogue.source(name).mirror_path
        target.parent.mkdir(parents=True, exist_ok=True)
        copy = shared_copy(entry)
        real[name] = copy is not None
        if entry.format is Format.UT1:
            folder = entry.members[0].strip("/")
            if copy is not None:
                files = {p.name: p.read_bytes() for p in sorted(copy.iterdir()) if p.is_file()}
            else:
                usage = b"white\n" if entry.category in ALLOWLISTS else b"black\n"
                files = {"domains": f"{probe_name(entry)}\n".encode(), "usage": usage}
            target.write_bytes(_tar(folder, files))
        elif copy is not None:
            shutil.copyfile(copy, target)
        else:
            target.write_bytes(_generated(entry))
    return real
