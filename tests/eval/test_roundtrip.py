"""Round-trip evaluation plumbing: held-out excerpts, systems, per-item scores and their summaries."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from duotok.eval.roundtrip import (
    TRACK_NAMES,
    autoencoder_system,
    codec_system,
    held_out_excerpts,
    score_system,
    summary_dict,
    summary_table,
    sweep_means,
)

SONGS = (("a", "train", 2.0), ("b", "test", 2.0), ("c", "test", 1.2))


def test_excerpts_are_centre_crops_of_the_three_tracks(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    excerpts = held_out_excerpts(root, "test", 1.0, 5, 16000)
    assert [e.song_id for e in excerpts] == ["b", "c"]
    b = excerpts[0]
    assert b.vocal.shape == b.accompaniment.shape == b.mixture.shape == (16000,)
    assert b.offset_seconds == pytest.approx(0.5)
    np.testing.assert_allclose(b.vocal + b.accompaniment, b.mixture, atol=2e-4)   # 16-bit files
    assert len(held_out_excerpts(root, "test", 1.0, 1, 16000)) == 1
    short = held_out_excerpts(root, "test", 5.0, 5, 16000)
    assert short[1].mixture.shape == (int(1.2 * 16000),)          # used whole, never padded


class _Identity(torch.nn.Module):
    def reconstruct(self, audio):
        return audio.clone()


def test_a_perfect_system_scores_perfectly_and_a_noisy_one_worse(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    excerpts = held_out_excerpts(root, "test", 1.0, 1, 16000)
    perfect = score_system("identity", autoencoder_system(_Identity()), excerpts, 16000, ("mel_l1", "stoi"))
    assert list(perfect["track"]) == list(TRACK_NAMES)
    assert (perfect["mel_l1"] == 0).all() and (perfect["stoi"] > 0.999).all()

    def noisy(ex):
        rng = np.random.default_rng(0)
        return {t: ex.track(t) + 0.05 * rng.standard_normal(ex.track(t).size).astype(np.float32)
                for t in TRACK_NAMES}

    worse = score_system("noisy", noisy, excerpts, 16000, ("mel_l1", "stoi"))
    assert (worse["mel_l1"].to_numpy() > 0.1).all() and (worse["stoi"].to_numpy() < 0.999).all()
    table = summary_table(pd.concat([perfect, worse]), ("mel_l1", "stoi"))
    assert table.loc[("identity", "vocal"), "n"] == 1
    summary = summary_dict(pd.concat([perfect, worse]), ("mel_l1", "stoi"))
    assert summary["identity"]["mixture"]["mel_l1"] == 0.0


def test_summaries_skip_undefined_scores():
    scores = pd.DataFrame([{"system": "s", "track": "vocal", "pesq": float("nan"), "steps": 4},
                           {"system": "s", "track": "vocal", "pesq": 2.0, "steps": 4},
                           {"system": "s", "track": "vocal", "pesq": 3.0, "steps": 8}])
    assert summary_table(scores, ("pesq",)).loc[("s", "vocal"), "pesq"] == pytest.approx(2.5)
    sweep = sweep_means(scores, "steps", ("pesq",))
    assert sweep == {"4": {"vocal": {"pesq": 2.0}}, "8": {"vocal": {"pesq": 3.0}}}
    all_nan = summary_dict(scores.assign(pesq=float("nan")), ("pesq",))
    assert all_nan["s"]["vocal"]["pesq"] is None and not math.isnan(all_nan["s"]["vocal"]["n"])


def test_codec_system_source_is_checked():
    with pytest.raises(ValueError, match="oracle"):
        codec_system(torch.nn.Module(), "mixture")


class _DualCodec:
    """A stand-in dual-track codec: ids carry the audio itself, so decode is exact."""

    name, sample_rate, frame_rate, codebook_sizes = "dual", 16000, 16000.0, (2, 2)
    streams = {"vocal": (0,), "accompaniment": (1,)}

    def __init__(self):
        self.calls: list[str] = []

    def encode(self, mixture):
        self.calls.append("encode")
        return torch.stack([0.5 * mixture, 0.5 * mixture])

    def encode_stems(self, vocal, accompaniment):
        self.calls.append("encode_stems")
        return torch.stack([vocal, accompaniment])

    def decode(self, ids, num_samples=None, gain=1.0):
        return {"vocal": gain * ids[0], "accompaniment": gain * ids[1], "mixture": gain * (ids[0] + ids[1])}


class _MixtureCodec(_DualCodec):
    streams = {"mixture": (0,)}

    def decode(self, ids, num_samples=None):
        return {"mixture": ids[0] + ids[1]}


def test_one_codec_system_for_every_codec(tmp_path, make_duosynth):
    from duotok.codecs.duotok import DuoTokCodec, as_codec
    from duotok.tokenizer import DuoTok, DuoTokConfig

    ex = held_out_excerpts(make_duosynth(tmp_path / "data", SONGS), "test", 1.0, 1, 16000)[0]
    dual = _DualCodec()
    oracle = codec_system(dual, "oracle")(ex)
    assert dual.calls == ["encode_stems"] and set(oracle) == set(TRACK_NAMES)
    np.testing.assert_allclose(oracle["vocal"], ex.vocal)
    codec_system(dual, "separated")(ex)
    assert dual.calls[-1] == "encode"
    assert np.allclose(codec_system(dual, "oracle", gain=2.0)(ex)["vocal"], 2 * ex.vocal)   # decode kwargs reach it
    mixture = _MixtureCodec()
    assert set(codec_system(mixture, "oracle")(ex)) == {"mixture"} and mixture.calls == ["encode"]
    scores = score_system("mix", codec_system(mixture), [ex], 16000, ("mel_l1",))
    assert list(scores["track"]) == ["mixture"]
    tok = DuoTok(DuoTokConfig())
    assert isinstance(as_codec(tok), DuoTokCodec) and as_codec(dual) is dual
