"""Duo-Tok's stage-3 quantizer and its router: two SimVQ codebooks, one per track, with *hard* routing.

Each frame carries a route (0 = vocal track, 1 = accompaniment track) and is quantized by that
track's branch only — ``proj_in (dim → bottleneck) → SimVQ → proj_out (bottleneck → dim)``. Why hard
routing rather than one shared codebook: the two tracks have very different statistics, and separate
codebooks let each spend all its entries on its own track (the paper's dual-codebook design). Frames
are gathered per route so a branch never sees — and never gets a gradient from — the other track.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from duotok.quantization.base import QuantizedResult
from duotok.quantization.simvq import SimVQ

#: Branch names, indexed by route; also the metric prefixes.
TRACKS = ("vocal", "accompaniment")


def bottleneck_norm(kind: str, dim: int) -> nn.Module:
    """The normalisation after a bottleneck's down-projection: ``"layer"`` (per-frame standardisation,
    no learned scale or offset) or ``"none"``. Why: stage 2 replaces bottleneck frames with N(0, 1)
    noise and stage 3 puts a codebook there; both assume features on a known unit scale, which an
    unnormalised projection does not keep (issue 17: RMS 1.8, mostly a shared offset)."""
    if kind == "layer":
        return nn.LayerNorm(dim, elementwise_affine=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"bottleneck_norm must be 'layer' or 'none', got {kind!r}")


class CodebookBranch(nn.Module):
    """One track's path: down-projection (and the stage-2 bottleneck normalisation), SimVQ, up-projection."""

    def __init__(self, dim: int, bottleneck_dim: int, codebook_size: int, beta: float, seed: int,
                 norm: str = "none", lookup: str = "l2"):
        super().__init__()
        self.proj_in = nn.Linear(dim, bottleneck_dim)
        self.norm = bottleneck_norm(norm, bottleneck_dim)
        self.vq = SimVQ(bottleneck_dim, codebook_size, beta=beta, seed=seed, lookup=lookup)
        self.proj_out = nn.Linear(bottleneck_dim, dim)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(…, dim)`` → what the codebook quantizes ``(…, bottleneck_dim)``."""
        return self.norm(self.proj_in(x))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, QuantizedResult]:
        result = self.vq(self.project(x), mask)
        return self.proj_out(result.quantized), result

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.proj_out(self.vq.decode(codes))


def expand_route(route: torch.Tensor, batch: int, frames: int, device: torch.device) -> torch.Tensor:
    """A ``(B,)`` per-item or ``(B, T)`` per-frame route → ``(B, T)`` long, checked to be 0 or 1."""
    route = route.to(device=device, dtype=torch.long)
    if route.shape == (batch,):
        route = route[:, None].expand(batch, frames)
    elif route.shape != (batch, frames):
        raise ValueError(f"route must be ({batch},) or ({batch}, {frames}), got {tuple(route.shape)}")
    if route.numel() and ((route < 0) | (route >= len(TRACKS))).any():
        raise ValueError("route values must be 0 (vocal) or 1 (accompaniment)")
    return route


class DualCodebookQuantizer(nn.Module):
    """Two-branch quantizer; ``codes`` index the codebook of each frame's own route."""

    def __init__(
        self,
        dim: int,
        bottleneck_dim: int,
        codebook_sizes: Sequence[int] = (32768, 32768),
        beta: float = 0.25,
        seed: int = 0,
        norm: str = "none",
        lookup: str = "l2",
    ):
        super().__init__()
        if len(codebook_sizes) != len(TRACKS):
            raise ValueError(f"need one codebook size per track {TRACKS}, got {tuple(codebook_sizes)}")
        self.dim = dim
        self.bottleneck_dim = bottleneck_dim
        self.codebook_sizes = tuple(int(v) for v in codebook_sizes)
        # Distinct seeds: two identical frozen bases would make the codebooks start as copies.
        self.branches = nn.ModuleList(
            CodebookBranch(dim, bottleneck_dim, size, beta, seed + k, norm, lookup)
            for k, size in enumerate(self.codebook_sizes)
        )

    def forward(
        self, x: torch.Tensor, route: torch.Tensor, mask: torch.Tensor | None = None
    ) -> QuantizedResult:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected (B, T, {self.dim}) input, got {tuple(x.shape)}")
        batch, frames = x.shape[:2]
        route = expand_route(route, batch, frames, x.device)
        valid = None if mask is None else mask.to(device=x.device, dtype=torch.bool)
        codes = torch.zeros(batch, frames, dtype=torch.long, device=x.device)
        loss = x.new_zeros((), dtype=torch.float32)
        pieces: list[tuple[torch.Tensor, torch.Tensor]] = []
        metrics: dict[str, float] = {}
        for k, (name, branch) in enumerate(zip(TRACKS, self.branches, strict=True)):
            selected = route == k
            n_frames = int(selected.sum())
            metrics[f"{name}/frames"] = float(n_frames)
            if n_frames == 0:
                continue  # the branch is not run at all: no compute, no gradient
            # Gather this track's frames into one (1, N_k, dim) sequence; the branch is frame-wise.
            branch_mask = None if valid is None else valid[selected][None]
            out, result = branch(x[selected][None], branch_mask)
            codes[selected] = result.codes[0]
            pieces.append((selected, out[0]))
            loss = loss + result.loss.float()
            metrics.update({f"{name}/{key}": value for key, value in result.metrics.items()})
        quantized = self._scatter(pieces, batch, frames, x)
        return QuantizedResult(quantized=quantized, codes=codes, loss=loss, route=route, metrics=metrics)

    def _scatter(
        self, pieces: list[tuple[torch.Tensor, torch.Tensor]], batch: int, frames: int, like: torch.Tensor
    ) -> torch.Tensor:
        """Put each branch's ``(N_k, dim)`` output back at its frames' positions (differentiably)."""
        dtype = pieces[0][1].dtype if pieces else like.dtype
        out = torch.zeros(batch, frames, self.dim, dtype=dtype, device=like.device)
        for selected, values in pieces:
            out = out.index_put((selected,), values.to(dtype))
        return out

    def decode(self, codes: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, T)`` with their route ``(B,)``/``(B, T)`` → embeddings ``(B, T, dim)`` after
        ``proj_out``: what :meth:`forward` outputs in value for the same codes."""
        batch, frames = codes.shape
        route = expand_route(route, batch, frames, codes.device)
        pieces = []
        for k, branch in enumerate(self.branches):
            selected = route == k
            if bool(selected.any()):
                pieces.append((selected, branch.decode(codes[selected][None])[0]))
        like = torch.empty(0, device=codes.device)
        return self._scatter(pieces, batch, frames, like)

    embed = decode

    def codebook_fingerprints(self) -> dict[str, str]:
        """``{"vocal": hex, "accompaniment": hex}`` — the SimVQ fingerprints token files store."""
        return {name: branch.vq.fingerprint() for name, branch in zip(TRACKS, self.branches, strict=True)}

    def bits_per_second(self, frame_rate: float = 25.0) -> float:
        """Bitrate of the two token streams together: ``frame_rate * sum_k log2 V_k``
        (750 bit/s for two 32768-entry codebooks at 25 Hz)."""
        return frame_rate * sum(math.log2(v) for v in self.codebook_sizes)
