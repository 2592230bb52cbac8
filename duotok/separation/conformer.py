"""A small Conformer (Gulati et al. 2020, arXiv 2005.08100): the learnable mixture encoder of the
generative separator, whose output is the language model's prefix.

One block, pre-norm throughout::

    x = x + ½·FFN(x)                 macaron: the feed-forward split in two halves around the core
    x = x + MHSA(LN(x))              rotary positions (relative: only frame offsets matter)
    x = x + Conv(x)                  LN → pointwise ×2 → GLU → depthwise conv → LN → SiLU → pointwise
    x = x + ½·FFN(x)
    x = LN(x)

Why a Conformer for the mixture: attention sees the whole crop (which stem sounds where, the song's
structure) while the depthwise convolution models the local spectro-temporal patterns (onsets,
harmonics) that decide which token each frame of a stem gets; the paper's ablation finds this
learnable encoder better than a frozen SSL one.

Choices that differ from the paper, and why:

- **Rotary position embeddings** instead of Transformer-XL relative positions: both make attention
  depend on frame offsets only (a model trained on crops works at any offset of a song); rotary needs
  no extra parameters and keeps PyTorch's fused ``scaled_dot_product_attention`` kernel, which the
  relative-bias formulation cannot use. The rotary helpers are those of
  :mod:`duotok.modules.transformer`.
- **LayerNorm instead of BatchNorm** after the depthwise convolution: in training mode BatchNorm's
  statistics mix every frame of the batch — padded frames and other songs included — so a valid
  frame's output would depend on padding (and on batch composition at inference with small batches).
  A per-frame LayerNorm keeps the "no information from padded frames" guarantee exact.
- **No attention dropout** (residual dropout only): attention dropout disables the fused CPU kernel.

Padding: ``mask`` ``(B, T)`` bool, True = valid. Padded keys are excluded from attention, padded
frames are zeroed before every depthwise convolution (whose receptive field crosses the boundary),
and the outputs at padded frames are zero. Hence valid outputs never depend on padded content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from duotok.modules.transformer import RotaryEmbedding, apply_rotary, key_padding_to_attn_mask

__all__ = ["ConformerBlock", "ConformerConfig", "ConformerEncoder"]


@dataclass
class ConformerConfig:
    """Sizes of a :class:`ConformerEncoder`. ``input_dim`` is the feature width it reads (the mel
    bins of the mixture front end); ``kernel_size`` the depthwise convolution's width in frames (odd:
    a same-length, centred convolution). At 50 Hz, 15 frames span 300 ms."""

    input_dim: int = 80
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: float = 4.0
    conv_expansion: int = 2
    kernel_size: int = 15
    dropout: float = 0.0
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("input_dim", "dim", "n_layers", "n_heads", "conv_expansion", "kernel_size"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"conformer.{name} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"conformer.dim ({self.dim}) must split into n_heads ({self.n_heads}) even head dims")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"conformer.kernel_size must be odd, got {self.kernel_size}")
        if not 0.0 <= self.dropout < 1.0 or self.ff_mult <= 0:
            raise ValueError(f"need 0 <= dropout < 1 and ff_mult > 0, got {self.dropout}, {self.ff_mult}")


class _FeedForward(nn.Module):
    """LN → Linear(×ff_mult) → SiLU → dropout → Linear → dropout (the Conformer's FFN module)."""

    def __init__(self, dim: int, mult: float, dropout: float):
        super().__init__()
        hidden = int(round(dim * mult))
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _SelfAttention(nn.Module):
    """LN → multi-head self-attention with rotary queries/keys and a key padding mask → dropout."""

    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                attn_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        y = F.scaled_dot_product_attention(q, k, v.to(q.dtype), attn_mask=attn_mask, dropout_p=0.0)
        return self.dropout(self.out(y.transpose(1, 2).reshape(b, t, d)))


class _ConvModule(nn.Module):
    """LN → pointwise conv to 2·E·dim → GLU → depthwise conv (zero-padded frames) → LN → SiLU →
    pointwise conv back to dim → dropout. LayerNorm, not BatchNorm: see the module docstring."""

    def __init__(self, dim: int, expansion: int, kernel_size: int, dropout: float):
        super().__init__()
        inner = dim * expansion
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Linear(dim, 2 * inner)
        self.depthwise = nn.Conv1d(inner, inner, kernel_size, padding=kernel_size // 2, groups=inner)
        self.inner_norm = nn.LayerNorm(inner)
        self.pointwise_out = nn.Linear(inner, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = F.glu(self.pointwise_in(self.norm(x)), dim=-1)
        if mask is not None:
            h = h * mask[..., None].to(h.dtype)
        h = self.depthwise(h.transpose(1, 2)).transpose(1, 2)
        h = self.pointwise_out(F.silu(self.inner_norm(h)))
        return self.dropout(h)


class ConformerBlock(nn.Module):
    """½FFN → MHSA → Conv → ½FFN → LN, each with a residual connection (module docstring)."""

    def __init__(self, dim: int, n_heads: int, ff_mult: float = 4.0, conv_expansion: int = 2,
                 kernel_size: int = 15, dropout: float = 0.0):
        super().__init__()
        self.ff1 = _FeedForward(dim, ff_mult, dropout)
        self.attn = _SelfAttention(dim, n_heads, dropout)
        self.conv = _ConvModule(dim, conv_expansion, kernel_size, dropout)
        self.ff2 = _FeedForward(dim, ff_mult, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, T, dim)``; ``mask`` ``(B, T)`` valid frames; ``attn_mask`` its SDPA form
        (:func:`~duotok.modules.transformer.key_padding_to_attn_mask`, computed once per stack)."""
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(x, rope, attn_mask)
        x = x + self.conv(x, mask)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class ConformerEncoder(nn.Module):
    """``(B, T, input_dim)`` features (+ ``(B, T)`` valid mask) → ``(B, T, dim)``: a linear input
    projection, ``n_layers`` :class:`ConformerBlock` s sharing one rotary table; padded frames are
    zero at the input, inside every convolution and at the output (module docstring)."""

    def __init__(self, config: ConformerConfig | None = None):
        super().__init__()
        config = config or ConformerConfig()
        self.config = config
        self.input_proj = nn.Linear(config.input_dim, config.dim)
        self.blocks = nn.ModuleList(
            ConformerBlock(config.dim, config.n_heads, config.ff_mult, config.conv_expansion, config.kernel_size,
                           config.dropout)
            for _ in range(config.n_layers))
        self.rotary = RotaryEmbedding(config.dim // config.n_heads, base=config.rope_base)
        self._init_residual_outputs()

    def _init_residual_outputs(self) -> None:
        """GPT-2-style small init of each residual branch's last projection, so a deep stack starts
        close to identity (the same reason as :class:`~duotok.modules.transformer.TransformerStack`)."""
        std = 0.02 / math.sqrt(2 * max(len(self.blocks), 1))
        for block in self.blocks:
            for lin in (block.ff1.net[4], block.ff2.net[4], block.attn.out, block.conv.pointwise_out):
                nn.init.normal_(lin.weight, std=std)
                nn.init.zeros_(lin.bias)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if features.dim() != 3 or features.shape[-1] != c.input_dim:
            raise ValueError(f"expected (batch, frames, {c.input_dim}) features, got {tuple(features.shape)}")
        if mask is not None:
            if mask.shape != features.shape[:2]:
                raise ValueError(f"mask {tuple(mask.shape)} does not match features {tuple(features.shape[:2])}")
            mask = mask.to(torch.bool)
            features = features * mask[..., None].to(features.dtype)
        x = self.input_proj(features)
        rope = self.rotary(x.shape[1], x.device)
        attn_mask = key_padding_to_attn_mask(mask)
        for block in self.blocks:
            x = block(x, rope, mask, attn_mask)
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)
        return x
