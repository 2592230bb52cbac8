"""Stage 4: a DiT latent diffusion decoder (flow matching) from one track's tokens to audio latents.

    cond (B, T_tok, cond_dim) @ 25 Hz ─ Linear ─ repeat ×cond_upsample ─┐
    x_t  (B, L, latent_dim)   @ 50 Hz ─ Linear ─────────────────────────+─→ N × DiT block ─→ final ─→ v
    t ─ sinusoid(256) ─ MLP ─┐                                              ↑ adaLN-Zero       ↑ adaLN
    track (0 vocal, 1 acc.) ─ Embedding ─+─→ c ─────────────────────────────┴──────────────────┘

It generates the latent sequence of an audio autoencoder (``latent_dim`` channels at 50 Hz)
conditioned on the quantized token embeddings of ONE track; one model serves both tracks.

Why these choices:

- **adaLN-Zero** (DiT, Peebles & Xie 2023): the global condition ``c`` (diffusion time + track)
  regresses the shift/scale/gate of every block's LayerNorms; it was DiT's best conditioning for the
  diffusion time, and the zero-initialised modulation makes every block start as the identity (and
  the zero-initialised output layer makes the velocity exactly 0 at init), which trains stably.
- **Token embeddings added frame-wise**, not cross-attention: tokens (25 Hz) and latents (50 Hz)
  are time-aligned, so each token is simply upsampled ×``cond_upsample`` and added to the frames it
  covers; attention then only has to model local context, not learn the alignment.
- **RoPE self-attention** (the repo's :class:`~duotok.modules.transformer.MultiHeadAttention`):
  relative positions only, so a model trained on 10-s crops works at any position of a full song.
- **One model with a track embedding** rather than one per track: half the parameters and training
  time on a CPU budget, and vocals and accompaniment share most of the acoustics.
- **Flow matching / rectified flow**: straight noise→data paths, so a plain Euler ODE sampler reaches
  usable quality in 8-32 steps; SD3's logit-normal time sampling puts the training effort on the
  middle of the path, where the velocity is hardest to predict.
- **Classifier-free guidance**: a learned ``null_cond`` vector replaces the whole token sequence of
  an item with probability ``cond_dropout`` in training; at sampling ``v = v_u + s (v_c - v_u)``.

Flow-matching convention (``t`` ∈ [0, 1], data at ``t = 1``)::

    x_0 ~ N(0, I)                       noise
    x_1 = normalize(latents)            data, per-channel standardised with latent_mean / latent_std
    x_t = (1 - (1 - sigma_min) t) x_0 + t x_1
    v   = x_1 - (1 - sigma_min) x_0     target velocity, d x_t / d t

Sampling integrates ``dx/dt = v(x, t)`` from ``t = 0`` (noise) to ``t = 1`` with Euler steps
(:func:`euler_sample`) and denormalises. The steps follow :func:`flow_time_grid`: uniform, or with
SD3's *time shift* (Esser et al. 2024, the ``shift`` of diffusers' ``FlowMatchEulerDiscreteScheduler``)
finer near the noise end, where the path bends most. On the 2026-12-04 default codec a shift of 3
at 8 steps matched the uniform grid at 16 on validation excerpts (``reports/experiments/quick_log.md``),
so the shift is a decoding setting that stage 4b chooses on validation, with the step count.

How the training loss is reached (DistributedDataParallel only sees ``forward``)::

    loss, metrics = model(latents=z, cond=cond, track=track, mask=mask)   # loss mode of forward
    loss, metrics = model.loss(z, cond, track, mask)                      # the same, via __call__

``forward`` is in *loss mode* exactly when the keyword ``latents=`` is given; otherwise it is the
velocity network ``forward(x_t, t, cond, track, mask, drop_cond) -> v``. A trainer ``loss_fn(model,
batch)`` must therefore call ``model(latents=..., ...)`` (``model`` may be the DDP wrapper, which has
no ``.loss`` attribute).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from duotok.io.checkpoint import PretrainedMixin
from duotok.modules.transformer import MultiHeadAttention, RotaryEmbedding, key_padding_to_attn_mask

__all__ = [
    "ACCOMPANIMENT",
    "VOCAL",
    "DiTBlock",
    "DiTConfig",
    "LatentDiT",
    "euler_sample",
    "flow_time_grid",
    "timestep_embedding",
]

VOCAL, ACCOMPANIMENT = 0, 1
TIME_FREQ_DIM = 256  # sinusoidal embedding size of t (128 frequencies × cos/sin, as in DiT)
TIME_SCALE = 1000.0  # t ∈ [0, 1] is scaled to DiT's [0, 1000] timestep range before the sinusoids


@dataclass
class DiTConfig:
    latent_dim: int = 32
    cond_dim: int = 64
    dim: int = 256
    n_layers: int = 6
    n_heads: int = 4
    mlp_ratio: float = 4.0
    n_tracks: int = 2
    cond_upsample: int = 2            # latent frames per token (50 Hz latents / 25 Hz tokens)
    cond_dropout: float = 0.1         # classifier-free guidance: P(condition → null_cond) per item
    time_sampling: str = "logit_normal"  # logit_normal (SD3: t = sigmoid(N(0, 1))) | uniform
    sigma_min: float = 0.0

    def __post_init__(self) -> None:
        if self.time_sampling not in ("logit_normal", "uniform"):
            raise ValueError(f"time_sampling must be 'logit_normal' or 'uniform', got {self.time_sampling!r}")
        if self.cond_upsample < 1:
            raise ValueError(f"cond_upsample must be >= 1, got {self.cond_upsample}")
        if not 0.0 <= self.cond_dropout <= 1.0:
            raise ValueError(f"cond_dropout must be in [0, 1], got {self.cond_dropout}")
        if not 0.0 <= self.sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {self.sigma_min}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")


def timestep_embedding(t: torch.Tensor, dim: int = TIME_FREQ_DIM, max_period: float = 10000.0) -> torch.Tensor:
    """DiT's sinusoidal embedding ``[cos(t f_k), sin(t f_k)]`` of ``t`` ``(B,)`` (already scaled), float32
    ``(B, dim)``, with ``dim / 2`` frequencies ``f_k = max_period^(-k / (dim / 2))``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x`` (B, L, D) modulated by per-item ``shift``/``scale`` (B, D)."""
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """adaLN-Zero block: ``x + gate_a · attn(mod(norm(x)))`` then ``x + gate_m · mlp(mod(norm(x)))``.

    The modulation Linear is zero-initialised: all gates start at 0, so the block starts as identity."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = MultiHeadAttention(dim, n_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.adaLN[1].weight)
        nn.init.zeros_(self.adaLN[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN(c).chunk(6, dim=-1)
        x = x + gate_a[:, None] * self.attn(_modulate(self.norm1(x), shift_a, scale_a), rope, attn_mask)
        return x + gate_m[:, None] * self.mlp(_modulate(self.norm2(x), shift_m, scale_m))


class FinalLayer(nn.Module):
    """adaLN (shift, scale) + Linear(dim → latent_dim); the output Linear is zero-initialised."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, out_dim)
        for lin in (self.adaLN[1], self.linear):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN(c).chunk(2, dim=-1)
        return self.linear(_modulate(self.norm(x), shift, scale))


def check_time_shift(value: object, what: str = "time_shift") -> float:
    """``value`` as a float when it is a finite number > 0 (a bool is not a number here), else a
    ValueError naming ``what``: the one rule every entry point that takes a time shift applies
    (the sampler, the decoder's config writer, ``DuoTok.decode``, the validation sweep's grid)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) <= 0:
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)


def flow_time_grid(steps: int, shift: float = 1.0) -> list[float]:
    """The ``steps + 1`` times ``0 = t_0 < ... < t_steps = 1`` an Euler sampler visits.

    With ``u = 1 - i/steps`` the *noise level* of a uniform grid (1 at the noise end, ``t = 0``), the
    shifted level is ``u' = shift·u / (1 + (shift - 1)·u)`` and ``t_i = 1 - u'``: SD3's time shift, in
    this module's convention where data sit at ``t = 1``. ``shift = 1`` is the uniform grid exactly
    (``t_i = i/steps``); ``shift > 1`` makes the first steps (near the noise) shorter and the last ones
    longer. Returned as Python floats so the grid is the same on every device and dtype."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    shift = check_time_shift(shift, "time shift")
    if shift == 1.0:
        return [i / steps for i in range(steps + 1)]
    grid = []
    for i in range(steps + 1):
        u = 1.0 - i / steps
        grid.append(1.0 - shift * u / (1.0 + (shift - 1.0) * u))
    grid[0], grid[-1] = 0.0, 1.0
    return grid


def euler_sample(velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                 steps: int, time_shift: float = 1.0) -> torch.Tensor:
    """Integrate ``dx/dt = velocity_fn(x, t)`` from ``t = 0`` to ``t = 1`` with ``steps`` Euler steps on
    :func:`flow_time_grid` ``(steps, time_shift)``, starting at ``x0``; ``t`` is passed as a 0-dim
    float32 tensor on ``x0``'s device and takes the grid's values except the last (``t = 1`` is never
    evaluated). ``time_shift = 1``: the uniform grid ``0, 1/steps, ..., (steps - 1)/steps``, computed
    exactly as before the option existed (same floats, same audio)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = x0
    if time_shift == 1.0:
        dt = 1.0 / steps
        for i in range(steps):
            t = torch.tensor(i * dt, dtype=torch.float32, device=x0.device)
            x = x + dt * velocity_fn(x, t)
        return x
    grid = flow_time_grid(steps, time_shift)
    for t0, t1 in zip(grid[:-1], grid[1:], strict=True):
        t = torch.tensor(t0, dtype=torch.float32, device=x0.device)
        x = x + (t1 - t0) * velocity_fn(x, t)
    return x


class LatentDiT(nn.Module, PretrainedMixin):
    """DiT velocity network over normalised latents, conditioned on one track's token embeddings.

    ``forward`` has two modes (see the module docstring):

    - velocity: ``forward(x_t, t, cond, track, mask=None, drop_cond=None) -> v (B, L, latent_dim)``;
    - loss (keyword ``latents=`` given): ``forward(latents=, cond=, track=, mask=None, generator=None)
      -> (loss, {"fm_mse": float})``, identical to :meth:`loss`.
    """

    config_class = DiTConfig

    def __init__(self, config: DiTConfig | None = None):
        super().__init__()
        config = config or DiTConfig()
        self.config = config
        dim = config.dim
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))
        self.x_proj = nn.Linear(config.latent_dim, dim)
        self.cond_proj = nn.Linear(config.cond_dim, dim)
        self.null_cond = nn.Parameter(torch.randn(config.cond_dim) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(TIME_FREQ_DIM, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.track_emb = nn.Embedding(config.n_tracks, dim)
        nn.init.normal_(self.track_emb.weight, std=0.02)
        for lin in (self.time_mlp[0], self.time_mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        self.blocks = nn.ModuleList(DiTBlock(dim, config.n_heads, config.mlp_ratio) for _ in range(config.n_layers))
        self.rotary = RotaryEmbedding(dim // config.n_heads)
        self.final = FinalLayer(dim, config.latent_dim)

    # ------------------------------------------------------------------ latent normalisation

    @torch.no_grad()
    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the per-channel mean and std ``(latent_dim,)`` of the training latents."""
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        shape = (self.config.latent_dim,)
        if tuple(mean.shape) != shape or tuple(std.shape) != shape:
            raise ValueError(f"latent stats must have shape {shape}, got {tuple(mean.shape)} and {tuple(std.shape)}")
        if not bool((std > 0).all()):
            raise ValueError("latent std must be positive")
        self.latent_mean.copy_(mean)
        self.latent_std.copy_(std)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, L, latent_dim)`` → standardised latents (the model's data space)."""
        return (z - self.latent_mean) / self.latent_std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        return z * self.latent_std + self.latent_mean

    # ------------------------------------------------------------------ network

    def _cond_frames(self, cond: torch.Tensor, length: int, drop_cond: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings ``(B, T_tok, cond_dim)`` → frame-aligned ``(B, length, dim)``: null-cond
        substitution for dropped items, projection, ×cond_upsample repetition, trim or edge-pad."""
        if drop_cond is not None:
            drop = drop_cond.to(device=cond.device, dtype=torch.bool).view(-1, 1, 1)
            cond = torch.where(drop, self.null_cond.to(cond.dtype).expand_as(cond), cond)
        h = self.cond_proj(cond).repeat_interleave(self.config.cond_upsample, dim=1)
        if h.shape[1] >= length:
            return h[:, :length]
        return torch.cat([h, h[:, -1:].expand(-1, length - h.shape[1], -1)], dim=1)

    def forward(
        self,
        x_t: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        track: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        drop_cond: torch.Tensor | None = None,
        *,
        latents: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, float]]:
        """Velocity mode: ``x_t`` (B, L, latent_dim) normalised, ``t`` (B,) or scalar in [0, 1],
        ``cond`` (B, T_tok, cond_dim), ``track`` (B,) long, ``mask`` (B, L) bool (True = valid),
        ``drop_cond`` (B,) bool (True = use ``null_cond``) → velocity (B, L, latent_dim).

        Loss mode, when ``latents=`` is given: see :meth:`loss` (``x_t``, ``t``, ``drop_cond`` unused)."""
        if latents is not None:
            if x_t is not None or t is not None or drop_cond is not None:
                raise TypeError("loss mode (latents=...) takes no x_t, t or drop_cond")
            return self._flow_matching_loss(latents, cond, track, mask, generator)
        if x_t is None or t is None or cond is None or track is None:
            raise TypeError("forward needs x_t, t, cond and track (or latents=... for the loss)")
        return self._velocity(x_t, t, cond, track, mask, drop_cond)

    def _velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, track: torch.Tensor,
                  mask: torch.Tensor | None, drop_cond: torch.Tensor | None) -> torch.Tensor:
        cfg = self.config
        if x_t.dim() != 3 or x_t.shape[-1] != cfg.latent_dim:
            raise ValueError(f"x_t must be (batch, frames, {cfg.latent_dim}), got {tuple(x_t.shape)}")
        if cond.dim() != 3 or cond.shape[-1] != cfg.cond_dim or cond.shape[0] != x_t.shape[0]:
            raise ValueError(f"cond must be ({x_t.shape[0]}, tokens, {cfg.cond_dim}), got {tuple(cond.shape)}")
        if mask is not None and tuple(mask.shape) != tuple(x_t.shape[:2]):
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match x_t {tuple(x_t.shape[:2])}")
        b, length, _ = x_t.shape
        t = torch.as_tensor(t, device=x_t.device).float().reshape(-1).expand(b)
        h = self.x_proj(x_t) + self._cond_frames(cond, length, drop_cond)
        c = self.time_mlp(timestep_embedding(t * TIME_SCALE)) + self.track_emb(track.to(x_t.device).long())
        rope = self.rotary(length, x_t.device)
        attn_mask = key_padding_to_attn_mask(mask)
        for block in self.blocks:
            h = block(h, c, rope, attn_mask)
        return self.final(h, c)

    # ------------------------------------------------------------------ training

    def loss(self, latents: torch.Tensor, cond: torch.Tensor, track: torch.Tensor,
             mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Flow-matching loss of UNnormalised ``latents`` (B, L, latent_dim) given ``cond``, ``track``
        and the valid-frame ``mask`` (B, L): ``(masked MSE, {"fm_mse": float})``. Goes through
        ``self(latents=...)``, so it is exactly what a DDP-wrapped call in loss mode computes."""
        return self(latents=latents, cond=cond, track=track, mask=mask, generator=generator)

    def sample_time(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` training times in (0, 1) from ``config.time_sampling``."""
        if self.config.time_sampling == "uniform":
            return torch.rand(n, device=device, generator=generator)
        return torch.sigmoid(torch.randn(n, device=device, generator=generator))

    def _flow_matching_loss(self, latents: torch.Tensor, cond: torch.Tensor | None, track: torch.Tensor | None,
                            mask: torch.Tensor | None, generator: torch.Generator | None,
                            ) -> tuple[torch.Tensor, dict[str, float]]:
        if cond is None or track is None:
            raise TypeError("the loss needs cond and track")
        b, device = latents.shape[0], latents.device
        x1 = self.normalize(latents.float())
        # Draw order is fixed (t, noise, dropout) so one generator seed reproduces a loss exactly.
        t = self.sample_time(b, device, generator)
        x0 = torch.randn(x1.shape, device=device, generator=generator)
        drop = None
        if self.training:  # always a tensor in training, so null_cond is in every graph (DDP needs that)
            if self.config.cond_dropout > 0:
                drop = torch.rand(b, device=device, generator=generator) < self.config.cond_dropout
            else:
                drop = torch.zeros(b, dtype=torch.bool, device=device)
        s = 1.0 - self.config.sigma_min
        tt = t[:, None, None]
        x_t = (1.0 - s * tt) * x0 + tt * x1
        target = x1 - s * x0
        v = self._velocity(x_t, t, cond, track, mask, drop)  # not self(...): hooks run once per call
        err = (v.float() - target).pow(2)
        if mask is None:
            loss = err.mean()
        else:
            m = mask.to(device=device, dtype=err.dtype)[..., None]
            loss = (err * m).sum() / (m.sum() * err.shape[-1]).clamp_min(1.0)
        return loss, {"fm_mse": float(loss.detach())}

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, track: torch.Tensor, n_frames: int | None = None, steps: int = 16,
               cfg_scale: float = 1.0, generator: torch.Generator | None = None,
               mask: torch.Tensor | None = None, time_shift: float = 1.0) -> torch.Tensor:
        """Generate UNnormalised latents ``(B, L, latent_dim)``, ``L = n_frames or T_tok · cond_upsample``,
        by Euler integration (``steps`` on :func:`flow_time_grid` with ``time_shift``) from noise drawn
        with ``generator`` (same seed → same output).

        ``cfg_scale == 1``: conditional branch only; otherwise the conditional and the null-cond branch
        run in one batched forward and ``v = v_u + cfg_scale (v_c - v_u)``. The network has no
        train/eval-dependent layers (condition dropout acts only in the loss), so the result does not
        depend on the module's mode. Frames outside ``mask`` (B, L) hold unspecified values."""
        b = cond.shape[0]
        length = int(n_frames) if n_frames is not None else cond.shape[1] * self.config.cond_upsample
        device = cond.device
        track = track.to(device).long()
        x0 = torch.randn(b, length, self.config.latent_dim, device=device, generator=generator)
        if cfg_scale == 1.0:
            def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return self(x, t.expand(b), cond, track, mask).float()
        else:
            cond2, track2 = torch.cat([cond, cond]), torch.cat([track, track])
            mask2 = None if mask is None else torch.cat([mask, mask])
            drop2 = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(device)

            def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                v_c, v_u = self(torch.cat([x, x]), t.expand(2 * b), cond2, track2, mask2, drop2).float().chunk(2)
                return v_u + cfg_scale * (v_c - v_u)

        return self.denormalize(euler_sample(velocity, x0, steps, time_shift))
