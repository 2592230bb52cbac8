"""BEST-RQ self-supervised targets and input masking, following MusicFM's 25 Hz recipe.

The encoder is pre-trained to predict, at masked 25 Hz frames, the code that a *frozen random*
quantizer assigns to the uncorrupted input there. Pieces, in training order::

    normed  = encoder.normalize(mel)                          # (B, n_mels, F)  at 100 Hz, global mean/std
    targets = rpq(stack_frames(normed))                       # (B, T) codes,   T = ceil(F / 4)
    mask    = span_mask(B, T, lengths=token_lengths)          # (B, T) 25 Hz spans of 400 ms
    noisy   = replace_masked(normed.mT, expand_mask(mask, 4, F)).mT   # noise on masked mel frames
    logits  = head(encoder(noisy, frame_mask, normalized=True))       # (B, T, codebook_size)
    loss, accuracy = bestrq_loss(logits, targets, mask)

Why a random quantizer: it is never trained, so targets cannot collapse, and it needs no teacher
model (BEST-RQ, Chiu et al. 2022). The projection and codebook are persistent buffers: they are part
of the checkpoint (the targets must stay the same when training resumes) but never receive gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RandomProjectionQuantizer(nn.Module):
    """Frozen random projection ``input_dim → code_dim`` and frozen ``N(0, 1)`` codebook.

    ``code = argmax_j cos(x @ P, c_j)``: both the projection and the codebook entries are
    l2-normalised, so the nearest entry by Euclidean distance equals the one of highest cosine, and a
    code depends only on the direction of ``x @ P`` (scaling the input does not change it).

    Both tensors come from a ``torch.Generator`` seeded with ``seed``: the same seed gives the same
    targets on every machine and in every run, independent of the global RNG."""

    def __init__(self, input_dim: int, code_dim: int = 16, codebook_size: int = 4096, seed: int = 0):
        super().__init__()
        if min(input_dim, code_dim, codebook_size) < 1:
            raise ValueError("input_dim, code_dim and codebook_size must be positive")
        self.input_dim = input_dim
        self.code_dim = code_dim
        self.codebook_size = codebook_size
        self.seed = seed
        gen = torch.Generator().manual_seed(seed)
        # Xavier (Glorot) normal: std = sqrt(2 / (fan_in + fan_out)), as BEST-RQ / MusicFM.
        std = math.sqrt(2.0 / (input_dim + code_dim))
        projection = torch.randn(input_dim, code_dim, generator=gen) * std
        codebook = torch.randn(codebook_size, code_dim, generator=gen)
        self.register_buffer("projection", projection, persistent=True)
        self.register_buffer("codebook", codebook, persistent=True)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, input_dim)`` → ``(B, T)`` long codes. Always float32 (autocast off): bf16 would
        flip near-tied codes between runs."""
        if x.shape[-1] != self.input_dim:
            raise ValueError(f"expected last dimension {self.input_dim}, got shape {tuple(x.shape)}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = F.normalize(x.float() @ self.projection.float(), dim=-1)
            codebook = F.normalize(self.codebook.float(), dim=-1)
            return (z @ codebook.T).argmax(dim=-1)

    def extra_repr(self) -> str:
        return (
            f"input_dim={self.input_dim}, code_dim={self.code_dim}, "
            f"codebook_size={self.codebook_size}, seed={self.seed}"
        )


def stack_frames(mel: torch.Tensor, stack: int = 4) -> torch.Tensor:
    """``(B, n_mels, F)`` → ``(B, ceil(F / stack), n_mels * stack)``: the quantizer's input per token.

    Token ``t`` concatenates frames ``stack*t .. stack*t + stack - 1`` (frame-major: the first
    ``n_mels`` values are frame ``stack*t``). The end is zero-padded to a whole token, so the length
    equals :class:`~duotok.modules.conv.ConvDownsample`'s ``ceil(F / 4)`` for ``stack=4``."""
    if mel.dim() != 3:
        raise ValueError(f"expected (batch, n_mels, frames), got shape {tuple(mel.shape)}")
    b, n_mels, frames = mel.shape
    n_tokens = -(-frames // stack)
    x = F.pad(mel, (0, n_tokens * stack - frames)).transpose(1, 2)
    return x.reshape(b, n_tokens, stack * n_mels)


def _lengths_tensor(
    batch: int, length: int, lengths: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    if lengths is None:
        return torch.full((batch,), length, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=device)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if bool((lengths < 1).any()) or bool((lengths > length).any()):
        raise ValueError(f"lengths must lie in [1, {length}] (every sequence needs a frame to mask)")
    return lengths


def span_mask(
    batch: int,
    length: int,
    mask_prob: float = 0.6,
    span: int = 10,
    generator: torch.Generator | None = None,
    lengths: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean ``(batch, length)`` mask, True = masked, of spans of ``span`` frames (10 = 400 ms at 25 Hz).

    Rule (MusicFM's): the time axis is cut into consecutive, non-overlapping blocks of ``span`` frames
    starting at frame 0, and each block is masked independently with probability ``mask_prob``. So the
    expected masked fraction of valid frames is exactly ``mask_prob`` (no overlap correction needed),
    spans never merge into longer ones by chance, and the last, partial block is eligible too (MusicFM
    drops it). Frames at or beyond ``lengths[b]`` are never masked. A sequence that drew no masked
    block gets one block chosen uniformly among those holding a valid frame, so every sequence
    contributes to the loss."""
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must lie in [0, 1], got {mask_prob}")
    if span < 1 or length < 1 or batch < 1:
        raise ValueError("batch, length and span must be positive")
    device = torch.device(device) if device is not None else torch.device("cpu")
    lengths = _lengths_tensor(batch, length, lengths, device)
    n_blocks = -(-length // span)
    blocks = torch.rand(batch, n_blocks, generator=generator, device=device) < mask_prob
    valid_blocks = -(-lengths // span)  # blocks holding at least one valid frame
    block_idx = torch.arange(n_blocks, device=device)
    blocks &= block_idx[None, :] < valid_blocks[:, None]
    empty = ~blocks.any(dim=1)
    if bool(empty.any()):
        pick = (torch.rand(batch, generator=generator, device=device) * valid_blocks).long()
        pick = torch.minimum(pick, valid_blocks - 1)
        blocks[empty, pick[empty]] = True
    mask = blocks.repeat_interleave(span, dim=1)[:, :length]
    return mask & (torch.arange(length, device=device)[None, :] < lengths[:, None])


def expand_mask(mask: torch.Tensor, factor: int = 4, length: int | None = None) -> torch.Tensor:
    """25 Hz token mask ``(B, T)`` → 100 Hz frame mask ``(B, length)``: each token covers ``factor``
    frames (the ones :func:`stack_frames` and ``ConvDownsample`` map to it); cropped to ``length``
    (default ``T * factor``), as a mel of ``F`` frames gives ``ceil(F / factor)`` tokens."""
    out = mask.repeat_interleave(factor, dim=1)
    if length is not None:
        if length > out.shape[1] or length <= out.shape[1] - factor:
            raise ValueError(f"{mask.shape[1]} tokens of {factor} frames cannot cover {length} frames")
        out = out[:, :length]
    return out


def replace_masked(
    x: torch.Tensor,
    mask: torch.Tensor,
    std: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Copy of ``x`` ``(B, T, ...)`` with every masked ``(b, t)`` slice replaced by ``N(0, std)`` noise.

    BEST-RQ's input corruption: noise, not zeros or a learned token, so masked frames look like
    (normalised) low-energy input and the encoder cannot spot them by an exact constant. Apply it to
    the *normalised* features (mean 0, std 1 per channel). Unmasked values are untouched (bit-exact)."""
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match x's {tuple(x.shape[:2])}")
    out = x.clone()
    mask = mask.to(torch.bool)
    n = int(mask.sum())
    if n:
        noise = torch.randn((n, *x.shape[2:]), generator=generator, device=x.device) * std
        out[mask] = noise.to(x.dtype)
    return out


def bestrq_loss(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of ``logits`` ``(B, T, V)`` against ``targets`` ``(B, T)`` averaged over masked
    frames only (unmasked frames are visible, so predicting them would be trivial), computed in
    float32. Returns ``(loss, accuracy)``; accuracy is detached. With no masked frame the loss is a
    graph-connected zero and the accuracy 0."""
    if logits.shape[:2] != targets.shape or mask.shape != targets.shape:
        raise ValueError(
            f"shapes disagree: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    mask = mask.to(torch.bool)
    selected = logits[mask].float()
    if selected.shape[0] == 0:
        return logits.sum() * 0.0, torch.zeros((), device=logits.device)
    target = targets[mask].long()
    loss = F.cross_entropy(selected, target)
    accuracy = (selected.detach().argmax(dim=-1) == target).float().mean()
    return loss, accuracy
