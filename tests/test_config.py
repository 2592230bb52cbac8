"""params.yaml profiles: resolution rules and the invariants DVC relies on."""

from __future__ import annotations

import pytest
import yaml

from duotok.config import PROFILES, ConfigError, deep_merge, load_params, set_active_profile, stage_params
from duotok.paths import project_root


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}
    out = deep_merge(base, {"a": {"y": 20}, "b": [9]})
    assert out == {"a": {"x": 1, "y": 20}, "b": [9], "c": 3}
    assert base["a"]["y"] == 2, "the base must not be modified"


def test_every_section_declares_base_and_all_profiles():
    """dvc.yaml depends on <section>.${profile}: a missing profile key would break `dvc repro`."""
    params = load_params()
    assert params["profile"] in PROFILES
    for name, section in params.items():
        if name == "profile":
            continue
        assert set(section) == {"base", *PROFILES}, f"section {name!r} must have base + {PROFILES}"
        for profile in PROFILES:
            stage_params(name, profile, params)  # resolves without error


def test_profiles_change_what_they_claim():
    assert stage_params("synth", "smoke")["n_songs"] < stage_params("synth", "default")["n_songs"]
    assert stage_params("synth", "default")["n_songs"] >= 150


def test_unknown_profile_and_section_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown profile"):
        stage_params("synth", "huge")
    with pytest.raises(ConfigError, match="no section"):
        stage_params("nonexistent", "smoke")


def test_set_active_profile_keeps_comments(tmp_path):
    src = (project_root() / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(src)
    assert set_active_profile("paper", path) in (True, False)
    text = path.read_text()
    assert yaml.safe_load(text)["profile"] == "paper"
    assert text.count("#") == src.count("#"), "comments must survive the rewrite"
    with pytest.raises(ConfigError):
        set_active_profile("bogus", path)


# --------------------------------------------------------------------------- Params: resolved once, overrides

PARAMS = {"profile": "smoke",
          "stage": {"base": {"model": {"dim": 8, "noise": {"prob": 0.5, "std": 1.0}}, "train": {"steps": 10}},
                    "smoke": {"train": {"steps": 2}}, "default": {}, "paper": {}}}


def test_params_resolve_the_profile_and_overrides_deep_merge_on_top():
    from duotok.config import Params

    base = Params("smoke", PARAMS)
    assert base.section("stage") == stage_params("stage", "smoke", PARAMS)
    variant = base.with_overrides({"stage": {"model": {"noise": {"prob": 0.25}}}})
    assert variant.section("stage") == {"model": {"dim": 8, "noise": {"prob": 0.25, "std": 1.0}}, "train": {"steps": 2}}
    assert base.section("stage")["model"]["noise"]["prob"] == 0.5, "the original is untouched"
    nested = variant.with_overrides({"stage": {"train": {"steps": 7}}, "other": {}})
    assert nested.section("stage")["train"] == {"steps": 7} and nested.section("stage")["model"]["noise"]["prob"] == 0.25
    assert variant.section("stage")["train"] == {"steps": 2}


def test_params_overrides_do_not_alias_the_caller_mapping():
    from duotok.config import Params

    override = {"stage": {"model": {"noise": {"prob": 0.1}}}}
    params = Params("smoke", PARAMS).with_overrides(override)
    params.section("stage")["model"]["noise"]["prob"] = 99.0   # mutate a result
    override["stage"]["model"]["noise"]["prob"] = 0.9           # and the input
    assert params.section("stage")["model"]["noise"]["prob"] == 0.1
    with pytest.raises(ConfigError, match="must be a mapping"):
        Params("smoke", PARAMS).with_overrides({"stage": 3})


def test_runners_take_a_profile_name_or_resolved_params():
    from duotok.config import Params, as_params
    from duotok.train import finetune

    params = Params.load("smoke")
    assert as_params(params) is params and as_params("smoke").profile == "smoke"
    changed = params.with_overrides({"finetune": {"model": {"noise": {"prob": 0.123}}}})
    assert finetune.build_config(changed)[0].noise.prob == 0.123
    assert finetune.build_config("smoke")[0] == finetune.build_config(params)[0]


def test_libyamls_safe_loader_reads_params_yaml_as_the_python_one_does():
    """``load_params`` parses ``params.yaml`` with libyaml (5x faster on the AVX2 EPYC); that is safe only if
    both loaders give the same tree, types included."""
    assert hasattr(yaml, "CSafeLoader"), "this PyYAML was built without libyaml"
    text = (project_root() / "params.yaml").read_text(encoding="utf-8")
    fast, slow = yaml.load(text, Loader=yaml.CSafeLoader), yaml.safe_load(text)

    def typed(node):                      # 1 == 1.0 == True in Python: compare the types as well
        if isinstance(node, dict):
            return {k: typed(v) for k, v in node.items()}
        if isinstance(node, list):
            return [typed(v) for v in node]
        return (type(node).__name__, node)

    assert typed(fast) == typed(slow)
