"""The Duo-Tok encoder: log-mel at 100 Hz → 25 Hz features, split at the bottleneck.

::

    mel (B, n_mels, F) ─ normalize ─ ConvDownsample(×4) ─ lower Transformer ─┬─ upper Transformer ─ (B, T, dim)
                        └────────── embed() ──────────┘   forward_lower()   │   forward_upper()
                                                                  (stage 2/3: quantizer goes here)

Why split: stage 1 (BEST-RQ) trains the whole stack; later stages freeze the lower half
(:meth:`DuoEncoder.freeze_lower`) and insert the dual-track quantizer between the halves, so the
upper half and the heads learn from quantized features while the lower half's representation stays
the one BEST-RQ learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from duotok.io.checkpoint import PretrainedMixin
from duotok.modules.conv import ConvDownsample
from duotok.modules.transformer import TransformerStack


@dataclass
class EncoderConfig:
    """Sizes of :class:`DuoEncoder`. ``downsample`` is the mel-frame → token rate ratio (100 → 25 Hz)."""

    n_mels: int = 128
    dim: int = 256
    n_lower: int = 4
    n_upper: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    downsample: int = 4
    dropout: float = 0.0


class DuoEncoder(nn.Module, PretrainedMixin):
    """Mel normalisation, ×4 convolutional downsampling and two Transformer stacks.

    Frame masks are ``(B, frames)`` bool, True = valid; 100 Hz masks are turned into 25 Hz ones by
    :meth:`downsample_mask`. Padded mel frames are zeroed after normalisation, so valid outputs never
    depend on padding content (the convolution's receptive field crosses the boundary)."""

    config_class = EncoderConfig

    def __init__(self, config: EncoderConfig | None = None):
        super().__init__()
        config = config or EncoderConfig()
        self.config = config
        # Global per-channel statistics (BEST-RQ normalises the whole corpus with one mean/std):
        # buffers, so they travel with the checkpoint but are never trained.
        self.register_buffer("mel_mean", torch.zeros(config.n_mels))
        self.register_buffer("mel_std", torch.ones(config.n_mels))
        self.downsample = ConvDownsample(config.n_mels, config.dim, factor=config.downsample)
        stack = {"n_heads": config.n_heads, "mlp_ratio": config.mlp_ratio, "dropout": config.dropout}
        self.lower = TransformerStack(config.dim, config.n_lower, final_norm=True, **stack)
        self.upper = TransformerStack(config.dim, config.n_upper, final_norm=True, **stack)
        self._lower_frozen = False

    # ------------------------------------------------------------------ normalisation

    @torch.no_grad()
    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-5) -> None:
        """Fill the per-channel statistics, e.g. from :func:`mel_statistics` over the training set.
        ``std`` is clamped to ``eps`` so a silent mel band cannot blow up."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        n = self.config.n_mels
        if mean.numel() != n or std.numel() != n:
            raise ValueError(f"mean and std need {n} values, got {mean.numel()} and {std.numel()}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()) or bool((std < 0).any()):
            raise ValueError("mean and std must be finite and std non-negative")
        self.mel_mean.copy_(mean)
        self.mel_std.copy_(std.clamp_min(eps))

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, F)`` log-mel → per-channel standardised, float32."""
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise ValueError(f"expected (batch, {self.config.n_mels}, frames), got {tuple(mel.shape)}")
        return (mel.float() - self.mel_mean[:, None]) / self.mel_std[:, None]

    def normalize_masked(self, mel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """:meth:`normalize`, with padded frames set to zero: the BEST-RQ input and the mel-head target."""
        return self.normalize(mel) * frame_mask[:, None, :]

    # ------------------------------------------------------------------ rates and masks

    def frames_to_tokens(self, n_frames: int) -> int:
        """Number of 25 Hz tokens for ``n_frames`` 100 Hz mel frames: ``ceil(n_frames / downsample)``."""
        return self.downsample.output_length(n_frames)

    def downsample_mask(self, frame_mask: torch.Tensor | None) -> torch.Tensor | None:
        """``(B, F)`` 100 Hz valid-frame mask → ``(B, ceil(F / downsample))``: a token is valid when any
        of its frames is (for a prefix mask of ``n`` frames: the first ``ceil(n / downsample)``)."""
        if frame_mask is None:
            return None
        factor = self.config.downsample
        frames = frame_mask.shape[1]
        n_tokens = self.frames_to_tokens(frames)
        padded = F.pad(frame_mask.to(torch.bool), (0, n_tokens * factor - frames), value=False)
        return padded.view(frame_mask.shape[0], n_tokens, factor).any(dim=-1)

    # ------------------------------------------------------------------ forward pieces

    def embed(
        self, mel: torch.Tensor, frame_mask: torch.Tensor | None = None, *, normalized: bool = False
    ) -> torch.Tensor:
        """``(B, n_mels, F)`` → ``(B, ceil(F / 4), dim)``: normalise (unless the caller already did,
        e.g. to corrupt masked frames in normalised space), zero padded frames, downsample."""
        x = mel.float() if normalized else self.normalize(mel)
        if frame_mask is not None:
            if frame_mask.shape != (x.shape[0], x.shape[2]):
                raise ValueError(
                    f"frame_mask {tuple(frame_mask.shape)} does not match mel {tuple(mel.shape)}"
                )
            x = x * frame_mask[:, None, :].to(x.dtype)
        return self.downsample(x.transpose(1, 2))

    def forward_lower(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Lower Transformer on 25 Hz embeddings ``(B, T, dim)``; ``mask`` is the 25 Hz mask."""
        return self.lower(x, mask)

    def forward_upper(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Upper Transformer on (possibly quantized) bottleneck features ``(B, T, dim)``."""
        return self.upper(x, mask)

    def forward(
        self, mel: torch.Tensor, frame_mask: torch.Tensor | None = None, *, normalized: bool = False
    ) -> torch.Tensor:
        """Whole encoder: ``(B, n_mels, F)`` mel (+ optional ``(B, F)`` 100 Hz mask) → ``(B, T, dim)``."""
        mask = self.downsample_mask(frame_mask)
        x = self.embed(mel, frame_mask, normalized=normalized)
        return self.forward_upper(self.forward_lower(x, mask), mask)

    # ------------------------------------------------------------------ freezing

    def _lower_modules(self) -> tuple[nn.Module, ...]:
        return (self.downsample, self.lower)

    def freeze_lower(self) -> None:
        """Freeze normalisation, downsampling and the lower stack: no gradients, eval mode (kept in
        eval mode by later ``.train()`` calls, so dropout never perturbs the frozen features)."""
        for module in self._lower_modules():
            module.requires_grad_(False)
            module.eval()
        self._lower_frozen = True

    @property
    def lower_frozen(self) -> bool:
        return self._lower_frozen

    def train(self, mode: bool = True) -> DuoEncoder:
        super().train(mode)
        if self._lower_frozen:
            for module in self._lower_modules():
                module.eval()
        return self


@torch.no_grad()
def mel_statistics(
    mels: list[torch.Tensor] | tuple[torch.Tensor, ...], dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global per-channel mean and std over ``(n_mels, frames)`` (or batched) log-mels, accumulated
    in float64 sums so a long corpus does not lose precision. Feed to :meth:`DuoEncoder.set_normalization`."""
    total = None
    total_sq = None
    count = 0
    for mel in mels:
        m = mel.to(dtype)
        m = m.reshape(-1, *m.shape[-2:]).transpose(0, 1).reshape(m.shape[-2], -1)
        s, sq = m.sum(dim=1), m.square().sum(dim=1)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += m.shape[1]
    if total is None or total_sq is None or count == 0:
        raise ValueError("mel_statistics needs at least one frame")
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    return mean.float(), var.sqrt().float()
