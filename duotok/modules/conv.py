"""Strided-convolution resampling along time: the encoder's 100 Hz → 25 Hz mel downsampling and the
heads' 25 Hz → 100 Hz upsampling. Tensors are channels-last, ``(batch, time, channels)``, like the
Transformer that sits between them."""

from __future__ import annotations

import torch
from torch import nn


class ConvDownsample(nn.Module):
    """Two stride-2 Conv1d + GELU layers: ``(B, T, in_dim)`` → ``(B, ceil(T / 4), out_dim)`` for factor 4.

    Why convolutions rather than frame stacking: they learn a local filter before decimating, the
    usual front end of BEST-RQ-style encoders (MusicFM stacks then projects; equivalent in spirit).
    """

    def __init__(self, in_dim: int, out_dim: int, factor: int = 4):
        super().__init__()
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"factor must be a power of two, got {factor}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(factor.bit_length() - 1):
            layers += [nn.Conv1d(dim, out_dim, kernel_size=3, stride=2, padding=1), nn.GELU()]
            dim = out_dim
        if not layers:
            layers = [nn.Conv1d(in_dim, out_dim, kernel_size=1)]
        self.net = nn.Sequential(*layers)
        self.factor = factor

    def output_length(self, length: int) -> int:
        for _ in range(self.factor.bit_length() - 1):
            length = (length + 1) // 2
        return length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)).transpose(1, 2)


class ConvUpsample(nn.Module):
    """Nearest-neighbour repeat by ``factor`` then two Conv1d + GELU layers:
    ``(B, T, in_dim)`` → ``(B, T * factor, out_dim)``. Used by the chroma, mel and mask heads to
    predict 100 Hz targets from 25 Hz features."""

    def __init__(self, in_dim: int, out_dim: int, factor: int = 4, hidden: int | None = None):
        super().__init__()
        hidden = hidden or in_dim
        self.factor = factor
        self.net = nn.Sequential(
            nn.Conv1d(in_dim, hidden, kernel_size=5, padding=2),
            nn.GELU(),
            nn.Conv1d(hidden, out_dim, kernel_size=5, padding=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.repeat_interleave(self.factor, dim=1)
        return self.net(x.transpose(1, 2)).transpose(1, 2)
