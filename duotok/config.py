"""``params.yaml`` — the single source of truth for every hyperparameter — and its profiles.

Layout (one section per pipeline stage, as iterative/example-get-started scopes params)::

    profile: default            # which profile the pipeline runs: smoke | default | paper
    synth:                      # a stage section
      base: {...}               #   values shared by every profile
      smoke: {...}              #   overrides for the smoke profile (may be empty)
      default: {...}
      paper: {...}

A stage's effective parameters are ``deep_merge(section.base, section[profile])``. DVC stages
depend on exactly ``<section>.base`` and ``<section>.${profile}``, so editing the paper profile
never re-runs the default pipeline.

:class:`Params` is the file resolved once for one profile: a runner is handed one and passes it down
(as audiocraft hands one config to its solver), and an ablation variant is ``params.with_overrides(...)``
— a modified config, not a hidden global.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from duotok.errors import ConfigError
from duotok.paths import project_root

PROFILES = ("smoke", "default", "paper")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """Read params.yaml (default: the project root's)."""
    path = Path(path) if path is not None else project_root() / "params.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    with open(path, encoding="utf-8") as fh:
        # libyaml's safe loader: the same tree as yaml.safe_load (tests/test_config.py), 5x faster, and every
        # stage parses the file ~25 times. A PyYAML without libyaml falls back to the Python loader.
        params = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return params


def active_profile(params: Mapping[str, Any] | None = None) -> str:
    """The profile named by params.yaml's ``profile`` key."""
    params = params if params is not None else load_params()
    profile = params.get("profile", "default")
    if profile not in PROFILES:
        raise ConfigError(f"params.yaml: unknown profile {profile!r}; expected one of {PROFILES}")
    return profile


def stage_params(
    section: str, profile: str | None = None, params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Effective parameters of one stage section for a profile (``None`` → the active profile)."""
    params = params if params is not None else load_params()
    profile = profile or active_profile(params)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {PROFILES}")
    if section not in params:
        raise ConfigError(f"params.yaml has no section {section!r}")
    block = params[section]
    if not isinstance(block, Mapping) or "base" not in block:
        raise ConfigError(f"params.yaml section {section!r} needs a 'base' mapping")
    unknown = set(block) - {"base", *PROFILES}
    if unknown:
        raise ConfigError(f"params.yaml section {section!r} has unknown keys {sorted(unknown)}")
    return deep_merge(block["base"], block.get(profile))


def _check_overrides(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides must map section -> overrides, got {type(overrides).__name__}")
    for section, value in overrides.items():
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"the override of section {section!r} must be a mapping, got {type(value).__name__}")
    return copy.deepcopy({k: dict(v) for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class Params:
    """``params.yaml`` resolved for one profile, with optional overrides on top; what runners are handed.

    ``section(name)`` = ``deep_merge(base, profile)`` of that section, then each override layer in turn.
    Immutable: :meth:`with_overrides` returns a new one, so a variant never leaks into its caller."""

    profile: str
    raw: Mapping[str, Any] = field(repr=False)
    overrides: tuple[Mapping[str, Mapping[str, Any]], ...] = ()

    @classmethod
    def load(cls, profile: str | None = None, path: str | Path | None = None) -> Params:
        """Read params.yaml once; ``profile`` ``None`` → the file's ``profile:`` key."""
        raw = load_params(path)
        profile = profile or active_profile(raw)
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}; expected one of {PROFILES}")
        return cls(profile, raw)

    def section(self, name: str) -> dict[str, Any]:
        merged = stage_params(name, self.profile, self.raw)
        for layer in self.overrides:
            merged = deep_merge(merged, layer.get(name))
        return merged

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> Params:
        """A copy whose ``section(s)`` is deep-merged with ``overrides[s]`` (the caller's mapping is copied)."""
        return Params(self.profile, self.raw, (*self.overrides, _check_overrides(overrides)))


def as_params(params: Params | str | None) -> Params:
    """A :class:`Params` from a Params, a profile name or ``None`` (the active profile): the runners'
    entry points accept all three, and resolve the file exactly once."""
    return params if isinstance(params, Params) else Params.load(params)


def fingerprint(obj: Any) -> str:
    """A short, stable hash of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def set_active_profile(profile: str, path: str | Path | None = None) -> bool:
    """Rewrite the ``profile:`` line of params.yaml in place (comments kept). Returns True if changed."""
    import re

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {PROFILES}")
    path = Path(path) if path is not None else project_root() / "params.yaml"
    text = path.read_text(encoding="utf-8")
    new, n = re.subn(r"(?m)^profile:\s*\S+", f"profile: {profile}", text, count=1)
    if n == 0:
        raise ConfigError(f"{path}: no top-level 'profile:' line to rewrite")
    if new == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
    return True
