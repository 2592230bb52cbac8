"""Pre-norm Transformer with rotary position embeddings, for channels-last ``(B, T, D)`` sequences.

Why these choices:

- **Pre-norm** (LayerNorm before attention and MLP, residual stream untouched) trains stably without
  learning-rate warm-up tricks, which matters for the small, short runs of this reproduction.
- **Rotary embeddings (RoPE)** make attention scores depend on the *relative* offset between frames,
  so a model trained on short crops behaves the same at any position of a longer song, and there is
  no learned position table that caps the sequence length.
- **``scaled_dot_product_attention`` with ``dropout_p=0``**: the fused CPU/GPU kernels are much faster
  than explicit softmax(QK^T)V; attention dropout would disable them, so it is deliberately not offered
  (residual dropout is).
- **Key padding mask** ``(B, T)`` bool, True = valid frame: padded keys are excluded from every
  attention row, so outputs at valid frames never depend on what the padded frames contain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class RotaryEmbedding(nn.Module):
    """cos/sin tables of rotary position embeddings for a head dimension (the "rotate half" layout
    of GPT-NeoX/LLaMA: channel ``i`` is paired with channel ``i + head_dim / 2``).

    The tables are computed in float32 on demand and cached per (length, device), not stored in
    checkpoints: they are a pure function of ``head_dim`` and ``base``."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache: tuple[int, torch.device, torch.Tensor, torch.Tensor] | None = None

    def forward(self, length: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)``, each ``(length, head_dim)`` float32, for positions ``0 .. length - 1``."""
        device = device or self.inv_freq.device
        cache = self._cache
        if cache is not None and cache[0] >= length and cache[1] == device:
            return cache[2][:length], cache[3][:length]
        with torch.autocast(device_type=device.type, enabled=False):
            pos = torch.arange(length, dtype=torch.float32, device=device)
            angles = torch.outer(pos, self.inv_freq.to(device=device, dtype=torch.float32))
            angles = torch.cat([angles, angles], dim=-1)
            cos, sin = angles.cos(), angles.sin()
        self._cache = (length, device, cos, sin)
        return cos, sin


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``(..., T, head_dim)`` by the position angles ``cos``/``sin`` ``(T, head_dim)``.

    Each channel pair is rotated by a position-proportional angle, so ``<R_m q, R_n k>`` depends only
    on ``n - m`` and norms are preserved. Computed in float32 and cast back (bf16 angles would drift)."""
    dtype = x.dtype
    xf = x.float()
    return (xf * cos + _rotate_half(xf) * sin).to(dtype)


class MultiHeadAttention(nn.Module):
    """Self-attention with RoPE on queries and keys and a boolean key padding mask."""

    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim ({dim}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = rope
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        v = v.to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """``x + drop(attn(norm(x)))`` then ``x + drop(mlp(norm(x)))`` with a GELU MLP of ``mlp_ratio * dim``."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, n_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), rope, attn_mask))
        return x + self.dropout(self.mlp(self.norm2(x)))


def key_padding_to_attn_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(B, T)`` valid-frame mask → ``(B, 1, 1, T)`` boolean SDPA mask (True = may be attended to).

    A sequence with no valid frame would give all-masked softmax rows (NaN); such rows attend to
    every frame instead, so garbage stays finite and confined to a sequence the caller ignores."""
    if mask is None:
        return None
    if mask.dim() != 2:
        raise ValueError(f"mask must be (batch, time), got shape {tuple(mask.shape)}")
    mask = mask.to(torch.bool)
    mask = mask | ~mask.any(dim=-1, keepdim=True)
    return mask[:, None, None, :]


class TransformerStack(nn.Module):
    """``n_layers`` :class:`TransformerBlock` s sharing one rotary table, plus an optional final LayerNorm.

    ``gradient_checkpointing = True`` recomputes each block's activations in the backward pass
    (memory for compute), only while training with gradients enabled."""

    def __init__(
        self,
        dim: int,
        n_layers: int,
        n_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        final_norm: bool = True,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        self.dim = dim
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, n_heads, mlp_ratio=mlp_ratio, dropout=dropout) for _ in range(n_layers)
        )
        self.rotary = RotaryEmbedding(dim // n_heads)
        self.norm = nn.LayerNorm(dim) if final_norm else nn.Identity()
        self.gradient_checkpointing = gradient_checkpointing
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small-std init of the residual-branch output projections (GPT-2 style ``1/sqrt(2 L)``
        scaling), so the residual stream starts close to identity whatever the depth."""
        n = max(len(self.blocks), 1)
        for block in self.blocks:
            for lin in (block.attn.out, block.mlp[2]):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * n))
                nn.init.zeros_(lin.bias)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """``x`` ``(B, T, dim)``, ``mask`` ``(B, T)`` bool (True = valid) → ``(B, T, dim)``.

        With ``return_hidden`` also the list of each block's output (before the final norm), for
        layer-wise probing and intermediate-layer targets."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected (batch, time, {self.dim}) input, got shape {tuple(x.shape)}")
        if mask is not None and mask.shape != x.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match input {tuple(x.shape[:2])}")
        rope = self.rotary(x.shape[1], x.device)
        attn_mask = key_padding_to_attn_mask(mask)
        hidden: list[torch.Tensor] = []
        use_ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            if use_ckpt:
                x = checkpoint(block, x, rope, attn_mask, use_reentrant=False)
            else:
                x = block(x, rope, attn_mask)
            if return_hidden:
                hidden.append(x)
        x = self.norm(x)
        return (x, hidden) if return_hidden else x
