"""The shared spectral training losses: zero on identical signals, growing with the error, differentiable,
float32 under bf16 autocast, and the weighted sum of the terms they report; the phase-aware ones see the
phase errors the magnitude ones cannot."""

from __future__ import annotations

import math

import torch

from duotok.audio.features import stft
from duotok.losses import (
    anti_wrap,
    complex_spectrum_distance,
    multiresolution_complex_loss,
    multiresolution_stft_loss,
    multiscale_mel_l1,
    phase_losses,
    phase_spectrum_distances,
    spectral_reconstruction_loss,
    stft_magnitude_distance,
    waveform_l1,
)

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


# --------------------------------------------------------------------------- phase-aware losses

WINDOWS = (256, 512, 1024, 2048)


def _random_phase(spec: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The same magnitudes, every bin's phase uniform at random."""
    g = torch.Generator().manual_seed(seed)
    return spec.abs() * torch.exp(1j * 2 * math.pi * torch.rand(spec.shape, generator=g))


def test_phase_aware_losses_cost_nothing_for_identical_signals():
    clean, _, heavy = _signals()
    assert multiresolution_complex_loss(clean, clean, WINDOWS) < 1e-6
    assert all(v < 1e-6 for v in phase_losses(clean, clean, WINDOWS).values())
    assert waveform_l1(clean, clean) == 0
    # ... and more for a worse estimate.
    _, slight, _ = _signals()
    assert multiresolution_complex_loss(clean, slight, WINDOWS) < multiresolution_complex_loss(clean, heavy, WINDOWS)
    assert phase_losses(clean, slight, WINDOWS)["ip"] < phase_losses(clean, heavy, WINDOWS)["ip"]


def test_random_phase_on_exact_magnitudes_is_invisible_to_magnitude_losses_but_not_to_phase_aware_ones():
    """The point of issue 18: at every loss resolution, a spectrum with the reference's exact magnitudes
    and random phase scores ~0 on the magnitude loss and near the theoretical random-phase values on the
    phase-aware ones (complex: E|1 − e^{iθ}| = 4/π relative; each anti-wrapped phase error: π/2)."""
    g = torch.Generator().manual_seed(3)
    music = torch.randn(2, SR, generator=g) * torch.linspace(0.01, 0.3, SR)   # broadband, rising level
    clean, _, _ = _signals()
    for reference in (clean, music):
        for win in WINDOWS:
            ref = stft(reference, win, win // 4, win)
            est = _random_phase(ref, seed=win)
            assert stft_magnitude_distance(ref, est) < 1e-5
            assert abs(complex_spectrum_distance(ref, est).item() - 4 / math.pi) < 0.05
            for name, value in phase_spectrum_distances(ref, est).items():
                assert abs(value.item() - math.pi / 2) < 0.1, (name, win, value)
            # The exact phase costs nothing.
            assert complex_spectrum_distance(ref, ref) < 1e-6
            assert all(v < 1e-6 for v in phase_spectrum_distances(ref, ref).values())


def test_a_sign_flip_has_exact_magnitudes_everywhere_and_only_phase_aware_losses_see_it():
    """Waveform level: −x has x's magnitudes at every resolution (mel and STFT losses exactly 0) and
    phase φ + π. The complex loss is 2 (|C + C| / |C|), the instantaneous phase error π; group delay and
    instantaneous frequency are differences of phase, blind to a constant rotation by design."""
    clean, _, _ = _signals()
    assert multiscale_mel_l1(clean, -clean, SR) < 1e-6
    assert multiresolution_stft_loss(clean, -clean, WINDOWS) < 1e-5
    assert abs(multiresolution_complex_loss(clean, -clean, WINDOWS).item() - 2.0) < 1e-3
    phase = phase_losses(clean, -clean, WINDOWS)
    assert abs(phase["ip"].item() - math.pi) < 1e-3 and phase["gd"] < 1e-3 and phase["iaf"] < 1e-3
    assert waveform_l1(clean, -clean) > 0.1


def test_anti_wrapping_ignores_whole_turns():
    x = torch.tensor([0.0, 0.3, 2 * math.pi + 0.3, -2 * math.pi - 0.3, math.pi, 5 * math.pi])
    assert torch.allclose(anti_wrap(x), torch.tensor([0.0, 0.3, 0.3, 0.3, math.pi, math.pi]), atol=1e-5)


def test_phase_aware_gradients_are_finite_even_for_silent_or_exact_estimates():
    clean, _, heavy = _signals()
    for start in (heavy, torch.zeros_like(clean), clean.clone()):
        estimate = start.clone().requires_grad_(True)
        loss = (multiresolution_complex_loss(clean, estimate, WINDOWS) + sum(phase_losses(clean, estimate, WINDOWS).values())
                + waveform_l1(clean, estimate))
        loss.backward()
        assert torch.isfinite(loss) and estimate.grad is not None and torch.isfinite(estimate.grad).all()
    # A wrong estimate gets a gradient from each phase term on its own.
    for name in ("ip", "gd", "iaf"):
        estimate = heavy.clone().requires_grad_(True)
        phase_losses(clean, estimate, WINDOWS)[name].backward()
        assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0, name


def test_combined_loss_adds_the_enabled_phase_aware_terms_only():
    clean, _, heavy = _signals()
    base, base_terms = spectral_reconstruction_loss(clean, heavy, SR, (256, 512), 1.0, 1.0)
    assert set(base_terms) == {"mel_l1", "stft"}
    estimate = heavy.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, terms = spectral_reconstruction_loss(clean, estimate, SR, (256, 512), 1.0, 1.0, complex_weight=0.5,
                                                   phase_weight=0.25, wave_weight=2.0)
    assert loss.dtype == torch.float32
    assert set(terms) == {"mel_l1", "stft", "complex", "phase", "phase_ip", "phase_gd", "phase_iaf", "wave"}
    # The shared-STFT path gives the same magnitude term as the magnitude-only path.
    assert torch.allclose(terms["stft"], base_terms["stft"]) and torch.allclose(terms["mel_l1"], base_terms["mel_l1"])
    assert torch.allclose(terms["complex"], multiresolution_complex_loss(clean, heavy, (256, 512)))
    assert torch.allclose(terms["phase"], terms["phase_ip"] + terms["phase_gd"] + terms["phase_iaf"])
    assert torch.allclose(terms["phase_gd"], phase_losses(clean, heavy, (256, 512))["gd"])
    assert torch.allclose(loss, base + 0.5 * terms["complex"] + 0.25 * terms["phase"] + 2.0 * terms["wave"])
    loss.backward()
    assert torch.isfinite(estimate.grad).all()
