"""The typed result every quantizer returns (after audiocraft's ``QuantizedResult``), plus the route
for dual-track quantization, so training and evaluation code never unpacks anonymous tuples."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class QuantizedResult:
    """``quantized``: straight-through quantized features, same shape as the input ``(B, T, D)``.
    ``codes``: integer indices ``(B, T)`` (into the codebook of the frame's route for dual codebooks).
    ``loss``: the commitment/codebook penalty to add to the training loss (a scalar tensor).
    ``route``: ``(B, T)`` branch index per frame (0 = vocal, 1 = accompaniment) or ``None``.
    ``metrics``: detached scalars for logging (perplexity, usage, ...)."""

    quantized: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    route: torch.Tensor | None = None
    metrics: dict[str, float] = field(default_factory=dict)
