"""A small multilabel tagging probe on frozen codec embeddings ``(B, T, D)`` → tag logits ``(B, n_tags)``.

Why this shape: the probe is the toolkit's (SE blocks + depthwise-separable Conv1d, then a linear
classifier), deliberately small, so differences in tagging AP measure what the *embeddings* carry, not
what a big probe can learn on top of them. Codecs differ in width and scale (25 Hz × 512, 50 Hz × 32,
...), so the input is LayerNorm-ed per frame before anything else.

Masking: ``mask`` (``(B, T)`` bool, True on valid frames) marks trailing padding. Padded frames are zeroed
before every convolution (so they act exactly like the convolution's own zero padding), excluded from the
normalisation statistics, the squeeze-excitation means and the pooling — a padded window gives the same
logits as the unpadded one (up to float rounding). The norm is a masked GroupNorm rather than BatchNorm
so that a window's logits never depend on which other windows share its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NORM_GROUPS = 8  # GroupNorm groups (gcd with the channel count, so any width works)


@dataclass
class ProbeConfig:
    """Probe size. ``in_dim``: the codec's embedding width; ``channels``: the probe's width."""

    in_dim: int
    n_tags: int
    channels: int = 128
    n_blocks: int = 2
    kernel_size: int = 5
    se_ratio: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("in_dim", "n_tags", "channels", "kernel_size", "se_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"ProbeConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"ProbeConfig.kernel_size must be odd (centred 'same' padding), got {self.kernel_size}")
        if self.n_blocks < 0:
            raise ValueError(f"ProbeConfig.n_blocks must be >= 0, got {self.n_blocks}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ProbeConfig.dropout must be in [0, 1), got {self.dropout}")


def _weights(mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """Float ``(B, 1, T)`` frame weights for channels-first ``x`` (all ones without a mask)."""
    b, _, t = x.shape
    if mask is None:
        return x.new_ones(b, 1, t)
    if mask.shape != (b, t):
        raise ValueError(f"mask of shape {tuple(mask.shape)}, expected {(b, t)}")
    return mask.to(device=x.device, dtype=x.dtype)[:, None, :]


def masked_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean of ``(B, C, T)`` over valid frames (``w``: ``(B, 1, T)``) → ``(B, C)``; 0 for an empty row."""
    return (x * w).sum(-1) / w.sum(-1).clamp_min(1.0)


def masked_max(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Max of ``(B, C, T)`` over valid frames → ``(B, C)``; 0 for an empty row (instead of -inf)."""
    valid = w > 0
    out = x.masked_fill(~valid, float("-inf")).amax(-1)
    return torch.where(valid.any(-1), out, torch.zeros_like(out))


class MaskedGroupNorm(nn.Module):
    """GroupNorm over ``(B, C, T)`` whose statistics use only valid frames (per item and group)."""

    def __init__(self, channels: int, groups: int, eps: float = 1e-5):
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
        self.groups = groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        xg = x.reshape(b, self.groups, c // self.groups, t)
        wg = w[:, None]  # (B, 1, 1, T)
        count = (wg.sum(-1, keepdim=True) * (c // self.groups)).clamp_min(1.0)  # (B, 1, 1, 1)
        mean = (xg * wg).sum((-2, -1), keepdim=True) / count
        var = (((xg - mean) ** 2) * wg).sum((-2, -1), keepdim=True) / count
        y = ((xg - mean) / torch.sqrt(var + self.eps)).reshape(b, c, t)
        return y * self.weight[:, None] + self.bias[:, None]


class SqueezeExcite(nn.Module):
    """Channel gating from the masked mean over time: lets a block emphasise the channels that matter
    for the whole window (tags are window/song-level, not frame-level)."""

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        hidden = max(1, channels // ratio)
        self.down = nn.Linear(channels, hidden)
        self.up = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.up(F.gelu(self.down(masked_mean(x, w)))))
        return x * gate[:, :, None]


class SeparableBlock(nn.Module):
    """Depthwise Conv1d → pointwise Conv1d → masked GroupNorm → GELU → SE → dropout, plus residual."""

    def __init__(self, channels: int, kernel_size: int, se_ratio: int, dropout: float):
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.norm = MaskedGroupNorm(channels, math.gcd(channels, NORM_GROUPS))
        self.se = SqueezeExcite(channels, se_ratio)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h = self.pointwise(self.depthwise(x * w))
        h = self.se(F.gelu(self.norm(h, w)), w)
        return (x + self.dropout(h)) * w


class TaggingProbe(nn.Module):
    """Embeddings ``(B, T, D)`` (+ optional ``(B, T)`` bool mask of valid frames) → logits ``(B, n_tags)``.

    Pooling is the masked mean *and* max over time, concatenated: the mean for tags that colour a whole
    window (genre, mood), the max for ones carried by short events (an instrument entering)."""

    def __init__(self, config: ProbeConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.input_norm = nn.LayerNorm(config.in_dim)
        self.input_proj = nn.Conv1d(config.in_dim, c, 1)
        self.blocks = nn.ModuleList(
            SeparableBlock(c, config.kernel_size, config.se_ratio, config.dropout) for _ in range(config.n_blocks)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * c, config.n_tags)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.config.in_dim:
            raise ValueError(f"expected (B, T, {self.config.in_dim}) embeddings, got {tuple(x.shape)}")
        h = self.input_proj(self.input_norm(x).transpose(1, 2))  # (B, C, T)
        w = _weights(mask, h)
        h = h * w
        for block in self.blocks:
            h = block(h, w)
        pooled = torch.cat([masked_mean(h, w), masked_max(h, w)], dim=-1)
        return self.classifier(self.dropout(pooled))
