"""The one checked-YAML reader for every file (appliance.yaml, the policy files, the catalogue, a bundle's
description): every mapping and list remembers its lines, for `file:line: what, hint` errors.

Scalars follow YAML 1.2 rather than PyYAML's 1.1: `15:30` is text (not the number 930), `no` and `off`
are text (not false), so times of day and answers like `youtube: off` read as written.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from filters.errors import ApplianceError

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"


class LineLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings and lists know their lines, with YAML 1.2 scalars."""


LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _BOOL)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
LineLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
LineLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
LineLoader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"), list("-+.0123456789")
)


class Mapping(dict[str, Any]):
    """A YAML mapping with `line` (its first line) and `key_lines` (the line of each key)."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str | None = None) -> int:
        return self.key_lines.get(key, self.line) if key else self.line


class Sequence(list[Any]):
    """A YAML list with `line` and `item_lines` (the line of each item)."""

    line: int
    item_lines: list[int]


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> Mapping:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        line = key.start_mark.line + 1
        first = seen.setdefault(str(key.value), line)
        if first != line:
            # YAML would keep the last silently: a second `block:` would drop the first one's entries.
            raise yaml.constructor.ConstructorError(
                None, None, f"{key.value!r} appears twice (first on line {first}): keep one", key.start_mark
            )
    mapping = Mapping({str(k): v for k, v in loader.construct_mapping(node, deep=True).items()})
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    return mapping


def _construct_sequence(loader: LineLoader, node: yaml.SequenceNode) -> Sequence:
    sequence = Sequence(loader.construct_sequence(node, deep=True))
    sequence.line = node.start_mark.line + 1
    sequence.item_lines = [item.start_mark.line + 1 for item in node.value]
    return sequence


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class YamlError(ValueError):
    """The text is not YAML; the message is `file:line: ...`."""


def empty_mapping(line: int = 1) -> Mapping:
    mapping = Mapping()
    mapping.line, mapping.key_lines = line, {}
    return mapping


def load_yaml(path: Path, text: str) -> Any:
    """Parse `text` read from `path`; raises YamlError naming file:line. Empty text is an empty mapping."""
    try:
        data = yaml.load(text, Loader=LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise YamlError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from e
    return empty_mapping() if data is None else data


def unknown_key_message(key: str, allowed: Iterable[str], what: str) -> str:
    """`unknown key 'blocked_categorys' in a profile: did you mean 'blocked_categories'? (known: ...)`."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r} in {what}: {hint}(known: {', '.join(allowed)})"


class ConfigError(ApplianceError):
    """The configuration file is wrong; the message starts with `file:line:` and says how to fix it."""


# The checks of appliance.yaml's sections (and a bundle's sources): the first mistake raises ConfigError.


def place(path: Path, mapping: Mapping, key: str | None = None) -> str:
    line = mapping.key_lines.get(key, mapping.line) if key else mapping.line
    return f"{path}:{line}"


def unknown_keys(path: Path, mapping: Mapping, allowed: set[str], what: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{place(path, mapping, key)}: {unknown_key_message(key, allowed, what)}")


def section(raw: Any, path: Path, data: Mapping, name: str, keys: set[str]) -> Mapping | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{place(path, data, name)}: {name} must be a mapping ({', '.join(sorted(keys))})")
    unknown_keys(path, raw, keys, name)
    return raw


def number(node: Mapping, key: str, path: Path, default: float, low: float, high: float, what: str) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{place(path, node, key)}: {what}.{key} must be a number from {low} to {high}")
    return value


def text_setting(node: Mapping, key: str, path: Path, what: str, default: str) -> str:
    value = node.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{place(path, node, key)}: {what}.{key} must be text")
    return value


def flag_setting(node: Mapping, key: str, path: Path, what: str, default: bool) -> bool:
    value = node.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{place(path, node, key)}: {what}.{key} must be true or false")
    return value


def network_list(node: Mapping, key: str, path: Path, what: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = node.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{place(path, node, key)}: {what}.{key} must be a list of networks")
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as e:
            raise ConfigError(
                f"{place(path, node, key)}: {what}.{key}: {item!r} is not a network like 192.168.10.0/24"
            ) from e
    return tuple(out)
