"""Stage 4 runners: the autoencoder and the diffusion decoder train from the corpus, resume, and the
decoder stage bundles a codec that encodes and decodes."""

from __future__ import annotations

import json

import pytest
import torch

from duotok.errors import CheckpointError
from duotok.models.autoencoder import WaveAutoencoder
from duotok.models.dit import LatentDiT
from duotok.tokenizer import DuoTok
from duotok.train import autoencoder, decoder, finetune, quantize

SONGS = (("a", "train", 3.0), ("b", "train", 2.5), ("c", "valid", 2.0), ("d", "test", 2.0))


@pytest.fixture
def corpus(tmp_path, make_duosynth):
    return make_duosynth(tmp_path / "data", SONGS)


def test_autoencoder_trains_on_every_track_and_resumes(tmp_path, corpus):
    result = autoencoder.run("smoke", out_dir=tmp_path / "ae", data_dir=corpus, steps=2)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.train["loss"]))
    assert {"mel_l1", "stft", "kl"} <= set(result.valid)
    summary = json.loads((tmp_path / "ae" / "result.json").read_text())
    assert summary["latent_rate"] == 50.0 and summary["parameters"] > 0
    model = WaveAutoencoder.from_pretrained(tmp_path / "ae" / "model")
    assert model.config.latent_dim == 8                          # the smoke profile's
    again = autoencoder.run("smoke", out_dir=tmp_path / "ae", data_dir=corpus, steps=3)
    assert again.resumed_from == 2 and again.step == 3


def test_track_signals_stack_the_requested_tracks():
    batch = {"mixture": torch.ones(2, 5), "accompaniment": 2 * torch.ones(2, 5),
             "stems": torch.arange(4.0)[None, :, None].repeat(2, 1, 5)}
    out = autoencoder.track_signals(batch, ["vocals", "accompaniment", "mixture", "bass"])
    assert out.shape == (8, 5)
    assert out[:2].eq(0).all() and out[2:4].eq(2).all() and out[4:6].eq(1).all() and out[6:].eq(2).all()


def _tokenizer(tmp_path, corpus) -> DuoTok:
    finetune.run("smoke", out_dir=tmp_path / "ft", data_dir=corpus, steps=1, from_scratch=True)
    quantize.run("smoke", out_dir=tmp_path / "q", data_dir=corpus, init=tmp_path / "ft" / "model", steps=1)
    tok = DuoTok.from_stages(tmp_path / "ft" / "model", tmp_path / "q" / "model", chunk_seconds=1.0)
    tok.save_pretrained(tmp_path / "tok")
    return tok


def test_decoder_trains_and_writes_a_complete_codec(tmp_path, corpus):
    tok = _tokenizer(tmp_path, corpus)
    autoencoder.run("smoke", out_dir=tmp_path / "ae", data_dir=corpus, steps=1)
    result = decoder.run("smoke", out_dir=tmp_path / "dec", data_dir=corpus, tokenizer_dir=tmp_path / "tok",
                         autoencoder_dir=tmp_path / "ae" / "model", codec_dir=tmp_path / "codec", steps=3)
    assert result.step == 3 and torch.isfinite(torch.tensor(result.valid["fm_mse"]))
    dit = LatentDiT.from_pretrained(tmp_path / "dec" / "model")
    assert dit.config.cond_dim == tok.config.quantizer.encoder.dim and dit.config.cond_upsample == 2
    assert not torch.equal(dit.latent_std, torch.ones_like(dit.latent_std)), "latent statistics were set"
    codec = DuoTok.from_pretrained(tmp_path / "codec").eval()
    assert codec.fingerprints() == tok.fingerprints()
    assert codec.decoder.config.steps == 4                      # decoder.sampling of the smoke profile
    audio = torch.randn(int(1.5 * codec.sample_rate)) * 0.1
    vocal, accompaniment, mixture = codec.decode(*codec.encode(audio), num_samples=audio.numel())
    assert mixture.shape == audio.shape and torch.isfinite(mixture).all()


def test_decoder_needs_its_inputs(tmp_path, corpus):
    with pytest.raises(CheckpointError, match="duotok train quantize"):
        decoder.run("smoke", out_dir=tmp_path / "dec", data_dir=corpus, tokenizer_dir=tmp_path / "none", steps=1)
