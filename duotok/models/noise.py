"""Gaussian noise at the stage-2 bottleneck (Duo-Tok, Fig. 3).

Why: in stage 2 the heads are trained on continuous bottleneck features, but stage 3 replaces those
features with quantized ones. Replacing a random subset of frames with Gaussian noise during stage 2
teaches the heads to tolerate a perturbed bottleneck (and to lean on context), so the later
quantization error does not push them off their training distribution. The paper does not publish
the selection probability or the noise scale, so both are parameters; ``"additive"`` and ``"off"``
are kept for ablations.

``warmup_steps`` (not in the paper) ramps the probability linearly from 0 to ``prob`` over the first
steps of training. Why: a replaced frame is lost to every head, and at ``prob`` 0.5 the lyrics head's CTC,
which must place every character, stays on its unigram plateau for the whole default budget while
the same recipe without noise leaves it (``reports/experiments/quick_log.md``). Heads that have learned
to read clean features first may keep reading as the noise arrives; the run ends at the paper's
probability either way. :func:`follow_training_step` tells the module the step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

NoiseMode = Literal["replace", "matched", "additive", "off"]
MODES: tuple[str, ...] = ("replace", "matched", "additive", "off")


class BottleneckNoise(nn.Module):
    """Per-frame Gaussian noise, active in training mode only.

    ``forward(x (B, T, D), mask=None, generator=None)`` → ``(x_out, selected)`` where ``selected``
    ``(B, T)`` bool marks the frames that were noised. Each valid frame is selected independently
    with probability ``prob``; padded frames (``mask`` False) never are. ``"replace"`` swaps a
    selected frame's vector for ``N(0, std^2)`` noise; ``"additive"`` adds such noise to it.
    ``"matched"`` replaces it with Gaussian noise of the batch's own per-dimension mean and standard
    deviation (over its valid frames, detached) times ``std``. Why: a ``"replace"``-trained stage 2 learns to
    tell real frames from N(0, 1) ones by a large shared offset, so at evaluation, where no frame is
    replaced, its heads see input off their training distribution (``quick_log.md``, 2026-12-03: held-out
    lyrics CTC 3.10 clean against 2.78 with half the frames replaced). Matched noise carries no such tell.

    Random numbers are drawn as selection first, then one full ``(B, T, D)`` noise tensor, both from
    ``generator`` when given (on the generator's device) — so a seeded generator gives the same
    selection and the same replacement values whatever the input.
    """

    def __init__(self, mode: NoiseMode = "replace", prob: float = 0.5, std: float = 1.0, warmup_steps: int = 0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob}")
        if std < 0:
            raise ValueError(f"std must be non-negative, got {std}")
        if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        self.mode = mode
        self.prob = float(prob)
        self.std = float(std)
        self.warmup_steps = warmup_steps
        # Training steps done so far; set by follow_training_step. Not saved: a resumed run's trainer
        # restores its step, and the hook reads it before the next forward.
        self.step = 0

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, prob={self.prob}, std={self.std}, warmup_steps={self.warmup_steps}"

    @property
    def current_prob(self) -> float:
        """The selection probability at ``self.step``: ``prob`` after the warm-up, linear from 0 before."""
        if self.warmup_steps == 0:
            return self.prob
        return self.prob * min(1.0, self.step / self.warmup_steps)

    def finish_warmup(self) -> None:
        """Count the warm-up as done, so the module draws at ``prob``, the probability a run ends with. For
        evaluating a trained model with its training noise on: a loaded checkpoint's step starts at 0, which
        a warm-up would read as no noise at all."""
        self.step = max(self.step, self.warmup_steps)

    @property
    def active(self) -> bool:
        return self.training and self.mode != "off" and self.current_prob > 0.0

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
        selected = torch.rand(frames, generator=generator, device=device).to(x.device) < self.current_prob
        if mask is not None:
            selected = selected & mask.to(device=x.device, dtype=torch.bool)
        noise = torch.randn(x.shape, generator=generator, device=device).to(x.device) * self.std
        if self.mode == "matched":
            mean, scale = _frame_moments(x.detach(), mask)
            noise = mean + noise * scale
        noise = noise.to(x.dtype)
        keep = selected.unsqueeze(-1)
        if self.mode in ("replace", "matched"):
            return torch.where(keep, noise, x), selected
        return x + noise * keep.to(x.dtype), selected


def _frame_moments(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation ``(D,)`` of ``x`` ``(B, T, D)`` over its valid frames, in float32."""
    frames = x.float().reshape(-1, x.shape[-1])
    if mask is not None:
        frames = frames[mask.reshape(-1).to(device=x.device, dtype=torch.bool)]
    if frames.shape[0] < 2:
        return torch.zeros(x.shape[-1], device=x.device), torch.ones(x.shape[-1], device=x.device)
    return frames.mean(0), frames.std(0)


def follow_training_step(noise: BottleneckNoise, current_step: Callable[[], int]) -> RemovableHandle:
    """Before each forward, set ``noise.step`` from ``current_step()`` (a trainer's completed steps), so the
    warm-up follows training — a resumed run included — without the model knowing the trainer. Returns the
    hook's handle."""

    def set_step(module: nn.Module, args: tuple) -> None:
        module.step = int(current_step())

    return noise.register_forward_pre_hook(set_step)
