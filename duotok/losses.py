"""The spectral training losses every waveform model here shares (the stage-4 autoencoder, the RVQ
codec baseline): a multi-scale log-mel L1 and a multi-resolution STFT loss, all in float32.

Why one module: both models train on the same objective, and a loss that lives in ``eval/`` or in one
model file makes the other import upward or copy it. The multi-scale mel distance is also what
:mod:`duotok.eval.reconstruction` reports as Mel L1 today (DAC-style scales; the filterbank is
librosa's Slaney one, area-normalised), so the autoencoder trains on the quantity it is scored on.
"""

from __future__ import annotations

import functools
import warnings

import torch

from duotok.audio.features import mel_filterbank, stft

LOG_EPS = 1e-5

#: The toolkit's (DAC's) seven scales: window length in samples and number of mel bands.
MEL_WINDOW_LENGTHS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
MEL_N_MELS: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)
MEL_CLAMP = 1e-5


@functools.lru_cache(maxsize=64)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Slaney mel filterbank up to Nyquist. At the smallest windows some bands get no FFT bin
    ("empty filters", as in DAC); those bands are 0 in both signals and contribute 0 distance."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Empty filters detected")
        return torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, 0.0, sample_rate / 2))


def log_mel_power(audio: torch.Tensor, sample_rate: int, window_length: int, n_mels: int,
                  clamp: float = MEL_CLAMP) -> torch.Tensor:
    """``(..., T)`` → ``(..., n_mels, frames)`` natural-log mel power at one scale (float32)."""
    spec = stft(audio, window_length, window_length // 4, window_length)
    with torch.autocast(device_type=audio.device.type, enabled=False):
        power = spec.real.square() + spec.imag.square()
        basis = _mel_basis(int(sample_rate), int(window_length), int(n_mels)).to(audio.device)
        return torch.log(torch.clamp(torch.matmul(basis, power), min=clamp))


def multiscale_mel_l1(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                      window_lengths: tuple[int, ...] = MEL_WINDOW_LENGTHS,
                      n_mels: tuple[int, ...] = MEL_N_MELS, clamp: float = MEL_CLAMP,
                      reduce: bool = True) -> torch.Tensor:
    """Multi-scale log-mel L1 between ``(..., T)`` signals.

    Returns a scalar (mean over everything) with ``reduce=True``, else one value per leading index
    ``(...)`` — the per-item numbers the reports aggregate. Differentiable in ``estimate``."""
    if reference.shape != estimate.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} differ in shape")
    if len(window_lengths) != len(n_mels) or not window_lengths:
        raise ValueError("window_lengths and n_mels must be non-empty and of equal length")
    if reference.shape[-1] <= max(window_lengths) // 2:
        raise ValueError(f"signals of {reference.shape[-1]} samples are too short for a {max(window_lengths)}-sample "
                         "window")
    per_scale = []
    for win, mels in zip(window_lengths, n_mels, strict=True):
        ref = log_mel_power(reference, sample_rate, win, mels, clamp)
        est = log_mel_power(estimate, sample_rate, win, mels, clamp)
        per_scale.append((ref - est).abs().mean(dim=(-2, -1)))
    distance = torch.stack(per_scale).mean(dim=0)
    return distance.mean() if reduce else distance


def _magnitude(audio: torch.Tensor, window: int) -> torch.Tensor:
    spec = stft(audio, window, window // 4, window)
    with torch.autocast(device_type=audio.device.type, enabled=False):
        # sqrt of a floored power: |S| has an infinite gradient at exactly 0 (e.g. masked padding).
        return torch.sqrt((spec.real.square() + spec.imag.square()).clamp_min(1e-12))


def multiresolution_stft_loss(reference: torch.Tensor, estimate: torch.Tensor,
                              windows: tuple[int, ...]) -> torch.Tensor:
    """Mean over ``windows`` (Hann, hop = window / 4) of spectral convergence ``‖|S| − |Ŝ|‖_F / ‖|S|‖_F``
    (over the whole batch, so one silent item cannot divide by zero) plus the mean absolute difference of
    ``log(|S| + 1e-5)``. Float32 throughout."""
    with torch.autocast(device_type=reference.device.type, enabled=False):
        reference, estimate = reference.float(), estimate.float()
        total = reference.new_zeros(())
        for win in windows:
            ref, est = _magnitude(reference, win), _magnitude(estimate, win)
            convergence = torch.linalg.vector_norm(ref - est) / torch.linalg.vector_norm(ref).clamp_min(1e-7)
            log_l1 = (torch.log(ref + LOG_EPS) - torch.log(est + LOG_EPS)).abs().mean()
            total = total + convergence + log_l1
        return total / len(windows)


def spectral_reconstruction_loss(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                                 stft_windows: tuple[int, ...], mel_weight: float,
                                 stft_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``mel_weight`` x multi-scale mel L1 + ``stft_weight`` x multi-resolution STFT loss, autocast off;
    returns the weighted sum and both terms (``mel_l1``, ``stft``) for the logs."""
    with torch.autocast(device_type=reference.device.type, enabled=False):
        reference, estimate = reference.float(), estimate.float()
        mel = multiscale_mel_l1(reference, estimate, sample_rate)
        spectral = multiresolution_stft_loss(reference, estimate, stft_windows)
        return mel_weight * mel + stft_weight * spectral, {"mel_l1": mel, "stft": spectral}
