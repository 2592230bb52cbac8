"""The generative separator: teacher forcing, the delay pattern, the KV cache and generation agree;
cross-track conditioning; seeded sampling; save/load; the Separator view."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from gen_helpers import features_for, random_codes, tiny_codec, tiny_config, tiny_model  # noqa: E402

from duotok.models.bestrq import BestRQConfig, BestRQModel, MelConfig  # noqa: E402
from duotok.models.encoder import EncoderConfig  # noqa: E402
from duotok.separation import STEMS, Separator  # noqa: E402
from duotok.separation.generative import (  # noqa: E402
    GenerativeSeparator,
    GenerativeSeparatorConfig,
    TokenLMSeparator,
    sample_tokens,
)
from duotok.separation.stem_tokens import apply_delay, delay_pad_mask, undo_delay  # noqa: E402


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def test_greedy_generation_reproduces_an_overfitted_crop():
    """Teacher forcing, delay pattern, KV cache and generation agree: after overfitting one crop,
    greedy decoding through the cache gives back exactly the training tokens."""
    model = tiny_model(seed=0, stem_order=("bass", "vocals", "other", "drums"))
    feats, codes = features_for(model, 1, 8), random_codes(model, 1, 8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(200):
        loss, metrics = model(feats, codes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if metrics["acc"] == 1.0 and metrics["ce"] < 0.3:
            break
    assert metrics["acc"] == 1.0
    delayed = model.generate(feats, 8, temperature=0.0)
    assert delayed.shape == (1, 4, 2, 9)
    assert torch.equal(undo_delay(delayed[0], pad_id=model.config.pad_id), codes[0])


@pytest.mark.parametrize("cross_track", [True, False])
@pytest.mark.parametrize("encoder", ["conformer", "mixture_tokens"])
def test_kv_cache_generation_gives_the_full_forward_logits(cross_track, encoder):
    model = tiny_model(seed=1, cross_track=cross_track, encoder=encoder, n_codebooks=3,
                       stem_order=("drums", "vocals", "other", "bass")).eval()
    feats, codes = features_for(model, 2, 6), random_codes(model, 2, 6)
    with torch.no_grad():
        full, targets = model.logits(feats, codes)
    delayed, cached = model.generate(feats, 6, forced=codes, return_logits=True)
    assert [x.shape for x in cached] == [x.shape for x in full]
    assert _max_diff(full, cached) < 1e-4
    assert torch.equal(delayed, apply_delay(codes, model.config.pad_id))
    assert bool((targets[..., delay_pad_mask(3, 6)] == -100).all())       # delay cells are never scored


def test_a_padded_row_is_laid_out_as_generation_sees_a_short_song():
    """Packing: the logits of a row with 4 real frames of 7 equal those of the 4-frame song alone."""
    model = tiny_model(seed=2).eval()
    feats, codes = features_for(model, 2, 7), random_codes(model, 2, 7)
    feats[1, 4 * 320 :] = 0
    with torch.no_grad():
        padded, _ = model.logits(feats, codes, torch.tensor([7, 4]))
        alone, _ = model.logits(feats[1:, : 4 * 320], codes[1:, ..., :4])
    steps = 4 + model.config.n_codebooks - 1
    assert _max_diff([p[1:, :, :steps] for p in padded], alone) < 1e-4


def _stem_logits(model: GenerativeSeparator, feats: torch.Tensor, codes: torch.Tensor, stem: str) -> torch.Tensor:
    logits, _ = model.logits(feats, codes)
    j = model.config.stem_order.index(stem)
    if model.config.cross_track:
        return torch.stack([lg[:, j] for lg in logits])
    return torch.stack([lg[j :: 4, 0] for lg in logits])


@pytest.mark.parametrize("cross_track", [True, False])
def test_cross_track_conditions_later_stems_on_earlier_ones(cross_track):
    model = tiny_model(seed=3, cross_track=cross_track).eval()
    feats, codes = features_for(model, 1, 5), random_codes(model, 1, 5)
    other = codes.clone()
    other[:, STEMS.index("vocals")] = (other[:, STEMS.index("vocals")] + 1) % model.config.codebook_size
    with torch.no_grad():
        drums_before = _stem_logits(model, feats, codes, "drums")      # drums come after vocals
        drums_after = _stem_logits(model, feats, other, "drums")
        vocals_same = _stem_logits(model, feats, codes, "vocals")
    if cross_track:
        assert float((drums_before - drums_after).abs().max()) > 1e-4
    else:
        torch.testing.assert_close(drums_after, drums_before)
    assert vocals_same.shape == drums_before.shape


def test_sampling_is_seeded_and_respects_top_k_and_top_p():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0]]).repeat(4000, 1)
    draws = sample_tokens(logits, 1.0, top_k=3, top_p=1.0, generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1, 2}
    nucleus = sample_tokens(logits, 1.0, top_k=0, top_p=0.7, generator=torch.Generator().manual_seed(0))
    assert set(nucleus.tolist()) == {0, 1}                      # p = 0.63, 0.23: the first two reach 0.7
    assert sample_tokens(logits[:2], 0.0).tolist() == [0, 0]
    again = sample_tokens(logits, 1.0, top_k=3, top_p=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)

    model = tiny_model(seed=4).eval()
    feats = features_for(model, 1, 6)
    a = model.generate(feats, 6, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(7))
    b = model.generate(feats, 6, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(7))
    c = model.generate(feats, 6, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    pads = delay_pad_mask(2, 6)
    assert bool((a[..., pads] == model.config.pad_id).all()) and bool((a[..., ~pads] < 16).all())


def test_save_load_round_trip(tmp_path):
    model = tiny_model(seed=5, cross_track=False, stem_order=("other", "bass", "drums", "vocals")).eval()
    model.save_pretrained(tmp_path / "gen")
    loaded = GenerativeSeparator.from_pretrained(tmp_path / "gen")
    assert loaded.config == model.config
    feats, codes = features_for(model, 1, 4), random_codes(model, 1, 4)
    with torch.no_grad():
        assert _max_diff(model.logits(feats, codes)[0], loaded.logits(feats, codes)[0]) == 0


def test_frozen_ssl_encoder(tmp_path):
    torch.manual_seed(0)
    ssl = BestRQModel(BestRQConfig(mel=MelConfig(n_mels=16, n_fft=512, win_length=512),
                                   encoder=EncoderConfig(n_mels=16, dim=16, n_lower=1, n_upper=1, n_heads=2),
                                   codebook_size=32))
    ssl.save_pretrained(tmp_path / "ssl")
    model = GenerativeSeparator.build(tiny_config(encoder="frozen_ssl", ssl_dir=str(tmp_path / "ssl")))
    frozen = model.prefix_encoder.ssl
    assert not any(p.requires_grad for p in frozen.parameters()) and not frozen.training
    model.train()
    assert not frozen.training
    feats, codes = features_for(model, 2, 7), random_codes(model, 2, 7)
    assert model.prefix(feats).shape == (2, 7, 32)
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    loss, _ = model(feats, codes, torch.tensor([7, 5]))
    loss.backward()
    assert all(p.grad is None for p in frozen.parameters())
    assert model.prefix_encoder.proj.weight.grad is not None
    model.save_pretrained(tmp_path / "gen")
    (tmp_path / "ssl" / "model.safetensors").unlink()                # the separator is self-contained
    loaded = GenerativeSeparator.from_pretrained(tmp_path / "gen")
    for key, value in before.items():
        torch.testing.assert_close(loaded.prefix_encoder.ssl.state_dict()[key], value)
    with pytest.raises(ValueError, match="ssl_dir"):
        GenerativeSeparator.build(tiny_config(encoder="frozen_ssl"))


@pytest.mark.parametrize("encoder", ["conformer", "mixture_tokens"])
def test_token_lm_separator_is_a_seeded_separator(encoder):
    codec = tiny_codec()
    sep = TokenLMSeparator(tiny_model(seed=6, encoder=encoder), codec, seed=3)
    assert isinstance(sep, Separator) and sep.sample_rate == 16000
    mixture = 0.1 * torch.randn(2000)                                # not a multiple of the 320-sample hop
    out = sep.separate(mixture)
    assert tuple(out) == STEMS and all(v.shape == (2000,) for v in out.values())
    again = sep.separate(mixture)
    assert all(torch.equal(out[s], again[s]) for s in STEMS)


def test_config_and_codec_checks():
    with pytest.raises(ValueError, match="permutation"):
        GenerativeSeparatorConfig(stem_order=("vocals", "vocals", "bass", "other"))
    with pytest.raises(ValueError, match="encoder"):
        GenerativeSeparatorConfig(encoder="wavlm")
    with pytest.raises(ValueError, match="codebook"):
        TokenLMSeparator(tiny_model(codebook_size=32), tiny_codec())
    model = tiny_model()
    with pytest.raises(ValueError, match="max_frames"):
        model.generate(features_for(model, 1, 41), 41)
    with pytest.raises(ValueError, match="outside"):
        model(features_for(model, 1, 4), random_codes(model, 1, 4) + 16)
