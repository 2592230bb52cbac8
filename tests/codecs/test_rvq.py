import torch

from duotok.codecs.base import Codec, bitrate, codebook_label
from duotok.codecs.rvq import RVQCodecModel, RVQConfig
from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder

AE = dict(dim=16, n_blocks=1, latent_dim=4, n_fft=512)


def _codec(seed: int = 0) -> RVQCodecModel:
    torch.manual_seed(seed)
    ae = WaveAutoencoder(AutoencoderConfig(**AE))
    return RVQCodecModel.from_autoencoder(ae, RVQConfig(n_codebooks=3, codebook_size=16)).eval()


def _audio(n: int = 3200, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_interface_and_geometry():
    codec = _codec()
    assert isinstance(codec, Codec)
    ids = codec.encode(_audio(3300))
    assert ids.shape == (3, 11) and ids.dtype == torch.long          # ceil(3300 / 320) frames
    assert codec.frame_rate == 50.0 and codebook_label(codec) == "3x16"
    assert bitrate(codec) == 50.0 * 3 * 4
    out = codec.decode(ids, num_samples=3300)
    assert set(out) == {"mixture"} and out["mixture"].shape == (3300,)


def test_embed_of_codes_is_the_quantized_latent():
    """Decoding the indices reproduces the RVQ's forward pass (the vector-quantize-pytorch invariant)."""
    codec = _codec()
    audio = _audio()
    latent = codec.autoencoder.encode(audio[None]).transpose(1, 2)
    quantized, indices, _ = codec.rvq(latent)
    torch.testing.assert_close(codec.embed(codec.encode(audio)), quantized[0].float(), atol=1e-5, rtol=1e-5)
    assert torch.equal(codec.encode(audio), indices[0].T)


def test_warm_start_keeps_the_vae_mean_half():
    torch.manual_seed(0)
    ae = WaveAutoencoder(AutoencoderConfig(**AE, bottleneck="vae"))
    codec = RVQCodecModel.from_autoencoder(ae, RVQConfig(n_codebooks=2, codebook_size=8))
    torch.testing.assert_close(codec.autoencoder.encoder.proj.weight, ae.encoder.proj.weight[:4])
    ae.eval()
    torch.testing.assert_close(codec.autoencoder.encode(_audio()[None]), ae.encode(_audio()[None]))
    for name, value in ae.decoder.state_dict().items():
        torch.testing.assert_close(codec.autoencoder.decoder.state_dict()[name], value)


def test_training_step_and_save_load(tmp_path):
    codec = _codec().train()
    audio = torch.randn(2, 3200) * 0.1
    loss, metrics = codec(audio, torch.tensor([3200, 2000]))
    assert torch.isfinite(loss) and {"mel_l1", "stft", "commitment", "usage_mean"} <= set(metrics)
    loss.backward()
    assert codec.autoencoder.encoder.proj.weight.grad is not None
    codec.eval()
    codec.save_pretrained(tmp_path / "rvq")
    loaded = RVQCodecModel.from_pretrained(tmp_path / "rvq").eval()
    assert loaded.fingerprint() == codec.fingerprint()
    assert torch.equal(loaded.encode(_audio()), codec.encode(_audio()))
    other = _codec(seed=1)
    assert other.fingerprint() != codec.fingerprint()
