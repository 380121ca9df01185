"""The one checked-YAML reader for every file (appliance.yaml, the policy files, the catalogue, a bundle's
description): every mapping and list remembers its lines, for `file:line: what, hint` errors.

Scalars follow YAML 1.2 rather than PyYAML's 1.1: `15:30` is text (not the number 930), `no` and `off`
are text (not false), so times of day and answers like `youtube: off` read as written.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

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
        first = seen.get(str(key.value))
        seen.setdefault(str(key.value), line)
        if first is not None:  # (on another line, or twice in one `{...}` on one line)
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


E = TypeVar("E")


class Reader:
    """One YAML file read for people, each mistake as `file:line: what, hint`. Without `errors`, the first
    mistake raises `error` (ConfigError: appliance.yaml, a bundle's description; the catalogue has its
    own); given a list, every mistake is collected there instead and reading goes on (the policy files
    report them all at once)."""

    def __init__(
        self, path: Path, errors: list[str] | None = None, *, error: Callable[[str], Exception] = ConfigError
    ) -> None:
        self.path = path
        self.errors = errors
        self.error_type = error

    def report(self, message: str) -> None:
        """A mistake, already `file:line: ...`: raised, or collected."""
        if self.errors is None:
            raise self.error_type(message)
        self.errors.append(message)

    def fail(self, node: Mapping | Sequence, key: str | int | None, message: str) -> Exception:
        """The error for a mistake at `key` in `node`, for the caller to raise (`from` its cause)."""
        return self.error_type(f"{self.where(node, key)}: {message}")

    def load(
        self, what: str = "", top: str = "expected a mapping of keys at the top of the file"
    ) -> Mapping | None:
        """The file's top mapping; None (mistakes collected) if it cannot be read, is not YAML or is not a
        mapping. `what` names the file in a read error (`cannot read the configuration: ...`), `top` says
        what the top must be."""
        try:
            data = load_yaml(self.path, self.path.read_text(encoding="utf-8"))
        except OSError as e:
            self.report(f"{self.path}: cannot read{' ' + what if what else ''}: {e.strerror}")
            return None
        except YamlError as e:
            self.report(str(e))
            return None
        if not isinstance(data, Mapping):
            self.report(f"{self.path}:1: {top}")
            return None
        return data

    def line(self, node: Mapping | Sequence, key: str | int | None = None) -> int:
        """The line of `key` in `node` (an item's, for a list), else of `node` itself."""
        if isinstance(node, Sequence):
            return node.item_lines[key] if isinstance(key, int) and key < len(node.item_lines) else node.line
        return node.line_of(key if isinstance(key, str) else None)

    def where(self, node: Mapping | Sequence, key: str | int | None = None) -> str:
        """`file:line` of `key` in `node`."""
        return f"{self.path}:{self.line(node, key)}"

    def error(self, node: Mapping | Sequence, key: str | int | None, message: str) -> None:
        self.report(f"{self.where(node, key)}: {message}")

    # appliance.yaml's settings: `section.key must be ...`

    def section(self, raw: Any, parent: Mapping, name: str, keys: set[str]) -> Mapping | None:
        """An optional section `name` of `parent`, with only `keys`; None if absent."""
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self.error(parent, name, f"{name} must be a mapping ({', '.join(sorted(keys))})")
            return None
        self.keys(raw, keys, name)
        return raw

    def number(self, node: Mapping, key: str, default: float, low: float, high: float, what: str) -> float:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            self.error(node, key, f"{what}.{key} must be a number from {low} to {high}")
            return default
        return value

    def setting_text(self, node: Mapping, key: str, what: str, default: str) -> str:
        value = node.get(key, default)
        if not isinstance(value, str):
            self.error(node, key, f"{what}.{key} must be text")
            return default
        return value

    def setting_flag(self, node: Mapping, key: str, what: str, default: bool) -> bool:
        value = node.get(key, default)
        if not isinstance(value, bool):
            self.error(node, key, f"{what}.{key} must be true or false")
            return default
        return value

    def networks(self, node: Mapping, key: str, what: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = node.get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(node, key, f"{what}.{key} must be a list of networks")
            return default
        out = []
        for item in value:
            try:
                out.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                self.error(node, key, f"{what}.{key}: {item!r} is not a network like 192.168.10.0/24")
        return tuple(out)

    # The policy files' entries: `what: 'key' must be ...`

    def keys(self, node: Mapping, allowed: set[str], what: str) -> None:
        for key in node:
            if key not in allowed:
                self.error(node, key, unknown_key_message(key, allowed, what))

    def entries(
        self, data: Mapping, key: str, label: str, allowed: set[str]
    ) -> Iterator[tuple[str, Mapping, str]]:
        """The named entries of a top-level section (`categories:`, `profiles:` ...), each a mapping
        with only `allowed` keys; yields (name, entry, "label 'name'") and reports the rest."""
        table = self.mapping(data, key, f"the {label} file", required=True)
        if table is None:
            return
        for name, node in table.items():
            what = f"{label} {name!r}"
            if not isinstance(node, Mapping):
                self.error(table, name, f"{what} must be a mapping ({', '.join(sorted(allowed))})")
                continue
            self.keys(node, allowed, what)
            yield name, node, what

    def references(self, node: Mapping, key: str, what: str, known: dict[str, E], kind: str) -> list[E]:
        """The items of a list of names (`watch: [...]`), each looked up in `known`; unknown ones reported."""
        found = []
        for name, line in self.names(node, key, what):
            if name in known:
                found.append(known[name])
            else:
                names = ", ".join(sorted(known)) or "none defined"
                self.report(f"{self.path}:{line}: {what}: unknown {kind} {name!r} (known: {names})")
        return found

    def mapping(self, node: Mapping, key: str, what: str, required: bool = False) -> Mapping | None:
        value = node.get(key)
        if value is None:
            if required:
                self.error(node, None, f"{what} needs {key!r}")
            return None
        if not isinstance(value, Mapping):
            self.error(node, key, f"{what}: {key!r} must be a mapping (key: value lines)")
            return None
        return value

    def text(self, node: Mapping, key: str, what: str, required: bool = False, default: str = "") -> str:
        value = node.get(key)
        if value is None:
            if required:
                self.error(node, None, f"{what} needs {key!r} (a text)")
            return default
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.error(node, key, f"{what}: {key!r} must be a text")
            return default
        return str(value).strip()

    def flag(self, node: Mapping, key: str, what: str, default: bool = False) -> bool:
        value = node.get(key, default)
        if not isinstance(value, bool):
            self.error(node, key, f"{what}: {key!r} must be true or false")
            return default
        return value

    def choice(
        self, node: Mapping, key: str, what: str, parse: Callable[[str], E], default: E, known: str
    ) -> E:
        value = node.get(key)
        if value is None:
            return default
        try:
            return parse(str(value).strip().lower())
        except (ValueError, KeyError):
            self.error(node, key, f"{what}: {key!r} is {value!r}; use one of: {known}")
            return default

    def names(self, node: Mapping, key: str, what: str) -> list[tuple[str, int]]:
        """A list of texts, each with its line."""
        value = node.get(key)
        if value is None:
            return []
        if not isinstance(value, Sequence):
            self.error(node, key, f"{what}: {key!r} must be a list like [a, b]")
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str | int) or isinstance(item, bool) or not str(item).strip():
                self.error(value, i, f"{what}: {key!r}: item {item!r} must be a text")
                continue
            out.append((str(item).strip(), value.item_lines[i]))
        return out
