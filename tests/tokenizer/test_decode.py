"""``DuoTok.decode``: the stage-4 path from ids back to audio (tiny random models: the behaviour of the
plumbing — shapes, chunking, seeding, compatibility checks — not audio quality)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duotok.errors import TokenFileError
from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder
from duotok.models.dit import DiTConfig, LatentDiT
from duotok.tokenizer import DuoTok
from duotok.tokenizer.batch import decode_paths
from duotok.tokenizer.decoder import TokenDecoder
from duotok.tokenizer.tokens import save_tokens

from .conftest import tiny_config


def tiny_decoder(tokenizer: DuoTok, steps: int = 2, cfg_scale: float = 1.5, seed: int = 0) -> TokenDecoder:
    torch.manual_seed(1)
    ae = WaveAutoencoder(AutoencoderConfig(dim=16, n_blocks=1, latent_dim=4, n_fft=512))
    dit = LatentDiT(DiTConfig(latent_dim=4, cond_dim=tokenizer.config.quantizer.encoder.dim, dim=16, n_layers=1,
                              n_heads=2, cond_upsample=2))
    for p in dit.parameters():     # leave zero-init: outputs must depend on the condition
        torch.nn.init.normal_(p, std=0.05)
    return TokenDecoder.from_parts(ae, dit, steps=steps, cfg_scale=cfg_scale, seed=seed)


@pytest.fixture(scope="module")
def codec(tiny_duotok: DuoTok) -> DuoTok:
    return tiny_duotok.with_decoder(tiny_decoder(tiny_duotok))


def _ids(codec: DuoTok, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randint(0, size, (n,), generator=g) for size in codec.codebook_sizes)


def test_decode_shapes_and_mixture_is_the_sum(codec):
    n = 60                                            # 2.4 s: two full 1-s chunks and a partial one
    vocal, accompaniment, mixture = codec.decode(*_ids(codec, n))
    assert vocal.shape == accompaniment.shape == mixture.shape == (n * 640,)
    assert torch.allclose(mixture, vocal + accompaniment)
    assert torch.isfinite(mixture).all()
    trimmed = codec.decode(*_ids(codec, n), num_samples=n * 640 - 100)
    assert trimmed[0].shape == (n * 640 - 100,)


def test_decode_is_seeded(codec):
    ids = _ids(codec, 30)
    a = codec.decode(*ids, seed=3)
    b = codec.decode(*ids, seed=3)
    c = codec.decode(*ids, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_decode_depends_on_the_tokens(codec):
    a = codec.decode(*_ids(codec, 25, seed=0))
    b = codec.decode(*_ids(codec, 25, seed=1))
    assert not torch.allclose(a[0], b[0])


def test_decode_settings_override_the_config(codec):
    ids = _ids(codec, 25)
    base = codec.decode(*ids)
    assert torch.equal(base[0], codec.decode(*ids, steps=codec.decoder.config.steps)[0])
    assert not torch.equal(base[0], codec.decode(*ids, steps=5)[0])
    assert not torch.equal(base[0], codec.decode(*ids, cfg_scale=1.0)[0])


def test_decode_refuses_bad_input(codec, tiny_duotok):
    with pytest.raises(RuntimeError, match="no decoder"):
        tiny_duotok.decode(*_ids(codec, 5))
    with pytest.raises(ValueError, match="equal length"):
        codec.decode(torch.zeros(5, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        codec.decode(torch.full((5,), 10**6), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="does not fit"):
        codec.decode(*_ids(codec, 5), num_samples=5 * 640 + 1)


def test_with_decoder_checks_the_interfaces(tiny_duotok):
    ae = WaveAutoencoder(AutoencoderConfig(dim=16, n_blocks=1, latent_dim=4, n_fft=512))
    dit = LatentDiT(DiTConfig(latent_dim=4, cond_dim=7, dim=16, n_layers=1, n_heads=2))
    with pytest.raises(ValueError, match="embeddings"):
        tiny_duotok.with_decoder(TokenDecoder.from_parts(ae, dit))
    dit3 = LatentDiT(DiTConfig(latent_dim=4, cond_dim=tiny_duotok.config.quantizer.encoder.dim, dim=16, n_layers=1,
                               n_heads=2, cond_upsample=3))
    with pytest.raises(ValueError, match="samples per token"):
        tiny_duotok.with_decoder(TokenDecoder.from_parts(ae, dit3))
    with pytest.raises(ValueError, match="latents"):
        TokenDecoder.from_parts(WaveAutoencoder(AutoencoderConfig(dim=16, n_blocks=1, latent_dim=8)), dit)


def test_codec_round_trips_through_save_and_load(codec, tmp_path):
    codec.save_pretrained(tmp_path / "codec")
    loaded = DuoTok.from_pretrained(tmp_path / "codec").eval()
    ids = _ids(codec, 30)
    assert all(torch.equal(x, y) for x, y in zip(codec.decode(*ids), loaded.decode(*ids), strict=True))
    # a tokenizer without decoder still loads and cannot decode
    plain = DuoTok(tiny_config())
    plain.save_pretrained(tmp_path / "plain")
    assert DuoTok.from_pretrained(tmp_path / "plain").decoder is None


def test_encode_then_decode_a_file(codec, tmp_path):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(1.7 * codec.sample_rate))).astype(np.float32)
    ids = codec.encode(torch.from_numpy(audio))
    tokens = codec.token_file(*ids, num_samples=audio.size, source="x.wav")
    save_tokens(tmp_path / "x.tok", tokens)
    report = decode_paths(codec, tmp_path / "x.tok", tmp_path / "out", progress=False)
    assert report.written == [tmp_path / "out" / "x"]
    import soundfile as sf

    for name in ("vocal", "accompaniment", "mixture"):
        data, sr = sf.read(tmp_path / "out" / "x" / f"{name}.wav")
        assert sr == codec.sample_rate and data.shape == (audio.size,)
    again = decode_paths(codec, tmp_path / "x.tok", tmp_path / "out", progress=False)
    assert again.skipped and not again.written


def test_decode_refuses_tokens_of_another_model(codec, tmp_path):
    other = DuoTok(tiny_config(seed=1)).eval()
    ids = other.encode(torch.zeros(16000) + 0.01)
    save_tokens(tmp_path / "other.tok", other.token_file(*ids, num_samples=16000))
    with pytest.raises(TokenFileError, match="another model"):
        decode_paths(codec, tmp_path / "other.tok", tmp_path / "out", progress=False)


def test_decode_refuses_float_ids_and_bad_settings(codec):
    ids = _ids(codec, 5)
    with pytest.raises(ValueError, match="vocal ids: token ids must be integers, got torch.float32"):
        codec.decode(ids[0].float() + 0.4, ids[1])
    with pytest.raises(ValueError, match="accompaniment ids: ids outside"):
        codec.decode(ids[0], torch.full((5,), -1))
    for cfg in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="cfg_scale must be a finite number >= 0"):
            codec.decode(*ids, cfg_scale=cfg)
    for steps in (0, -2, 2.5):
        with pytest.raises(ValueError, match="steps must be an integer >= 1"):
            codec.decode(*ids, steps=steps)
    for shift in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="time_shift must be a finite number > 0"):
            codec.decode(*ids, time_shift=shift)
    with pytest.raises(ValueError, match="precision must be one of"):
        codec.decode(*ids, precision="fp16")


def test_time_grid_and_precision_are_decoding_settings(codec):
    ids = _ids(codec, 25)
    base = codec.decode(*ids)
    assert codec.decoder.config.time_shift == 1.0 and codec.decoder.config.precision == "fp32"
    assert torch.equal(base[0], codec.decode(*ids, time_shift=1.0, precision="fp32")[0])
    shifted = codec.decode(*ids, time_shift=3.0)
    assert not torch.equal(base[0], shifted[0])
    assert torch.equal(shifted[0], codec.decode(*ids, time_shift=3.0)[0])            # still seeded
    if codec.decoder.sampling_precision("auto").used == "bf16":   # native bf16 only: emulated, it is slow
        bf16 = codec.decode(*ids, precision="bf16")
        assert not torch.equal(base[0], bf16[0])                   # the DiT really ran in bf16 ...
        torch.testing.assert_close(bf16[0], base[0], atol=0.05 * float(base[0].abs().max()) + 1e-4, rtol=0)


def test_auto_precision_follows_the_hardware(codec, monkeypatch):
    import duotok.tokenizer.decoder as decoder_module
    from duotok.train.precision import Capability, resolve_precision

    decoder = TokenDecoder(codec.decoder.config)
    decoder.load_state_dict(codec.decoder.state_dict())
    for native, used in ((False, "fp32"), (True, "bf16")):
        decoder._precisions.clear()
        monkeypatch.setattr(decoder_module, "resolve_precision",
                            lambda setting, device, n=native: resolve_precision(setting, device, Capability(n, "test")))
        assert decoder.sampling_precision("auto").used == used
        assert decoder.sampling_precision("fp32").used == "fp32"
    assert decoder.sampling_precision().used == "fp32"              # the config's: fp32


def test_a_codec_saved_before_the_grid_and_precision_options_decodes_as_before(codec, tmp_path):
    import json

    directory = codec.save_pretrained(tmp_path / "old")
    header = json.loads((directory / "config.json").read_text())
    for key in ("time_shift", "precision"):
        del header["config"]["decoder"][key]
    (directory / "config.json").write_text(json.dumps(header))
    old = DuoTok.from_pretrained(directory).eval()
    assert (old.decoder.config.time_shift, old.decoder.config.precision) == (1.0, "fp32")
    ids = _ids(codec, 25)
    assert torch.equal(old.decode(*ids)[0], codec.decode(*ids)[0])


def test_decode_a_folder_reports_every_bad_file_and_decodes_the_rest(codec, tmp_path):
    from .test_tokens import write_header

    good = codec.token_file(*_ids(codec, 25), num_samples=16000)
    for name in ("a", "c", "e"):
        save_tokens(tmp_path / "in" / f"{name}.tok", good)
    bad = {"b": {**good.header(), "num_samples": -5}, "d": [1, 2]}
    for name, header in bad.items():
        save_tokens(tmp_path / "in" / f"{name}.tok", good)
        write_header(tmp_path / "in" / f"{name}.tok", header)
    report = decode_paths(codec, tmp_path / "in", tmp_path / "out", progress=False)
    assert sorted(p.name for p in report.written) == ["a", "c", "e"]
    assert sorted(p.name for p in report.failed) == ["b.tok", "d.tok"]
    for src, problem in report.failed.items():
        assert problem.startswith(f"{src}: ")
    assert "num_samples" in report.failed[tmp_path / "in" / "b.tok"]
    assert "JSON object" in report.failed[tmp_path / "in" / "d.tok"]
