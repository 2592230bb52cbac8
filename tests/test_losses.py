"""The shared spectral training losses: zero on identical signals, growing with the error, differentiable,
float32 under bf16 autocast, and the weighted sum of the two terms they report."""

from __future__ import annotations

import torch

from duotok.losses import multiresolution_stft_loss, multiscale_mel_l1, spectral_reconstruction_loss

SR = 16000


def _signals():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(SR) / SR
    clean = 0.3 * torch.sin(2 * torch.pi * 440 * t)[None].repeat(2, 1)
    return clean, clean + 0.01 * torch.randn(clean.shape, generator=g), clean + 0.1 * torch.randn(clean.shape,
                                                                                                    generator=g)


def test_identical_signals_cost_nothing_and_more_noise_costs_more():
    clean, slight, heavy = _signals()
    windows = (256, 512)
    assert multiresolution_stft_loss(clean, clean, windows) < 1e-5
    assert multiscale_mel_l1(clean, clean, SR) < 1e-6
    assert multiresolution_stft_loss(clean, slight, windows) < multiresolution_stft_loss(clean, heavy, windows)
    assert multiscale_mel_l1(clean, slight, SR) < multiscale_mel_l1(clean, heavy, SR)


def test_weighted_sum_gradients_and_float32_under_autocast():
    clean, _, heavy = _signals()
    estimate = heavy.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, terms = spectral_reconstruction_loss(clean, estimate, SR, (256, 512), mel_weight=2.0, stft_weight=0.5)
    assert loss.dtype == torch.float32 and set(terms) == {"mel_l1", "stft"}
    assert torch.allclose(loss, 2.0 * terms["mel_l1"] + 0.5 * terms["stft"])
    loss.backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0
