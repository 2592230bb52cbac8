"""Training the generative separator: the token cache, aligned crops, and a few Trainer steps."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from gen_helpers import tiny_codec, tiny_config  # noqa: E402

import duotok.separation.train_generative as tg  # noqa: E402
from duotok.data.stems import discover_songs, load_song  # noqa: E402
from duotok.separation.generative import GenerativeSeparator  # noqa: E402
from duotok.train.loop import TrainConfig  # noqa: E402

HOP = 320


def _codec_dir(tmp_path: Path) -> Path:
    return tiny_codec().save_pretrained(tmp_path / "codec")


def test_token_cache_is_built_once_and_reused(tmp_path, duosynth_root, monkeypatch):
    codec = tiny_codec()
    records = [r for r in discover_songs(duosynth_root) if r.split == "train"]
    path = tmp_path / "out" / tg.CACHE_NAME
    tokens = tg.load_token_cache(codec, records, path, log=False)
    song = load_song(records[0], 16000)
    assert tokens["song-a"]["stems"].shape == (4, 3, math.ceil(song["stems"].shape[-1] / HOP))
    assert torch.equal(tokens["song-a"]["stems"][1].long(), codec.encode(torch.from_numpy(song["stems"][1])))
    assert "mixture" not in tokens["song-a"]
    stamp = path.stat().st_mtime_ns

    def _no_encoding(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(tg, "_encode_song", _no_encoding)
    again = tg.load_token_cache(codec, records, path, log=False)
    assert path.stat().st_mtime_ns == stamp
    assert torch.equal(again["song-b"]["stems"], tokens["song-b"]["stems"])
    monkeypatch.undo()
    with_mix = tg.load_token_cache(codec, records, path, with_mixture=True, log=False)   # adds what is missing
    assert with_mix["song-a"]["mixture"].shape == tokens["song-a"]["stems"].shape[1:]
    other = tg.load_token_cache(tiny_codec(seed=1), records, path, log=False)           # another codec: re-encoded
    assert not torch.equal(other["song-a"]["stems"], tokens["song-a"]["stems"])


def test_crops_keep_audio_and_tokens_on_one_grid(duosynth_root):
    codec = tiny_codec()
    records = [r for r in discover_songs(duosynth_root) if r.split == "train"]
    tokens = tg.load_token_cache(codec, records, duosynth_root.parent / "cache.pt", log=False)
    audio = [tg._to_int16(load_song(r, 16000)["mixture"]) for r in records]
    data = tg.GenerativeCropDataset([tokens[r.id] for r in records], 20, 2, HOP, audio, seed=1, crops_per_song=3)
    assert len(data) == 6
    for i in range(3):                                              # song-a: 2 s = 100 frames
        item = data[i]
        assert item["lengths"] == 20 and item["codes"].shape == (4, 2, 20)
        stems = tokens["song-a"]["stems"][:, :2].long()
        f0 = next(f for f in range(81) if torch.equal(stems[..., f : f + 20], item["codes"]))
        expected = audio[0][f0 * HOP : (f0 + 20) * HOP].astype(np.float32) / 32768
        torch.testing.assert_close(item["features"], torch.from_numpy(expected))
    short = data[3]                                                 # song-b: 0.25 s = 13 frames, padded
    assert short["lengths"] == 13 and short["codes"][..., 13:].abs().max() == 0
    assert short["features"][4000:].abs().max() == 0
    data.set_epoch(1)
    assert not torch.equal(data[0]["features"], tg.GenerativeCropDataset(
        [tokens[r.id] for r in records], 20, 2, HOP, audio, seed=1, crops_per_song=3)[0]["features"])


def _losses(out_dir: Path) -> list[float]:
    with open(out_dir / "train_log.csv", newline="") as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh)]


@pytest.mark.parametrize("encoder", ["conformer", "mixture_tokens"])
def test_a_few_trainer_steps_lower_the_loss_and_reuse_the_cache(tmp_path, duosynth_root, encoder):
    codec_dir = _codec_dir(tmp_path)
    cfg = TrainConfig(steps=40, batch_size=4, lr=3e-3, warmup_steps=2, log_every=5, eval_every=40,
                      save_every=40, precision="fp32", max_eval_batches=1)
    out = tmp_path / "gen"
    model, result = tg.train_generative(tiny_config(encoder=encoder), cfg, codec_dir, duosynth_root, out,
                                        segment_seconds=0.4, crops_per_song=4)
    assert isinstance(model, GenerativeSeparator) and result.step == 40
    losses = _losses(out)
    assert losses[-1] < 0.9 * losses[0], losses
    assert (out / tg.CACHE_NAME).is_file() and (out / "model" / "config.json").is_file()
    assert "ce" in result.valid
    stamp = (out / tg.CACHE_NAME).stat().st_mtime_ns
    _, again = tg.train_generative(tiny_config(encoder=encoder), cfg, codec_dir, duosynth_root, out,
                                   segment_seconds=0.4, crops_per_song=4)
    assert again.resumed_from == 40 and (out / tg.CACHE_NAME).stat().st_mtime_ns == stamp


def test_codec_mismatch_and_bad_segment_are_refused(tmp_path, duosynth_root):
    codec_dir = _codec_dir(tmp_path)
    with pytest.raises(ValueError, match="codebooks"):
        tg.train_generative(tiny_config(n_codebooks=4), TrainConfig(steps=1), codec_dir, duosynth_root, tmp_path / "x")
    with pytest.raises(ValueError, match="max_frames"):
        tg.train_generative(tiny_config(), TrainConfig(steps=1), codec_dir, duosynth_root, tmp_path / "x",
                            segment_seconds=10.0)


def test_frozen_ssl_variant_trains_and_resumes(tmp_path, duosynth_root):
    from duotok.models.bestrq import BestRQConfig, BestRQModel, MelConfig
    from duotok.models.encoder import EncoderConfig

    torch.manual_seed(0)
    BestRQModel(BestRQConfig(mel=MelConfig(n_mels=16, n_fft=512, win_length=512),
                             encoder=EncoderConfig(n_mels=16, dim=16, n_lower=1, n_upper=1, n_heads=2),
                             codebook_size=32)).save_pretrained(tmp_path / "ssl")
    config = tiny_config(encoder="frozen_ssl", ssl_dir=str(tmp_path / "ssl"))
    cfg = TrainConfig(steps=3, batch_size=2, warmup_steps=1, log_every=1, eval_every=3, save_every=3,
                      precision="fp32", max_eval_batches=1)
    codec_dir = _codec_dir(tmp_path)
    model, _ = tg.train_generative(config, cfg, codec_dir, duosynth_root, tmp_path / "gen", segment_seconds=0.4)
    assert model.config.ssl is not None
    _, again = tg.train_generative(config, cfg, codec_dir, duosynth_root, tmp_path / "gen", segment_seconds=0.4)
    assert again.resumed_from == 3
