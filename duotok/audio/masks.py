"""Ratio (soft) time-frequency masks: oracle targets for separation heads and their inverse.

``mask_s = |X_s|^p / sum_k |X_k|^p`` over the stems' STFTs. Masks lie in ``[0, 1]`` and sum to 1
in every time-frequency bin: where the stems carry energy by construction, and in *silent* bins
(total ``<= eps``) by definition — there each of the ``S`` masks is ``1 / S``, which splits the
(equally silent) mixture evenly instead of producing 0/0.
"""

from __future__ import annotations

import torch

from duotok.audio.features import istft, magnitude, stft


def ratio_masks(
    stems: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int,
    power: float = 1.0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """``(S, T)`` or ``(B, S, T)`` stems → ``(S, F, frames)`` / ``(B, S, F, frames)`` ratio masks.

    ``power=1`` gives magnitude-ratio masks, ``power=2`` Wiener-like power-ratio masks. Bins whose
    summed ``|X|^p`` is ``<= eps`` get ``1 / S`` (see module docstring). Float32 output.
    """
    if stems.dim() not in (2, 3):
        raise ValueError(f"ratio_masks expects (S, T) or (B, S, T) stems, got shape {tuple(stems.shape)}")
    if power <= 0:
        raise ValueError(f"power must be positive, got {power}")
    n_stems = stems.shape[-2]
    powers = magnitude(stft(stems, n_fft, hop_length, win_length)).pow(power)
    total = powers.sum(dim=-3, keepdim=True)
    silent = total <= eps
    masks = powers / torch.where(silent, torch.ones_like(total), total)
    return torch.where(silent, torch.full_like(masks, 1.0 / n_stems), masks)


def apply_masks(
    mixture: torch.Tensor,
    masks: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int,
    length: int | None = None,
) -> torch.Tensor:
    """Stem estimates ``istft(mask_s * STFT(mixture))``.

    ``mixture`` is ``(T,)`` with masks ``(S, F, frames)``, or ``(B, T)`` with ``(B, S, F, frames)``;
    returns ``(S, length)`` / ``(B, S, length)`` float32 audio (``length`` defaults to ``T``).
    Masks from :func:`ratio_masks` of the true stems (oracle masks) recover the stems up to the
    error of sharing one mixture phase.
    """
    if masks.dim() != mixture.dim() + 2:
        raise ValueError(
            f"masks of shape {tuple(masks.shape)} do not match mixture of shape {tuple(mixture.shape)}: "
            "expected (T,) with (S, F, N) or (B, T) with (B, S, F, N)"
        )
    length = mixture.shape[-1] if length is None else length
    spec = stft(mixture, n_fft, hop_length, win_length).unsqueeze(-3)
    if spec.shape[-2:] != masks.shape[-2:]:
        raise ValueError(
            f"masks cover {tuple(masks.shape[-2:])} bins x frames, mixture STFT {tuple(spec.shape[-2:])}"
        )
    return istft(spec * masks.to(torch.float32), n_fft, hop_length, win_length, length=length)
