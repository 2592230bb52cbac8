"""Stage 3: frozen lower encoder, hard routing by track, initialisation from stage 2."""

from __future__ import annotations

import pytest
import torch

from duotok.models.dualtrack import ACCOMPANIMENT, VOCAL, DualTrackConfig, DualTrackModel
from duotok.models.encoder import EncoderConfig
from duotok.models.multitask import MultiTaskConfig, MultiTaskModel
from duotok.text import CharVocab

ENC = EncoderConfig(dim=32, n_lower=1, n_upper=1, n_heads=2)


def stage2():
    torch.manual_seed(0)
    return MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8))


def model():
    return DualTrackModel.from_finetune(stage2(), DualTrackConfig(encoder=ENC, bottleneck_dim=8,
                                                                  codebook_sizes=(64, 32)))


def inputs(n=16000):
    torch.manual_seed(1)
    ids, lens = CharVocab().encode_batch(["la la", "seel"])
    return (torch.randn(2, n) * 0.1, torch.randn(2, n) * 0.1, torch.tensor([n, n // 2]), torch.rand(2, 12, 101),
            torch.rand(2, 12, 101), ids, lens, torch.tensor([True, True]))


def test_lower_encoder_is_frozen_and_does_not_move():
    m = model()
    before = {k: v.clone() for k, v in m.encoder.lower.state_dict().items()}
    before_down = {k: v.clone() for k, v in m.encoder.downsample.state_dict().items()}
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    upper_before = next(m.encoder.upper.parameters()).clone()
    for _ in range(2):
        loss, _ = m(*inputs())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not any(p.requires_grad for p in m.encoder.lower.parameters())
    for k, v in m.encoder.lower.state_dict().items():
        assert torch.equal(v, before[k]), k
    for k, v in m.encoder.downsample.state_dict().items():
        assert torch.equal(v, before_down[k]), k
    assert not torch.equal(next(m.encoder.upper.parameters()), upper_before), "the upper encoder trains"


def test_tracks_use_their_own_codebook():
    m = model().eval()
    audio = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        as_vocal, *_ = m.quantize(audio, torch.tensor([VOCAL, VOCAL]))
        as_acc, *_ = m.quantize(audio, torch.tensor([ACCOMPANIMENT, ACCOMPANIMENT]))
    assert int(as_vocal.codes.max()) < 64 and int(as_acc.codes.max()) < 32
    decoded = m.quantizer.decode(as_vocal.codes, as_vocal.route)
    assert torch.allclose(decoded, as_vocal.quantized, atol=1e-5), "decode(codes) reproduces the forward output"


def test_stage3_starts_from_stage2():
    s2 = stage2()
    m = DualTrackModel.from_finetune(s2, DualTrackConfig(encoder=ENC, bottleneck_dim=8, codebook_sizes=(64, 32)))
    for branch in m.quantizer.branches:
        assert torch.equal(branch.proj_in.weight, s2.proj_in.weight)
        assert torch.equal(branch.proj_out.weight, s2.proj_out.weight)
    for name in ("chroma", "mel", "lyrics"):
        for a, b in zip(m.heads[name].parameters(), s2.heads[name].parameters(), strict=True):
            assert torch.equal(a, b), f"{name} head not copied from stage 2"
    with pytest.raises(ValueError, match="bottleneck_dim"):
        DualTrackModel.from_finetune(s2, DualTrackConfig(encoder=ENC, bottleneck_dim=16))


def test_frozen_state_survives_save_and_load(tmp_path):
    m = model()
    m.save_pretrained(tmp_path / "m")
    loaded = DualTrackModel.from_pretrained(tmp_path / "m")
    assert not any(p.requires_grad for p in loaded.encoder.lower.parameters())
    assert loaded.quantizer.codebook_fingerprints() == m.quantizer.codebook_fingerprints()


def test_a_normalised_bottleneck_is_normalised_the_same_way_in_both_stages():
    """bottleneck_norm: layer standardises each frame after proj_in in stage 2; stage 3's branches
    apply the same, so its codebooks start on exactly the features stage 2's upper blocks read."""
    torch.manual_seed(0)
    s2 = MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8, bottleneck_norm="layer"))
    m = DualTrackModel.from_finetune(s2, DualTrackConfig(encoder=ENC, bottleneck_dim=8, bottleneck_norm="layer",
                                                         codebook_sizes=(64, 32)))
    audio = torch.randn(2, 16000) * 0.1
    s2.eval()
    with torch.no_grad():
        mel = s2.logmel(audio)
        mask = s2.frame_mask(torch.tensor([16000, 16000]), mel.shape[-1])
        z = s2.bottleneck_features(mel, mask)
        lower = m.encoder.forward_lower(m.encoder.embed(mel, mask), m.encoder.downsample_mask(mask))
        for branch in m.quantizer.branches:
            assert torch.allclose(branch.project(lower), z, atol=1e-5)
    assert torch.allclose(z.mean(-1), torch.zeros(()), atol=1e-5)
    assert torch.allclose(z.pow(2).mean(-1), torch.ones(()), atol=1e-3)
    with pytest.raises(ValueError, match="bottleneck_norm"):
        DualTrackModel.from_finetune(s2, DualTrackConfig(encoder=ENC, bottleneck_dim=8))


def test_stage_3_takes_stage_2s_lyrics_head_with_its_context_layer():
    """A lyrics head with a BiGRU (``lyrics_context``) is shared: stage 3 copies stage 2's weights,
    and a stage-3 config with another context size is refused rather than loaded partially."""
    torch.manual_seed(0)
    s2 = MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8, lyrics_context=6))
    m = DualTrackModel.from_finetune(s2, DualTrackConfig(encoder=ENC, bottleneck_dim=8, lyrics_context=6,
                                                         codebook_sizes=(64, 32)))
    for name, value in s2.heads["lyrics"].state_dict().items():
        assert torch.equal(m.heads["lyrics"].state_dict()[name], value), name
    assert any(name.startswith("context.") for name in m.heads["lyrics"].state_dict())
    with pytest.raises(ValueError, match="lyrics_context"):
        DualTrackModel.from_finetune(s2, DualTrackConfig(encoder=ENC, bottleneck_dim=8))
