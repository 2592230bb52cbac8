"""The ablation variants of params.yaml: what they resolve to, and the mistakes they refuse."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from duotok.ablations.variants import FAMILIES, Variant, by_family, load_variants, overrides_for
from duotok.config import load_params
from duotok.errors import ConfigError


@pytest.fixture(scope="module")
def params() -> dict:
    return load_params()


def with_variants(params: dict, **variants) -> dict:
    """A copy of params whose ablation.base.variants gets ``variants`` added (None removes one)."""
    out = copy.deepcopy(params)
    table = out["ablation"]["base"]["variants"]
    for name, entry in variants.items():
        if entry is None:
            table.pop(name, None)
        else:
            table[name] = entry
    return out


def test_the_shipped_variants_load_for_every_profile(params):
    for profile in ("smoke", "default", "paper"):
        variants = load_variants(profile, params)
        reference = params["ablation"]["base"]["reference"]
        assert variants[reference].family == "reference" and variants[reference].retrains_stage2
        assert {v.family for v in variants.values()} == set(FAMILIES)
    routing = [v for v in variants.values() if v.family == "routing"]
    assert routing and all(not v.retrains_stage2 for v in routing), "routing reuses the reference's stage 2"
    assert {v.routing for v in routing} == {"shared", "separated"}
    assert all(v.retrains_stage2 for v in variants.values() if v.family in ("noise", "heads"))


def test_overrides_merge_the_budget_under_the_variant(params):
    variants = load_variants("smoke", params)
    ov = overrides_for(variants["noise_prob25"], "smoke", params)
    budget = params["ablation"]["smoke"]["budget"]
    assert ov["finetune"]["train"] == budget["finetune"]["train"]
    assert ov["finetune"]["model"] == {"noise": {"prob": 0.25}}
    assert ov["quantize"] == budget["quantize"], "the budget applies to stage 3 too"
    ref = overrides_for(variants["reference"], "smoke", params)
    assert ref == {"finetune": budget["finetune"], "quantize": budget["quantize"]}
    # The variant's own value wins over the budget's.
    p = with_variants(params, longer={"family": "noise", "description": "x",
                                      "finetune": {"train": {"steps": 9}, "model": {"noise": {"std": 2.0}}}})
    ov = overrides_for(load_variants("smoke", p)["longer"], "smoke", p)
    assert ov["finetune"] == {"train": {"steps": 9}, "model": {"noise": {"std": 2.0}}}


def test_by_family_keeps_family_and_params_order(params):
    variants = load_variants("smoke", params)
    groups = by_family(variants)
    assert list(groups) == list(FAMILIES)
    assert [v.name for v in groups["noise"]] == [n for n, v in variants.items() if v.family == "noise"]
    assert by_family(list(variants.values())) == groups


def test_variant_is_frozen_and_defaults_to_dual_routing():
    v = Variant("x", "noise", "d")
    assert v.routing == "dual" and v.finetune == {} and v.quantize == {} and not v.retrains_stage2
    assert Variant("r", "reference", "d").retrains_stage2
    assert Variant("y", "heads", "d", finetune={"model": {}}).retrains_stage2
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.name = "z"


@pytest.mark.parametrize("name, entry, match", [
    ("typo", {"family": "noise", "description": "d", "finetune": {"model": {"noise": {"prb": 0.3}}}},
     r"'typo'.*finetune\.model\.noise\.prb"),
    ("typo2", {"family": "heads", "description": "d", "quantize": {"model": {"heads": {"mask": False}}}},
     r"'typo2'.*quantize\.model\.heads\.mask"),
    ("typo3", {"family": "noise", "description": "d", "finetune": {"trian": {"steps": 3}}},
     r"finetune\.trian"),
    ("badfam", {"family": "nosie", "description": "d"}, r"'badfam'.*family 'nosie'"),
    ("badroute", {"family": "routing", "routing": "single", "description": "d"},
     r"'badroute'.*routing 'single'"),
    ("notrouting", {"family": "noise", "routing": "shared", "description": "d"},
     r"'notrouting'.*routing family"),
    ("bad-name", {"family": "noise", "description": "d"}, r"'bad-name'.*letters, digits and underscores"),
    ("bad.name", {"family": "noise", "description": "d"}, r"'bad\.name'"),
    ("1st", {"family": "noise", "description": "d"}, r"'1st'"),
    ("extra", {"family": "noise", "description": "d", "finetunes": {}}, r"'extra'.*unknown key.*finetunes"),
    ("leaf", {"family": "noise", "description": "d", "finetune": {"model": {"noise": 0.5}}},
     r"'leaf'.*finetune\.model\.noise must be a mapping"),
    ("deep", {"family": "noise", "description": "d", "finetune": {"model": {"noise": {"prob": {"x": 1}}}}},
     r"finetune\.model\.noise\.prob is a single value"),
    ("second_ref", {"family": "reference", "description": "d"}, r"'second_ref'.*family 'reference'"),
])
def test_invalid_variants_are_clear_config_errors(params, name, entry, match):
    with pytest.raises(ConfigError, match=match):
        load_variants("smoke", with_variants(params, **{name: entry}))


def test_train_settings_not_in_params_are_still_valid_overrides(params):
    """TrainConfig fields that no profile sets (min_lr_ratio) are real parameters, not typos."""
    p = with_variants(params, sched={"family": "noise", "description": "d",
                                     "finetune": {"train": {"min_lr_ratio": 0.0}}})
    assert load_variants("smoke", p)["sched"].finetune == {"train": {"min_lr_ratio": 0.0}}


def test_missing_reference_and_budget_typos(params):
    p = with_variants(params, reference=None)
    with pytest.raises(ConfigError, match=r"reference 'reference'.*no such variant"):
        load_variants("smoke", p)
    p = copy.deepcopy(params)
    p["ablation"]["smoke"]["budget"]["finetune"] = {"train": {"stpes": 1}}
    with pytest.raises(ConfigError, match=r"budget.*finetune\.train\.stpes"):
        load_variants("smoke", p)
    p["ablation"]["smoke"]["budget"] = {"finetun": {}}
    with pytest.raises(ConfigError, match=r"budget.*finetun"):
        load_variants("smoke", p)
