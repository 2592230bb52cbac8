"""The waveform autoencoder: latent geometry, checkpoints, the VAE/AE objective and its masking."""

from __future__ import annotations

import math

import pytest
import torch

from duotok.errors import CheckpointError
from duotok.models.autoencoder import LEGACY_DEFAULTS, AutoencoderConfig, WaveAutoencoder

TINY = {"dim": 32, "n_blocks": 1, "n_fft": 512, "latent_dim": 8}


def tiny(**overrides) -> WaveAutoencoder:
    torch.manual_seed(0)
    return WaveAutoencoder(AutoencoderConfig(**{**TINY, **overrides}))


def sine(seconds: float, freq: float = 440.0, batch: int = 1) -> torch.Tensor:
    t = torch.arange(int(16000 * seconds)) / 16000
    return (0.5 * torch.sin(2 * math.pi * freq * t)).expand(batch, -1).clone()


def test_geometry():
    model = tiny()
    assert model.samples_per_latent == 320 and model.latent_rate == 50.0
    assert model.latent_length(3200) == 10 and model.latent_length(3201) == 11 and model.latent_length(1) == 1


def test_shapes_and_padding():
    model = tiny().eval()
    audio = torch.randn(2, 3200) * 0.1
    with torch.no_grad():
        latent = model.encode(audio)
        assert latent.shape == (2, 8, 10)
        assert model.decode(latent).shape == (2, 3200)
        # A length that is not a multiple of 320 is zero-padded at the end.
        ragged = audio[:, :3000]
        assert torch.allclose(model.encode(ragged), model.encode(torch.nn.functional.pad(ragged, (0, 200))))
        assert model.reconstruct(ragged).shape == (2, 3000)
        # 1-D input: (T,) -> (latent_dim, L) -> (L * 320,), consistent with the batched path.
        single = model.encode(audio[0])
        assert single.shape == (8, 10)
        assert torch.allclose(single, latent[0], atol=1e-5)
        assert model.decode(single).shape == (3200,)
        assert model.reconstruct(audio[0]).shape == (3200,)
        # Very short inputs (shorter than the STFT's reflect padding) still encode.
        assert model.encode(torch.randn(1, 100)).shape == (1, 8, 1)
        mean, logvar = model.encode_distribution(audio)
        assert mean.shape == logvar.shape == (2, 8, 10)


def test_save_and_load_round_trip(tmp_path):
    model = tiny().eval()
    model.save_pretrained(tmp_path / "ae")
    loaded = WaveAutoencoder.from_pretrained(tmp_path / "ae")
    assert loaded.config == model.config
    audio = torch.randn(1, 3200) * 0.1
    with torch.no_grad():
        assert torch.equal(model.encode(audio), loaded.encode(audio))
        assert torch.equal(model.reconstruct(audio), loaded.reconstruct(audio))
    # Weights from another config are refused with the offending tensor named.
    other = tiny(dim=48)
    other.save_pretrained(tmp_path / "other")
    (tmp_path / "ae" / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="another config"):
        WaveAutoencoder.from_pretrained(tmp_path / "ae")


def test_vae_encode_is_the_mean_in_train_and_eval():
    model = tiny()
    audio = torch.randn(2, 3200) * 0.1
    with torch.no_grad():
        train_a, train_b = model.train().encode(audio), model.encode(audio)
        eval_latent = model.eval().encode(audio)
        mean, _ = model.encode_distribution(audio)
    assert torch.equal(train_a, train_b) and torch.equal(train_a, eval_latent) and torch.equal(mean, eval_latent)


def train_steps(model, steps: int, check_grads: bool = False):
    """Adam (lr 3e-3) on two half-second sines for ``steps`` steps; every loss (and, if asked, every
    gradient) must be finite. Returns the losses and the last step's metrics."""
    audio = sine(0.5, batch=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss, metrics = model(audio)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        if check_grads:
            assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()
        losses.append(loss.item())
    return losses, metrics


def test_vae_training_reduces_the_loss():
    model = tiny().train()
    losses, metrics = train_steps(model, 30)
    assert set(metrics) == {"mel_l1", "stft", "kl", "latent_std"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert losses[-1] < 0.8 * losses[0], losses


def test_ae_bottleneck_has_no_kl_and_bad_names_are_refused():
    model = tiny(bottleneck="ae")
    loss, metrics = model(sine(0.2, batch=1))
    assert torch.isfinite(loss) and "kl" not in metrics
    assert model.encode_distribution(torch.randn(1, 640))[1] is None
    with pytest.raises(ValueError, match="bottleneck"):
        AutoencoderConfig(bottleneck="rvq-ish")
    with pytest.raises(ValueError, match="n_fft"):
        AutoencoderConfig(n_fft=256, hop_length=160)


def test_padding_beyond_lengths_is_not_scored():
    model = tiny().eval()  # eval: the VAE uses its mean, so two calls are comparable
    audio = torch.randn(2, 4800) * 0.1
    lengths = torch.tensor([3000, 4800])
    changed = audio.clone()
    changed[0, 3000:] = torch.randn(1800)
    with torch.no_grad():
        a, metrics_a = model(audio, lengths)
        b, _ = model(changed, lengths)
        unmasked_a, _ = model(audio)
        unmasked_b, _ = model(changed)
    assert torch.equal(a, b)
    assert not torch.equal(unmasked_a, unmasked_b)
    assert "kl" in metrics_a


def test_decoder_head_magnitude_is_clamped():
    model = tiny().eval()
    with torch.no_grad():
        spec = model.decoder.spectrogram(torch.full((1, 8, 4), 1e4))
        audio = model.decode(torch.full((1, 8, 4), 1e4))
    assert torch.isfinite(spec).all() and spec.abs().max() <= math.exp(model.config.max_log_magnitude) * 1.001
    assert torch.isfinite(audio).all() and spec.dtype == torch.complex64


def test_bf16_autocast_keeps_spectral_maths_in_float32():
    model = tiny()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model(sine(0.2))
        audio = model.decode(torch.randn(1, 8, 3))
    assert loss.dtype == torch.float32 and audio.dtype == torch.float32 and torch.isfinite(loss)


# --------------------------------------------------------------------------- phase head and phase-aware losses


def test_default_phase_head_builds_the_original_modules():
    """``phase_head="angle"`` (the default) is the original decoder: the head is the one Linear of
    2 x 513 outputs, and the loss weights do not change the modules or their initialisation."""
    plain, weighted = tiny(), tiny(complex_weight=1.0, phase_weight=0.3, wave_weight=1.0)
    a, b = plain.state_dict(), weighted.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert a["decoder.head.weight"].shape == (2 * 257, 32) and a["decoder.head.bias"].shape == (2 * 257,)
    unit = tiny(phase_head="unit").state_dict()
    assert list(unit) == list(a) and unit["decoder.head.weight"].shape == (3 * 257, 32)
    with pytest.raises(ValueError, match="phase_head"):
        AutoencoderConfig(phase_head="wrapped")
    with pytest.raises(ValueError, match="phase_weight"):
        AutoencoderConfig(phase_weight=-1.0)
    with pytest.raises(ValueError, match="complex_compression"):
        AutoencoderConfig(complex_compression=0.0)
    with pytest.raises(ValueError, match="encoder_input"):
        AutoencoderConfig(encoder_input="waveform")
    with pytest.raises(ValueError, match="phase_terms"):
        AutoencoderConfig(phase_terms=("ip", "ip"))
    with pytest.raises(ValueError, match="phase_terms"):
        AutoencoderConfig(phase_terms=())
    # The integrated head has the original layout; the complex encoder input widens only the embedding.
    integrated = tiny(phase_head="integrated").state_dict()
    assert {k: v.shape for k, v in integrated.items()} == {k: v.shape for k, v in a.items()}
    complex_input = tiny(encoder_input="complex").state_dict()
    assert list(complex_input) == list(a) and complex_input["encoder.embed.weight"].shape == (32, 3 * 257, 3)


def test_unit_phase_head_gives_unit_phase_factors():
    model = tiny(phase_head="unit").eval()
    latent = torch.randn(2, 8, 5)
    with torch.no_grad():
        log_mag, cos, sin = model.decoder.head_outputs(latent)
        spec = model.decoder.spectrogram(latent)
        audio = model.decode(latent)
    assert log_mag.shape == cos.shape == sin.shape == (2, 257, 10)
    assert torch.allclose(cos.square() + sin.square(), torch.ones_like(cos), atol=1e-5)
    assert spec.shape == (2, 257, 10) and spec.dtype == torch.complex64
    assert torch.allclose(spec.abs(), log_mag.exp(), rtol=1e-5)
    assert audio.shape == (2, 1600) and torch.isfinite(audio).all()
    # The angle head's factors are unit too, and the same spectrum as before (exp(m) · e^{ip}).
    angle = tiny().eval()
    with torch.no_grad():
        log_mag, cos, sin = angle.decoder.head_outputs(latent)
        out = angle.decoder.head(angle.decoder.norm(angle.decoder.blocks_high(angle.decoder.upsample(
            angle.decoder.blocks_low(angle.decoder.embed_norm(angle.decoder.embed(latent))))).transpose(1, 2)))
        phase = out.transpose(1, 2).chunk(2, dim=1)[1]
    assert torch.allclose(cos, torch.cos(phase)) and torch.allclose(sin, torch.sin(phase))


def test_phase_aware_training_reduces_the_loss_and_logs_its_terms():
    model = tiny(phase_head="unit", complex_weight=1.0, phase_weight=0.3, wave_weight=1.0).train()
    losses, metrics = train_steps(model, 20, check_grads=True)
    assert set(metrics) == {"mel_l1", "stft", "kl", "latent_std", "complex", "phase", "phase_ip", "phase_gd",
                            "phase_iaf", "wave"}
    assert losses[-1] < 0.8 * losses[0], losses


def test_a_checkpoint_from_before_the_phase_options_still_loads(tmp_path):
    """A config.json written before ``phase_head`` and the phase-aware weights existed loads with the
    values its weights were trained with (angle head, weights 0)."""
    import json

    model = tiny().eval()
    model.save_pretrained(tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    header = json.loads(path.read_text())
    for key in LEGACY_DEFAULTS:
        del header["config"][key]
    path.write_text(json.dumps(header))
    loaded = WaveAutoencoder.from_pretrained(tmp_path / "old")
    assert loaded.config == model.config and loaded.config.phase_head == "angle"
    audio = torch.randn(1, 3200) * 0.1
    with torch.no_grad():
        assert torch.equal(model.reconstruct(audio), loaded.reconstruct(audio))
    # Other missing fields are still refused.
    del header["config"]["dim"]
    path.write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="missing field"):
        WaveAutoencoder.from_pretrained(tmp_path / "old")


def test_integrated_phase_head_advances_each_bin_like_a_steady_sinusoid():
    """With a zero deviation the phase of bin k advances by 2π k · hop / n_fft per frame: a constant head
    output already gives every bin-centred steady partial a coherent phase (which the angle head would
    have to produce as a ramp from a constant input)."""
    model = tiny(phase_head="integrated").eval()
    with torch.no_grad():
        model.decoder.head.weight.zero_()
        model.decoder.head.bias.zero_()
        _, cos, sin = model.decoder.head_outputs(torch.randn(1, 8, 6))
    unit = torch.complex(cos, sin)
    assert torch.allclose(unit.abs(), torch.ones(unit.shape), atol=1e-5)
    advance = torch.angle(unit[..., 1:] * unit[..., :-1].conj())           # (1, 257, 11)
    k = torch.arange(257, dtype=torch.float64)[:, None]
    error = advance[0].double() - 2 * math.pi * k * 160 / 512
    assert (error - 2 * math.pi * torch.round(error / (2 * math.pi))).abs().max() < 1e-4   # equal up to whole turns


def test_the_magnitude_encoder_is_phase_blind_and_the_complex_one_is_not():
    """−x has x's magnitudes: the original encoder gives it the same latent, so no decoder could know the
    phase; with encoder_input="complex" the latent differs."""
    audio = sine(0.2, freq=330.0) + 0.1 * sine(0.2, freq=1210.0)
    with torch.no_grad():
        blind = tiny().eval()
        assert torch.allclose(blind.encode(audio), blind.encode(-audio), atol=1e-6)
        seeing = tiny(encoder_input="complex").eval()
        features = seeing.encoder.features(audio)
        assert features.shape == (1, 3 * 257, 20)
        assert not torch.allclose(seeing.encode(audio), seeing.encode(-audio), atol=1e-3)


def test_phase_terms_choose_what_the_phase_weight_applies_to():
    model = tiny(phase_head="integrated", phase_weight=1.0, phase_terms=("gd", "iaf")).eval()
    with torch.no_grad():
        loss, metrics = model(sine(0.3))
        base, _ = tiny(phase_head="integrated").eval()(sine(0.3))
    assert math.isclose(metrics["phase"], metrics["phase_gd"] + metrics["phase_iaf"], rel_tol=1e-5)
    assert math.isclose(loss.item(), base.item() + metrics["phase"], rel_tol=1e-5)
