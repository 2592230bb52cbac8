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
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml

from duotok.errors import ConfigError
from duotok.paths import project_root

PROFILES = ("smoke", "default", "paper")

#: Active :func:`param_overrides` layers, outermost first. A ContextVar rather than a global so that
#: threads and async tasks started elsewhere never see another caller's overrides.
_OVERRIDES: ContextVar[tuple[Mapping[str, Mapping[str, Any]], ...]] = ContextVar("duotok_param_overrides",
                                                                                  default=())


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
        params = yaml.safe_load(fh) or {}
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
    merged = deep_merge(block["base"], block.get(profile))
    for layer in _OVERRIDES.get():
        merged = deep_merge(merged, layer.get(section))
    return merged


@contextmanager
def param_overrides(overrides: Mapping[str, Mapping[str, Any]]) -> Iterator[None]:
    """Within the block, :func:`stage_params` deep-merges ``overrides[section]`` on top of its usual result.

    Why: the ablations retrain stages 2-3 with a few changed parameters through the unchanged stage
    runners, which read params.yaml themselves; editing the file would invalidate the main pipeline.
    Blocks nest (inner overrides merge on top of outer ones) and are undone on exit, errors included."""
    if not isinstance(overrides, Mapping):
        raise ConfigError("param_overrides expects a mapping section -> overrides, "
                          f"got {type(overrides).__name__}")
    for section, value in overrides.items():
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"param_overrides: the override of section {section!r} must be a mapping, "
                              f"got {type(value).__name__}")
    layer = copy.deepcopy({k: v for k, v in overrides.items() if v is not None})
    token = _OVERRIDES.set((*_OVERRIDES.get(), layer))
    try:
        yield
    finally:
        _OVERRIDES.reset(token)


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
