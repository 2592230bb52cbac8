"""Decoder training data: token embeddings and autoencoder latents, aligned and cropped together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duotok.data.latents import TokenLatentDataset, TrackFeatures, latent_stats, stem_tracks, track_features


def _features(n_tokens: int, track: int = 0, k: int = 2, seed: int = 0) -> TrackFeatures:
    g = torch.Generator().manual_seed(seed)
    return TrackFeatures(f"s{seed}", track, torch.randn(n_tokens, 3, generator=g),
                         torch.randn(n_tokens * k, 2, generator=g))


def test_crops_keep_tokens_and_latents_aligned():
    f = _features(40)
    ds = TokenLatentDataset([f], segment_tokens=10, crops_per_track=3, seed=0, random=True)
    for i in range(len(ds)):
        item = ds[i]
        assert item["cond"].shape == (10, 3) and item["latents"].shape == (20, 2) and item["length"] == 10
        # find the crop start from the condition, then check the latents come from the same span
        start = next(s for s in range(31) if torch.equal(f.cond[s : s + 10], item["cond"]))
        assert torch.equal(item["latents"], f.latents[2 * start : 2 * start + 20])


def test_short_tracks_are_padded_and_reported():
    ds = TokenLatentDataset([_features(4, track=1)], segment_tokens=10, random=False)
    item = ds[0]
    assert item["length"] == 4 and item["track"] == 1
    assert torch.all(item["cond"][4:] == 0) and torch.all(item["latents"][8:] == 0)


def test_random_crops_change_with_the_epoch_and_are_reproducible():
    f = _features(200)
    a = TokenLatentDataset([f], 10, seed=0)
    b = TokenLatentDataset([f], 10, seed=0)
    assert torch.equal(a[0]["cond"], b[0]["cond"])
    a.set_epoch(1)
    assert not torch.equal(a[0]["cond"], b[0]["cond"])


def test_inconsistent_frame_ratios_are_refused():
    bad = TrackFeatures("x", 0, torch.zeros(10, 3), torch.zeros(15, 2))
    with pytest.raises(ValueError, match="whole number"):
        TokenLatentDataset([_features(10), bad], 5)
    with pytest.raises(ValueError, match="no track features"):
        TokenLatentDataset([], 5)


def test_latent_stats_are_per_channel():
    f = TrackFeatures("x", 0, torch.zeros(2, 1), torch.tensor([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0], [6.0, 10.0]]))
    mean, std = latent_stats([f])
    assert torch.allclose(mean, torch.tensor([3.0, 10.0]))
    assert std[0] == pytest.approx(float(np.std([0, 2, 4, 6], ddof=1)))
    assert std[1] > 0                                   # a constant channel is clamped, not zero


class _FakeTokenizer:
    samples_per_token = 640
    sample_rate = 16000

    def encode_stems(self, vocals, accompaniment):
        n = -(-vocals.numel() // 640)
        return torch.arange(n), torch.arange(n) + 100

    def embed(self, ids, track):
        return ids.float()[:, None].repeat(1, 3) + 1000 * int(track)


class _FakeAutoencoder:
    samples_per_latent = 320

    def encode(self, audio):                  # (1, T) -> (1, 2, T / 320): the mean of each 320-sample frame
        frames = audio.reshape(1, -1, 320).mean(-1)
        return torch.stack([frames, -frames], dim=1)


def test_track_features_align_each_token_with_its_two_latent_frames():
    rng = np.random.default_rng(0)
    stems = rng.standard_normal((4, 1500)).astype(np.float32)     # 1500 samples -> 3 tokens (zero-padded)
    vocals, accompaniment = stem_tracks(stems)
    np.testing.assert_allclose(accompaniment, stems[1:].sum(0), rtol=1e-6)
    out = track_features(_FakeTokenizer(), _FakeAutoencoder(), "song", vocals, accompaniment)
    assert [f.track for f in out] == [0, 1]
    assert out[0].cond.shape == (3, 3) and out[0].latents.shape == (6, 2)
    assert out[1].cond[0, 0] == 1100                               # accompaniment ids, track offset 1000
    padded = np.zeros(1920, dtype=np.float32)
    padded[:1500] = vocals
    np.testing.assert_allclose(out[0].latents[:, 0].numpy(), padded.reshape(6, 320).mean(-1), rtol=1e-5, atol=1e-7)
