"""Gaussian noise at the stage-2 bottleneck (Duo-Tok, Fig. 3).

Why: in stage 2 the heads are trained on continuous bottleneck features, but stage 3 replaces those
features with quantized ones. Replacing a random subset of frames with Gaussian noise during stage 2
teaches the heads to tolerate a perturbed bottleneck (and to lean on context), so the later
quantization error does not push them off their training distribution. The paper does not publish
the selection probability or the noise scale, so both are parameters; ``"additive"`` and ``"off"``
are kept for ablations.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

NoiseMode = Literal["replace", "additive", "off"]
MODES: tuple[str, ...] = ("replace", "additive", "off")


class BottleneckNoise(nn.Module):
    """Per-frame Gaussian noise, active in training mode only.

    ``forward(x (B, T, D), mask=None, generator=None)`` → ``(x_out, selected)`` where ``selected``
    ``(B, T)`` bool marks the frames that were noised. Each valid frame is selected independently
    with probability ``prob``; padded frames (``mask`` False) never are. ``"replace"`` swaps a
    selected frame's vector for ``N(0, std^2)`` noise; ``"additive"`` adds such noise to it.

    Random numbers are drawn as selection first, then one full ``(B, T, D)`` noise tensor, both from
    ``generator`` when given (on the generator's device) — so a seeded generator gives the same
    selection and the same replacement values whatever the input.
    """

    def __init__(self, mode: NoiseMode = "replace", prob: float = 0.5, std: float = 1.0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob}")
        if std < 0:
            raise ValueError(f"std must be non-negative, got {std}")
        self.mode = mode
        self.prob = float(prob)
        self.std = float(std)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, prob={self.prob}, std={self.std}"

    @property
    def active(self) -> bool:
        return self.training and self.mode != "off" and self.prob > 0.0

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3:
            raise ValueError(f"BottleneckNoise expects (B, T, D) features, got {tuple(x.shape)}")
        frames = x.shape[:2]
        if mask is not None and mask.shape != frames:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not match frames {tuple(frames)}")
        if not self.active:
            return x, torch.zeros(frames, dtype=torch.bool, device=x.device)
        device = generator.device if generator is not None else x.device
        selected = torch.rand(frames, generator=generator, device=device).to(x.device) < self.prob
        if mask is not None:
            selected = selected & mask.to(device=x.device, dtype=torch.bool)
        noise = torch.randn(x.shape, generator=generator, device=device).to(x.device) * self.std
        noise = noise.to(x.dtype)
        keep = selected.unsqueeze(-1)
        if self.mode == "replace":
            return torch.where(keep, noise, x), selected
        return x + noise * keep.to(x.dtype), selected
