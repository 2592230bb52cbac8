"""Stage 4b runner helpers: writing the chosen sampling settings into a saved codec."""

from __future__ import annotations

import json
import os

import pytest
import torch

from duotok.errors import CheckpointError
from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder
from duotok.models.dit import DiTConfig, LatentDiT
from duotok.tokenizer import DuoTok, DuoTokConfig
from duotok.tokenizer.decoder import TokenDecoder
from duotok.train import finetune, quantize
from duotok.train.decoder import write_codec_sampling


def _tokenizer() -> DuoTok:
    separator, _, _ = finetune.build_config("smoke")
    quantizer, _, _ = quantize.build_config("smoke")
    torch.manual_seed(0)
    return DuoTok(DuoTokConfig(separator=separator, quantizer=quantizer, chunk_seconds=1.0, chunk_batch=2)).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple:
    tok = _tokenizer()
    torch.manual_seed(1)
    ae = WaveAutoencoder(AutoencoderConfig(dim=16, n_blocks=1, latent_dim=4, n_fft=512))
    dit = LatentDiT(DiTConfig(latent_dim=4, cond_dim=tok.config.quantizer.encoder.dim, dim=16, n_layers=1,
                              n_heads=2, cond_upsample=2))
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    codec = tok.with_decoder(TokenDecoder.from_parts(ae, dit, steps=4, cfg_scale=1.5, seed=3))
    root = tmp_path_factory.mktemp("bundle")
    codec.save_pretrained(root / "codec")
    tok.save_pretrained(root / "tok")
    return root, codec


def test_written_settings_are_the_loaded_codecs_defaults(saved, tmp_path):
    root, codec = saved
    directory = tmp_path / "codec"
    directory.mkdir()
    for name in os.listdir(root / "codec"):
        (directory / name).write_bytes((root / "codec" / name).read_bytes())
    weights = (directory / "model.safetensors").read_bytes()
    path = write_codec_sampling(directory, 2, 3.0)
    assert path == directory / "config.json"
    assert (directory / "model.safetensors").read_bytes() == weights
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []   # no temp file left
    loaded = DuoTok.from_pretrained(directory).eval()
    cfg = loaded.decoder.config
    assert (cfg.steps, cfg.cfg_scale, cfg.seed) == (2, 3.0, 3)                      # seed kept
    ids = [torch.randint(0, s, (25,), generator=torch.Generator().manual_seed(0)) for s in codec.codebook_sizes]
    for a, b in zip(loaded.decode(*ids), codec.decode(*ids, steps=2, cfg_scale=3.0), strict=True):
        torch.testing.assert_close(a, b)                          # decode uses the written values by default
    write_codec_sampling(directory, 8, 1, seed=5)
    header = json.loads(path.read_text(encoding="utf-8"))
    dec = header["config"]["decoder"]
    assert (dec["steps"], dec["cfg_scale"], dec["seed"]) == (8, 1.0, 5) and isinstance(dec["cfg_scale"], float)
    assert header["model_type"] == "DuoTok" and "autoencoder" in dec and "dit" in dec   # the rest kept
    assert (dec["time_shift"], dec["precision"]) == (1.0, "fp32")                      # not named: kept
    write_codec_sampling(directory, 8, 1, time_shift=3, precision="auto")
    loaded = DuoTok.from_pretrained(directory).eval()
    assert (loaded.decoder.config.time_shift, loaded.decoder.config.precision) == (3.0, "auto")
    assert isinstance(loaded.decoder.config.time_shift, float)


def test_bad_settings_and_targets_are_refused_without_writing(saved, tmp_path):
    root, _ = saved
    before = (root / "codec" / "config.json").read_bytes()
    for steps, cfg in ((0, 1.5), (2.0, 1.5), (True, 1.5), (4, -1.0), (4, float("nan")), (4, "2")):
        with pytest.raises(ValueError):
            write_codec_sampling(root / "codec", steps, cfg)
    with pytest.raises(ValueError, match="seed"):
        write_codec_sampling(root / "codec", 4, 1.5, seed=-1)
    for shift in (0, -1.0, float("nan"), True, "3"):
        with pytest.raises(ValueError, match="time_shift"):
            write_codec_sampling(root / "codec", 4, 1.5, time_shift=shift)
    with pytest.raises(ValueError, match=r"^precision must be one of"):    # names the argument, not train.precision
        write_codec_sampling(root / "codec", 4, 1.5, precision="fp16")
    assert (root / "codec" / "config.json").read_bytes() == before
    with pytest.raises(CheckpointError, match="no decoder"):
        write_codec_sampling(root / "tok", 4, 1.5)
    with pytest.raises(CheckpointError):
        write_codec_sampling(tmp_path / "missing", 4, 1.5)
