"""The ablation variants of ``params.yaml: ablation``, read into :class:`Variant` and checked up front.

Why so strict: a variant is hours of training on the ``paper`` profile, and its overrides are merged
into the stage sections by key. A misspelt key (``finetune.model.noise.prb``) would otherwise be
merged silently and the variant would train the reference again under another name; a name with a
dash or a dot would break its DVC stage (``ablation@<name>``) and ``dvc exp run -S`` paths.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from duotok.config import PROFILES, Params, deep_merge, load_params, stage_params
from duotok.errors import ConfigError

FAMILIES = ("reference", "noise", "routing", "heads")
ROUTINGS = ("dual", "shared", "separated")
#: The stage sections a variant may override, in training order.
SECTIONS = ("finetune", "quantize")
VARIANT_KEYS = ("family", "description", "routing", *SECTIONS)
#: DVC stage names and ``-S`` dotted paths: ASCII letters, digits and underscores, no leading digit.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Variant:
    """One ablation: its family, a one-line description, the stage-3 routing and the overrides of the
    finetune / quantize sections it applies on top of the shared budget."""

    name: str
    family: str
    description: str
    routing: str = "dual"
    finetune: dict[str, Any] = field(default_factory=dict)
    quantize: dict[str, Any] = field(default_factory=dict)

    @property
    def retrains_stage2(self) -> bool:
        """Whether the variant needs its own stage 2; the others reuse the reference's (same budget,
        same overrides, so training it again would only cost time)."""
        return self.family == "reference" or bool(self.finetune)

    @property
    def uses_reference(self) -> bool:
        """Whether training needs the reference variant's output: its stage 2 (variants that do not
        retrain it) or its separator (a stage 2 without the mask head cannot separate mixtures). DVC
        runs these after the reference (``dvc.yaml: ablation_from_reference``)."""
        if self.family == "reference":
            return False
        mask = self.finetune.get("model", {}).get("heads", {}).get("mask", True)
        return not self.retrains_stage2 or mask is False

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _fail(owner: str, problem: str) -> ConfigError:
    return ConfigError(f"params.yaml: ablation {owner}: {problem}")


def _known_keys(section: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every key the section may hold: its base merged with all profiles, and for ``train`` every
    field of :class:`~duotok.train.loop.TrainConfig` (profiles set some only where they differ)."""
    from duotok.train.loop import TrainConfig  # torch: only when validating

    block = params.get(section)
    if not isinstance(block, Mapping) or not isinstance(block.get("base"), Mapping):
        raise ConfigError(f"params.yaml has no section {section!r} with a 'base' mapping to override")
    tree = dict(block["base"])
    for profile in PROFILES:
        tree = deep_merge(tree, block.get(profile))
    if isinstance(tree.get("train"), Mapping):
        tree["train"] = {**dict.fromkeys(TrainConfig.__dataclass_fields__), **tree["train"]}
    return tree


def _check_keys(override: Any, known: Mapping[str, Any], path: str, owner: str) -> None:
    """Raise naming the first key path of ``override`` that ``known`` lacks, or a mapping/value mix-up."""
    if not isinstance(override, Mapping):
        raise _fail(owner, f"{path} must be a mapping, got {override!r}")
    for key, value in override.items():
        where = f"{path}.{key}"
        if key not in known:
            raise _fail(owner, f"{where} is not a parameter of params.yaml: {path.split('.')[0]} "
                               f"(known at {path}: {', '.join(sorted(map(str, known)))})")
        if isinstance(known[key], Mapping):
            _check_keys(value, known[key], where, owner)
        elif isinstance(value, Mapping):
            raise _fail(owner, f"{where} is a single value in params.yaml, not a mapping")


def _section_block(entry: Mapping[str, Any], section: str, owner: str) -> dict[str, Any]:
    value = entry.get(section)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(owner, f"{section} must be a mapping of overrides, got {value!r}")
    return deep_merge({}, value)


def _variant(name: Any, entry: Any, known: Mapping[str, Mapping[str, Any]]) -> Variant:
    owner = f"variant {name!r}"
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise _fail(owner, "the name must use only ASCII letters, digits and underscores and not start "
                           "with a digit (it becomes a DVC stage name and a `dvc exp run -S` path)")
    if not isinstance(entry, Mapping):
        raise _fail(owner, f"expected a mapping with keys {VARIANT_KEYS}, got {entry!r}")
    unknown = sorted(set(entry) - set(VARIANT_KEYS))
    if unknown:
        raise _fail(owner, f"unknown key(s) {unknown}; a variant takes {list(VARIANT_KEYS)}")
    family = entry.get("family")
    if family not in FAMILIES:
        raise _fail(owner, f"family {family!r} is not one of {FAMILIES}")
    routing = entry.get("routing", "dual")
    if routing not in ROUTINGS:
        raise _fail(owner, f"routing {routing!r} is not one of {ROUTINGS}")
    if routing != "dual" and family != "routing":
        raise _fail(owner, f"routing {routing!r} belongs to the routing family, not {family!r} "
                           "(one factor per variant)")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise _fail(owner, f"description must be a string, got {description!r}")
    blocks = {}
    for section in SECTIONS:
        blocks[section] = _section_block(entry, section, owner)
        _check_keys(blocks[section], known[section], section, owner)
    return Variant(name, family, description, routing, blocks["finetune"], blocks["quantize"])


def _ablation(profile: Params | str | None,
              params: Mapping[str, Any] | None) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """The ``ablation`` section and the raw params it was read from: from a resolved :class:`Params` (the
    caller's, read once), or from ``params`` (a raw mapping; the file when ``None``) for a profile name."""
    if isinstance(profile, Params):
        if params is not None:
            raise ValueError("pass either a resolved Params or a profile name with raw params, not both")
        return profile.section("ablation"), profile.raw
    params = params if params is not None else load_params()
    return stage_params("ablation", profile, params), params


def _budget(cfg: Mapping[str, Any], known: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    budget = cfg.get("budget") or {}
    if not isinstance(budget, Mapping):
        raise _fail("budget", f"expected a mapping of {SECTIONS}, got {budget!r}")
    unknown = sorted(set(budget) - set(SECTIONS))
    if unknown:
        raise _fail("budget", f"unknown section(s) {unknown}; the budget overrides {list(SECTIONS)}")
    if known is not None:
        for section in SECTIONS:
            _check_keys(budget.get(section) or {}, known[section], section, "budget")
    return {section: dict(budget.get(section) or {}) for section in SECTIONS}


def load_variants(profile: Params | str | None = None, params: Mapping[str, Any] | None = None) -> dict[str, Variant]:
    """All variants of ``ablation.variants`` (params order), validated; the reference among them."""
    cfg, params = _ablation(profile, params)
    known = {section: _known_keys(section, params) for section in SECTIONS}
    _budget(cfg, known)
    raw = cfg.get("variants")
    if not isinstance(raw, Mapping) or not raw:
        raise _fail("variants", "expected a non-empty mapping name -> variant")
    variants = {name: _variant(name, entry, known) for name, entry in raw.items()}
    reference = cfg.get("reference")
    if reference not in variants:
        raise _fail(f"reference {reference!r}", f"no such variant under ablation.variants "
                                                f"(have: {', '.join(variants)})")
    for variant in variants.values():
        if (variant.name == reference) != (variant.family == "reference"):
            raise _fail(f"variant {variant.name!r}", f"only the reference variant ({reference!r}) may, and "
                                                     "it must, have family 'reference'")
    return variants


def reference_name(profile: Params | str | None = None, params: Mapping[str, Any] | None = None) -> str:
    """The name of the reference variant (``ablation.reference``)."""
    return str(_ablation(profile, params)[0]["reference"])


def overrides_for(variant: Variant, profile: Params | str | None = None,
                  params: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """``{section: budget[section] deep-merged with the variant's own overrides}`` for finetune and
    quantize: what :meth:`duotok.config.Params.with_overrides` applies to the variant's config."""
    cfg, _ = _ablation(profile, params)
    budget = _budget(cfg)
    return {section: deep_merge(budget[section], getattr(variant, section)) for section in SECTIONS}


def by_family(variants: Mapping[str, Variant] | list[Variant]) -> dict[str, list[Variant]]:
    """Variants grouped by family, families in :data:`FAMILIES` order (absent ones left out)."""
    items = list(variants.values()) if isinstance(variants, Mapping) else list(variants)
    groups = {family: [v for v in items if v.family == family] for family in FAMILIES}
    return {family: group for family, group in groups.items() if group}


def metrics_file(metrics_dir: str | os.PathLike[str], name: str, train_seed: int = 0) -> Path:
    """Where one trained variant's measurements go: ``<metrics_dir>/<name>.json`` for training seed 0
    (the main run), ``<metrics_dir>/seed<S>/<name>.json`` for training seed ``S``."""
    folder = Path(metrics_dir) if train_seed == 0 else Path(metrics_dir) / f"seed{int(train_seed)}"
    return folder / f"{name}.json"
