"""DuoEncoder: token rate, masks, normalisation, freezing the lower half, checkpoint round trip."""

from __future__ import annotations

import torch

from duotok.models.encoder import DuoEncoder, EncoderConfig, mel_statistics

CFG = EncoderConfig(n_mels=8, dim=16, n_lower=1, n_upper=1, n_heads=2, mlp_ratio=2.0)


def _encoder() -> DuoEncoder:
    torch.manual_seed(0)
    return DuoEncoder(CFG)


def test_400_mel_frames_give_100_tokens():
    enc = _encoder().eval()
    assert enc(torch.randn(2, 8, 400)).shape == (2, 100, 16)
    assert [enc.frames_to_tokens(n) for n in (400, 401, 403, 1)] == [100, 101, 101, 1]
    assert enc(torch.randn(1, 8, 401)).shape[1] == 101


def test_downsample_mask_keeps_partially_valid_tokens():
    enc = _encoder()
    frame_mask = torch.arange(10)[None, :] < torch.tensor([[10], [5], [4]])
    tokens = enc.downsample_mask(frame_mask)
    assert tokens.tolist() == [[True, True, True], [True, True, False], [True, False, False]]


def test_padded_mel_frames_do_not_change_valid_outputs():
    enc = _encoder().eval()
    mel = torch.randn(1, 8, 40)
    frame_mask = torch.arange(40)[None, :] < 26
    y1 = enc(mel, frame_mask)
    mel2 = mel.clone()
    mel2[..., 26:] = 50.0
    y2 = enc(mel2, frame_mask)
    n_valid = enc.frames_to_tokens(26)
    torch.testing.assert_close(y1[:, :n_valid], y2[:, :n_valid])


def test_set_normalization_standardises_channels():
    enc = _encoder()
    mels = [3.0 + 2.0 * torch.randn(8, 300), 3.0 + 2.0 * torch.randn(2, 8, 100)]
    enc.set_normalization(*mel_statistics(mels))
    second = enc.normalize(mels[1]).transpose(0, 1).reshape(8, -1)
    pooled = torch.cat([enc.normalize(mels[0][None])[0], second], dim=1)
    torch.testing.assert_close(pooled.mean(dim=1), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(pooled.std(dim=1, unbiased=False), torch.ones(8), atol=1e-4, rtol=0)
    assert "mel_mean" in enc.state_dict() and "mel_std" in enc.state_dict()


def test_freeze_lower_freezes_lower_and_trains_upper():
    enc = _encoder()
    enc.freeze_lower()
    enc.train()
    assert not enc.lower.training and not enc.downsample.training and enc.upper.training
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    opt = torch.optim.SGD([p for p in enc.parameters() if p.requires_grad], lr=0.1)
    enc(torch.randn(2, 8, 32)).square().mean().backward()
    opt.step()
    after = enc.state_dict()
    for key in before:
        changed = not torch.equal(before[key], after[key])
        if key.startswith(("lower.", "downsample.", "mel_")):
            assert not changed, key
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("upper."))
    assert all(p.grad is None for p in enc.lower.parameters())


def test_save_load_round_trip(tmp_path):
    enc = _encoder().eval()
    enc.set_normalization(torch.linspace(-1, 1, 8), torch.linspace(0.5, 2, 8))
    enc.save_pretrained(tmp_path / "enc")
    loaded = DuoEncoder.from_pretrained(tmp_path / "enc")
    assert loaded.config == CFG and not loaded.training
    mel = torch.randn(2, 8, 23)
    torch.testing.assert_close(loaded(mel), enc(mel), rtol=0, atol=0)
