"""Choosing the catalogue preset in the configuration file (`appliance lists preset`): a line edit that
keeps every other line (and comment) as it was."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from appliance.config import Config, ConfigError
from appliance.config.catalogue import load_catalogue
from appliance.config.reader import Mapping, YamlError, load_yaml
from appliance.files import write_atomically
from appliance.in_force.head_office import load_config_in_force


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _block_key(lines: list[str], at: int, key: str) -> bool:
    """Is line `at` a `key:` opening a block (not a flow mapping like `key: {...}`)?"""
    return re.match(rf"^\s*{key}:\s*(#.*)?$", lines[at]) is not None


def _set_value(line: str, key: str, value: str) -> str:
    return re.sub(rf"^(\s*{key}:\s*)[^\s#]*", lambda m: m.group(1) + value, line)


def with_preset(path: Path, text: str, preset: str, mirror: str | None = None) -> str:
    """`text` (a configuration file) with `lists.preset` set to `preset` and, if given,
    `lists.fetch.mirror` to `mirror`; every other line as it was. Raises ConfigError when `lists:` (or
    `lists.fetch:`) is written as a flow mapping (`{...}`), which this does not edit."""
    try:
        data = load_yaml(path, text)
    except YamlError as e:
        raise ConfigError(str(e)) from e
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}:1: the configuration must be a mapping of keys (lists, policy, ...)")
    lines = text.splitlines()
    if "lists" not in data:
        block = ["lists:", f"  preset: {preset}"] + (["  fetch:", f"    mirror: {mirror}"] if mirror else [])
        return "\n".join([*lines, *block]) + "\n"
    head = data.key_lines["lists"] - 1
    lists = data["lists"]
    if not _block_key(lines, head, "lists"):
        raise ConfigError(f"{path}:{head + 1}: write lists: as a block of key: value lines to change it here")
    keys = lists.key_lines if isinstance(lists, Mapping) else {}
    indent = _indent(lines[min(keys.values()) - 1]) if keys else "  "
    edits: dict[int, str] = {}  # line index -> the line that replaces it
    inserts: dict[int, list[str]] = {}  # line index -> the lines that follow it
    if "preset" in keys:
        edits[keys["preset"] - 1] = _set_value(lines[keys["preset"] - 1], "preset", preset)
    else:
        inserts.setdefault(head, []).append(f"{indent}preset: {preset}")
    if mirror:
        if "fetch" not in keys:
            after = keys["preset"] - 1 if "preset" in keys else head
            inserts.setdefault(after, []).extend([f"{indent}fetch:", f"{indent * 2}mirror: {mirror}"])
        else:
            at = keys["fetch"] - 1
            if not _block_key(lines, at, "fetch"):
                raise ConfigError(f"{path}:{at + 1}: write lists.fetch as a block to change it here")
            fetch = lists["fetch"]
            inner = fetch.key_lines if isinstance(fetch, Mapping) else {}
            if "mirror" in inner:
                edits[inner["mirror"] - 1] = _set_value(lines[inner["mirror"] - 1], "mirror", mirror)
            else:
                deeper = _indent(lines[min(inner.values()) - 1]) if inner else _indent(lines[at]) + indent
                inserts.setdefault(at, []).append(f"{deeper}mirror: {mirror}")
    out = []
    for i, line in enumerate(lines):
        out.append(edits.get(i, line))
        out.extend(inserts.get(i, []))
    return "\n".join(out) + "\n"


def choose_preset(path: Path, name: str, mirror: str | None = None) -> Config:
    """Set `lists.preset` to `name` (and `lists.fetch.mirror` to `mirror`, if given) in the configuration
    file at `path`, every other line kept, and return the configuration it now gives. The new text is
    loaded whole before it replaces the file (atomically, owner and group kept): a file that does not
    load is never left behind. Raises ConfigError for an unknown preset or a file that cannot be read,
    edited or loaded."""
    catalogue = load_catalogue()
    if name not in catalogue.presets:
        raise ConfigError(f"no preset {name!r} (presets: {', '.join(catalogue.presets)})")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration: {e.strerror}") from e
    new = with_preset(path, text, name, mirror)
    # Checked as a whole before it replaces the file: a file that does not load is never left behind.
    trial = path.with_name(f".{path.name}.preset-{secrets.token_hex(4)}")
    try:
        trial.write_text(new, encoding="utf-8")
        config = load_config_in_force(trial)
    except ConfigError as e:
        raise ConfigError(str(e).replace(str(trial), str(path))) from e
    finally:
        trial.unlink(missing_ok=True)
    if new != text:
        before = path.stat()
        write_atomically(path, new.encode("utf-8"))
        if (before.st_uid, before.st_gid) != ((after := path.stat()).st_uid, after.st_gid):
            # install.sh runs this as root on /etc/appliance/appliance.yaml (root:appliance, 0640): the
            # services must still read the file.
            os.chown(path, before.st_uid, before.st_gid)
    return config
