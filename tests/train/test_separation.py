"""``duotok train separation``: the runner trains Open-Unmix, the generative model and a declared
variant on a tiny corpus with the smoke settings, the variant's overrides reach the model config, the
variants borrow the main model's token cache, and unknown systems or variants are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "separation"))
from gen_helpers import tiny_codec  # noqa: E402

from duotok.config import Params  # noqa: E402
from duotok.errors import ConfigError  # noqa: E402
from duotok.separation.generative import GenerativeSeparator  # noqa: E402
from duotok.separation.openunmix import OpenUnmix  # noqa: E402
from duotok.train import separation as ts  # noqa: E402

SONGS = (("song-a", "train", 2.0), ("song-b", "train", 1.5), ("song-c", "valid", 1.2), ("song-d", "test", 1.2))


@pytest.fixture
def setup(tmp_path, make_duosynth) -> Params:
    """The smoke profile, pointed at a tiny corpus, a tiny 3 x 16 RVQ codec and an output folder."""
    root = make_duosynth(tmp_path / "corpus", SONGS)
    codec_dir = tiny_codec().save_pretrained(tmp_path / "codec")
    return Params.load("smoke").with_overrides({"separation": {
        "data": {"root": str(root), "out_dir": str(tmp_path / "out")},
        "generative": {"codec_dir": str(codec_dir), "segment_seconds": 0.4}}})


def test_openunmix_trains_and_records_its_budget(setup, tmp_path):
    path = ts.run("openunmix", setup)
    assert path == tmp_path / "out" / "openunmix" / "model"
    model = OpenUnmix.from_pretrained(path)
    assert model.config.hidden_size == 32          # the smoke block reached the model
    result = json.loads((path.parent / "result.json").read_text())
    assert result["system"] == "openunmix" and result["steps"] == 8 and result["profile"] == "smoke"
    assert result["parameters"]["trainable"] > 0 and result["seconds_per_step"] > 0 and result["seconds"] > 0


def test_a_variant_trains_with_its_overrides_and_borrows_the_token_cache(setup, tmp_path):
    ts.run("generative", setup)
    main = tmp_path / "out" / "generative"
    assert (main / "stem_tokens.pt").is_file()
    path = ts.run("variant:independent", setup, seed=1)
    assert path == tmp_path / "out" / "variants" / "independent" / "seed1" / "model"
    model = GenerativeSeparator.from_pretrained(path)
    assert model.config.cross_track is False                    # the variant's override
    assert model.config.codebook_size == 16                     # read from the codec, not params
    result = json.loads((path.parent / "result.json").read_text())
    assert result["steps"] == 4, "the ablation budget (separation.ablation.train) applies"
    assert result["borrowed_cache"] and result["seed"] == 1 and result["train_config"]["seed"] == 1
    assert result["variant"]["name"] == "independent"
    assert not (path.parent / "stem_tokens.pt").exists(), "the borrowed copy is removed once trained"
    order = GenerativeSeparator.from_pretrained(ts.run("variant:order_reversed", setup))
    assert order.config.stem_order == ("other", "bass", "drums", "vocals")


def test_variant_params_merge_the_budget_and_the_model_overrides(setup):
    p = ts.variant_params(setup, "no_encoder").section("separation")["generative"]
    assert p["model"]["encoder"] == "mixture_tokens" and p["model"]["dim"] == 32   # smoke size kept
    assert p["train"]["steps"] == 4 and p["train"]["batch_size"] == 2
    assert setup.section("separation")["generative"]["model"]["encoder"] == "conformer", "no leak into the caller"
    frozen = ts.variant_params(setup, "frozen_ssl").section("separation")["generative"]["model"]
    assert frozen["ssl_dir"] == "models/pretrain/model"


def test_unknown_systems_and_variants_are_refused(setup):
    with pytest.raises(ValueError, match="unknown separation system 'demucs'"):
        ts.run("demucs", setup)
    with pytest.raises(ValueError, match="unknown separation system"):
        ts.parse_system("variant:")
    with pytest.raises(ValueError, match="unknown separation variant 'wider'"):
        ts.run("variant:wider", setup)
    with pytest.raises(SystemExit):
        ts.main(["--system", "nope"])


def test_declared_variants_are_checked_before_anything_trains(setup):
    typo = setup.with_overrides({"separation": {"variants": {"bad": {"model": {"cross_trak": False}}}}})
    with pytest.raises(ConfigError, match="cross_trak"):
        ts.load_separation_variants(typo)
    derived = setup.with_overrides({"separation": {"variants": {"bad": {"model": {"codebook_size": 8}}}}})
    with pytest.raises(ConfigError, match="derived"):
        ts.load_separation_variants(derived)
    extra = setup.with_overrides({"separation": {"variants": {"bad": {"modle": {}}}}})
    with pytest.raises(ConfigError, match="bad"):
        ts.load_separation_variants(extra)
    names = setup.with_overrides({"separation": {"ablation": {"reference": "missing"}}})
    with pytest.raises(ConfigError, match="missing"):
        ts.load_separation_variants(names)
    seeds = setup.with_overrides({"separation": {"ablation": {"seeds": [0, 0]}}})
    with pytest.raises(ConfigError, match="seeds"):
        ts.ablation_seeds(seeds)


def test_every_profile_declares_valid_variants_and_seeds():
    for profile in ("smoke", "default", "paper"):
        params = Params.load(profile)
        assert "reference" in ts.load_separation_variants(params)
        assert ts.ablation_seeds(params)
