"""Tiny codec and generative-model builders shared by the generative separator's tests."""

from __future__ import annotations

from typing import Any

import torch

from duotok.codecs.rvq import RVQCodecModel, RVQConfig
from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder
from duotok.separation.conformer import ConformerConfig
from duotok.separation.generative import GenerativeSeparator, GenerativeSeparatorConfig

AE = dict(dim=16, n_blocks=1, latent_dim=4, n_fft=512)
V = 16          # codebook size of the tiny codec
N_CODEBOOKS = 3


def tiny_codec(seed: int = 0) -> RVQCodecModel:
    """An untrained 3 x 16 RVQ codec on a tiny autoencoder (as tests/codecs builds them)."""
    torch.manual_seed(seed)
    ae = WaveAutoencoder(AutoencoderConfig(**AE))
    return RVQCodecModel.from_autoencoder(ae, RVQConfig(n_codebooks=N_CODEBOOKS, codebook_size=V)).eval()


def tiny_config(**overrides: Any) -> GenerativeSeparatorConfig:
    base: dict[str, Any] = dict(
        n_codebooks=2, codebook_size=V, dim=32, n_layers=2, n_heads=2, mlp_ratio=2.0,
        conformer=ConformerConfig(input_dim=16, dim=32, n_layers=1, n_heads=2, kernel_size=5),
        mel_bins=16, mel_n_fft=512, max_frames=40)
    base.update(overrides)
    return GenerativeSeparatorConfig(**base)


def tiny_model(seed: int = 0, **overrides: Any) -> GenerativeSeparator:
    torch.manual_seed(seed)
    return GenerativeSeparator(tiny_config(**overrides))


def features_for(model: GenerativeSeparator, b: int, t: int, seed: int = 0) -> torch.Tensor:
    """Mixture features of ``b`` rows of ``t`` frames in the form the model's encoder reads."""
    g = torch.Generator().manual_seed(seed)
    c = model.config
    if c.encoder == "mixture_tokens":
        return torch.randint(0, c.codebook_size, (b, c.n_codebooks, t), generator=g)
    return 0.1 * torch.randn(b, t * c.hop_length, generator=g)


def random_codes(model: GenerativeSeparator, b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 100)
    c = model.config
    return torch.randint(0, c.codebook_size, (b, 4, c.n_codebooks, t), generator=g)
