"""Head office's set in force, added to the configuration: its lists before the centre's own, its category
map (a centre's own `policy.categories` still wins), and which set that is (`set_dir`, `set_note`).

`appliance.config` reads appliance.yaml alone; whoever runs or reports the policy (the DNS filter, the
proxy, the dashboard, the compile, `appliance sync`) reads the configuration through here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from appliance.bundles.sets import named, pointed
from appliance.bundles.spec import read_spec
from appliance.config import HEAD_OFFICE_PREFIX, Config, ConfigError, load_config


def load_config_in_force(path: Path | None = None, *, set_dir: Path | None = None) -> Config:
    """`load_config`, with head office's set in force added (`with_set_in_force`). Raises ConfigError
    naming file:line on any mistake in the file (or, for a `set_dir` given, in that set's bundle.yaml)."""
    return with_set_in_force(load_config(path), set_dir=set_dir)


def with_set_in_force(config: Config, *, set_dir: Path | None = None) -> Config:
    """`config` with the head-office set it runs, where it has a `sync:` section: `set_dir` if given (a
    sync checking a new set: its mistakes raise ConfigError), else the set `current` names, or (that one
    damaged, half gone) the one before it, else the file's own lists, with a note saying why it is not
    `current`'s. Never raises for a damaged set in force: filtering must start whatever happened to the
    disk; `appliance sync` repairs it."""
    if config.sync is None:
        return config
    if set_dir is not None:
        return _with_set(config, set_dir)
    notes = []
    for which in ("current", "previous"):
        name = named(config.data_dir, which)
        folder = pointed(config.data_dir, which)
        if folder is None:
            if name:
                notes.append(f"set {name} ({which}) is damaged or missing")
            continue
        try:
            with_set = _with_set(config, folder)
        except ConfigError as e:
            notes.append(f"set {folder.name} ({which}) cannot be read: {e}")
            continue
        return replace(with_set, set_note="; ".join(notes) or None)
    return replace(config, set_dir=None, set_note="; ".join(notes) or None)


def _with_set(config: Config, set_dir: Path) -> Config:
    """`config` with the lists of the head-office set `set_dir`, and its category map unless the file
    names its own."""
    spec = read_spec(set_dir / "bundle", prefix=HEAD_OFFICE_PREFIX)
    policy = config.policy
    if spec.categories is not None and not config.own_categories:
        policy = replace(policy, categories=spec.categories)
    return replace(
        config, sources=(*spec.sources, *config.own_sources), policy=policy, set_dir=set_dir, set_note=None
    )
