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


# --------------------------------------------------------------------------- param_overrides

PARAMS = {"profile": "smoke",
          "stage": {"base": {"model": {"dim": 8, "noise": {"prob": 0.5, "std": 1.0}}, "train": {"steps": 10}},
                    "smoke": {"train": {"steps": 2}}, "default": {}, "paper": {}}}


def test_param_overrides_deep_merge_on_top_of_the_profile():
    from duotok.config import param_overrides

    with param_overrides({"stage": {"model": {"noise": {"prob": 0.25}}}}):
        p = stage_params("stage", "smoke", PARAMS)
    assert p == {"model": {"dim": 8, "noise": {"prob": 0.25, "std": 1.0}}, "train": {"steps": 2}}
    assert stage_params("stage", "smoke", PARAMS)["model"]["noise"]["prob"] == 0.5, "restored on exit"


def test_param_overrides_nest_and_are_restored_after_an_error():
    from duotok.config import param_overrides

    with param_overrides({"stage": {"train": {"steps": 5}, "model": {"dim": 4}}}):
        with param_overrides({"stage": {"train": {"steps": 7}}, "other": {}}):
            assert stage_params("stage", "smoke", PARAMS)["train"] == {"steps": 7}
            assert stage_params("stage", "smoke", PARAMS)["model"]["dim"] == 4, "outer layer still applies"
        assert stage_params("stage", "smoke", PARAMS)["train"] == {"steps": 5}
        with pytest.raises(RuntimeError), param_overrides({"stage": {"train": {"steps": 9}}}):
            raise RuntimeError("boom")
        assert stage_params("stage", "smoke", PARAMS)["train"] == {"steps": 5}
    plain = deep_merge(PARAMS["stage"]["base"], PARAMS["stage"]["smoke"])
    assert stage_params("stage", "smoke", PARAMS) == plain


def test_param_overrides_do_not_alias_the_caller_mapping():
    from duotok.config import param_overrides

    override = {"stage": {"model": {"noise": {"prob": 0.1}}}}
    with param_overrides(override):
        stage_params("stage", "smoke", PARAMS)["model"]["noise"]["prob"] = 99.0   # mutate a result
        override["stage"]["model"]["noise"]["prob"] = 0.9                          # and the input
        assert stage_params("stage", "smoke", PARAMS)["model"]["noise"]["prob"] == 0.1
    with pytest.raises(ConfigError, match="must be a mapping"), param_overrides({"stage": 3}):
        pass
