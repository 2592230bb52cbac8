"""The frozen-feature baselines' codebook fit is a function of ``baselines.fit.seed``, not of whatever state the
global RNG was left in: two fits from different RNG states give the same codebooks."""

from __future__ import annotations

import pytest
import torch

import duotok.train.baselines as baselines
from duotok.codecs.feature_tokenizer import FeatureTokenizer, FeatureTokenizerConfig
from duotok.config import Params
from duotok.models.encoder import DuoEncoder


def _frozen_tokenizer_from_fixed_weights(cfg: FeatureTokenizerConfig, source: str, params: Params) -> FeatureTokenizer:
    """Stands in for loading the stage-1/2 checkpoint: the same frozen encoder every time, built without
    touching the global RNG, so the tokenizer's own parameters draw from whatever state the caller left."""
    with torch.random.fork_rng():
        torch.manual_seed(123)
        encoder = DuoEncoder(cfg.encoder)
        proj_in = torch.nn.Linear(cfg.encoder.dim, cfg.bottleneck_dim) if cfg.bottleneck_dim else None
    return FeatureTokenizer.from_encoder(cfg, encoder, proj_in) if proj_in else FeatureTokenizer.from_encoder(cfg, encoder)


@pytest.mark.parametrize("codec", ["mixture_vq", "mucodec"])
def test_the_codebook_fit_does_not_depend_on_the_global_rng(tmp_path, make_duosynth, monkeypatch, codec):
    root = make_duosynth(tmp_path / "data", (("a", "train", 1.0), ("b", "train", 0.6), ("c", "valid", 0.6)))
    monkeypatch.setattr(baselines, "frozen_tokenizer", _frozen_tokenizer_from_fixed_weights)
    params = Params.load("smoke").with_overrides({"baselines": {"fit": {"simvq_steps": 3}}})
    fits = []
    for state in (1, 2):
        torch.manual_seed(state)                  # another stage ran before, or another order of stages
        tokenizer, info = baselines.train_feature_tokenizer(codec, params, root)
        fits.append(tokenizer.state_dict())
    assert fits[0].keys() == fits[1].keys()
    for name, value in fits[0].items():
        assert torch.equal(value, fits[1][name]), name
