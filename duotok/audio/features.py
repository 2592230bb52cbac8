"""The log-mel / STFT front end shared by every model.

All spectral maths runs in float32 with autocast disabled: bfloat16 has an 8-bit mantissa, which
is too coarse for an FFT and for power values spanning ~10 orders of magnitude, while the models
that consume the features are free to run in bfloat16 under ``torch.autocast``.

Framing convention (as librosa's ``center=True``): the signal is reflect-padded by ``n_fft // 2``
on both sides, so frame ``i`` is centred on sample ``i * hop_length`` and a signal of ``T``
samples has ``T // hop_length + 1`` frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def _hann(win_length: int, device: torch.device) -> torch.Tensor:
    """Periodic Hann window, as librosa's ``get_window("hann", fftbins=True)``."""
    return torch.hann_window(win_length, periodic=True, dtype=torch.float32, device=device)


def _flatten_batch(x: torch.Tensor, core_dims: int) -> tuple[torch.Tensor, torch.Size]:
    """Collapse all leading dims into one, so torch's (batch, ...) only ops accept any (..., core)."""
    lead = x.shape[: x.dim() - core_dims]
    return x.reshape(-1, *x.shape[x.dim() - core_dims :]), lead


def _analysis_window(window: torch.Tensor | None, win_length: int, device: torch.device) -> torch.Tensor:
    """The caller's window in float32 on ``device``, or a Hann window (stft and istft must agree)."""
    if window is not None:
        return window.to(device=device, dtype=torch.float32)
    return _hann(win_length, device)


def stft(
    audio: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """Complex STFT of ``(..., T)`` audio → ``(..., n_fft // 2 + 1, T // hop_length + 1)``.

    Hann window, ``center=True`` with reflect padding, computed in float32 (complex64) whatever
    the input dtype or autocast state. Reflect padding needs ``T > n_fft // 2``.
    """
    if audio.dim() < 1:
        raise ValueError("stft expects a (..., T) tensor")
    n_samples = audio.shape[-1]
    if n_samples <= n_fft // 2:
        raise ValueError(
            f"signal of {n_samples} samples is too short for reflect padding with n_fft={n_fft} "
            f"(needs more than {n_fft // 2})"
        )
    with torch.autocast(device_type=audio.device.type, enabled=False):
        flat, lead = _flatten_batch(audio.to(torch.float32), 1)
        win = _analysis_window(window, win_length, audio.device)
        spec = torch.stft(
            flat,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            window=win,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
    return spec.reshape(*lead, *spec.shape[-2:])


def magnitude(spec: torch.Tensor) -> torch.Tensor:
    """``|spec|`` of a complex spectrogram, float32.

    Why not ``spec.abs()``: on the CPU, torch's complex ``abs`` of an STFT (a strided complex64 view)
    took 330 ms for the finetune batch's (8, 4, 513, 1001) stem spectra — a fifth of the stage-2 step
    (torch profiler, 2-core Intel Xeon with AMX-BF16, 2 threads) — while ``hypot(re, im)`` computes the same
    values (to float32 rounding) in a fraction of that. ``hypot``'s gradient is NaN at ``0 + 0j``,
    where ``abs``'s is 0, so a spectrum that carries a gradient (a model's output) keeps ``abs``;
    the fast path is for spectra of inputs and targets."""
    if not spec.is_complex():
        raise ValueError("magnitude expects a complex spectrogram")
    if spec.requires_grad and torch.is_grad_enabled():
        return spec.abs()
    return torch.hypot(spec.real, spec.imag)


def istft(
    spec: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int,
    length: int,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inverse of :func:`stft`: ``(..., F, frames)`` complex → ``(..., length)`` float32 audio."""
    if not spec.is_complex():
        raise ValueError("istft expects a complex spectrogram")
    with torch.autocast(device_type=spec.device.type, enabled=False):
        flat, lead = _flatten_batch(spec.to(torch.complex64), 2)
        win = _analysis_window(window, win_length, spec.device)
        audio = torch.istft(
            flat,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            window=win,
            center=True,
            length=length,
        )
    return audio.reshape(*lead, length)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """librosa's Slaney-style mel filterbank ``(n_mels, n_fft // 2 + 1)``, float32.

    librosa is imported here rather than at module import because it costs ~1 s to import and
    most users of :mod:`duotok.audio` never build a filterbank.
    """
    import librosa

    return librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, norm="slaney", htk=False
    ).astype(np.float32)


class LogMel(torch.nn.Module):
    """``(..., T)`` audio → ``(..., n_mels, T // hop_length + 1)`` natural-log mel power.

    ``log(clamp(mel_basis @ |STFT|^2, min=log_floor))``: identical (to float32 rounding) to
    ``log(max(librosa.feature.melspectrogram(power=2, center=True, pad_mode="reflect"), floor))``.
    The filterbank and window are non-persistent buffers: they follow ``.to(device)`` but are
    rebuilt from the constructor arguments rather than stored in checkpoints.
    """

    #: Constructor arguments :meth:`from_params` picks out of the ``audio`` params section.
    PARAM_KEYS = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max", "log_floor")

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        win_length: int | None = None,
        hop_length: int = 160,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
        log_floor: float = 1e-5,
    ) -> None:
        super().__init__()
        win_length = win_length or n_fft
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        if log_floor <= 0:
            raise ValueError(f"log_floor must be positive, got {log_floor}")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.win_length = int(win_length)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.f_min = float(f_min)
        self.f_max = float(f_max) if f_max is not None else sample_rate / 2
        self.log_floor = float(log_floor)
        basis = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.f_min, self.f_max)
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", _hann(self.win_length, torch.device("cpu")), persistent=False)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LogMel:
        """Build from the ``audio`` params section (``stage_params("audio")``); other keys such as
        ``token_rate`` are ignored."""
        return cls(**{k: params[k] for k in cls.PARAM_KEYS if k in params})

    def n_frames(self, n_samples: int) -> int:
        """Number of output frames for ``n_samples`` input samples."""
        return n_samples // self.hop_length + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = stft(audio, self.n_fft, self.hop_length, self.win_length, window=self.window)
        with torch.autocast(device_type=audio.device.type, enabled=False):
            power = spec.real.square() + spec.imag.square()
            mel = torch.matmul(self.mel_basis.to(torch.float32), power)
            return torch.log(torch.clamp(mel, min=self.log_floor))

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
            f"hop_length={self.hop_length}, n_mels={self.n_mels}, f_min={self.f_min}, "
            f"f_max={self.f_max}, log_floor={self.log_floor}"
        )


def frame_mask_from_lengths(lengths: torch.Tensor, n_frames: int, hop_length: int) -> torch.Tensor:
    """``(B, n_frames)`` bool validity of STFT/mel frames (``center=True``) for signals of ``lengths``
    valid samples: frame ``i`` is valid when ``i <= length // hop`` (its centre lies inside)."""
    valid = lengths.to(torch.long) // hop_length + 1
    return torch.arange(n_frames, device=lengths.device)[None, :] < valid[:, None]
