"""SimVQ (Zhu et al., arXiv 2411.02038): vector quantization with a *frozen* random codebook ``C0`` and
a learned linear map ``W``, so the effective codebook is ``C = W(C0)``.

Why this rather than a plain learned codebook: with a plain codebook only the selected entries get a
gradient, so unselected entries drift out of reach and die (codebook collapse). Here every codebook
loss gradient updates the shared ``W``, which moves the *whole* codebook (the span of ``C0``)
together, keeping large codebooks (Duo-Tok uses 32768 entries per track) almost fully used without
k-means init, EMA updates or dead-code restarts.

Loss (as the official implementation): ``beta * ||sg(z_q) - z||^2 + ||z_q - sg(z)||^2`` — the first
(commitment) term pulls the encoder towards its code, the second (codebook) term is the only path
through which ``W`` learns, because the forward output uses the straight-through estimator
``z + sg(z_q - z)``.

``lookup="cosine"`` (issue 17) compares *directions* in a fixed standardised space instead: inputs
are shifted by their mean and multiplied by a fixed matrix, both fitted once to data
(:meth:`SimVQ.init_from_data`; with ``shrinkage=1``, the default in ``params.yaml``, the matrix only
rescales — the features are centred, not whitened; ``shrinkage=0`` whitens fully), inputs and codes
are scaled to the same norm ``sqrt(D)``, and the quantized vector is mapped back (coloured) to the
input space. Why: the stage-2 bottleneck is nearly low-rank (≈ 99 % of its variance in 5 of 64
dimensions) and, with plain L2 lookup, codes of small norm are nearest to most inputs ("hubness"):
1024 codes fitted to the data's mean and covariance were used with an effective count (perplexity)
of 140-190; the same codes compared by direction in the fully whitened space, 390-480
(on centred features, 256-301; the adopted default, which keeps more harmony in the tokens) (k-means on the raw
features: 380-450). The codebook is still ``W(C0)`` with ``C0`` frozen — only the metric changed, as
ViT-VQGAN's l2-normalised codes.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

from duotok.quantization.base import QuantizedResult

#: Largest number of float32 distances materialised at once by the nearest-neighbour search
#: (64 MiB); above it the search loops over frame blocks and codebook chunks.
DEFAULT_MAX_DISTANCE_ELEMENTS = 1 << 24

#: Nearest-neighbour rules: plain L2 (SimVQ as published) or cosine in a fixed standardised space.
LOOKUPS = ("l2", "cosine")


def _valid_mask(mask: torch.Tensor | None, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A boolean ``(B, T)`` valid-frame mask; ``None`` means every frame is valid."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if mask.shape != shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match frames {tuple(shape)}")
    return mask.to(device=device, dtype=torch.bool)


def nearest_codes(
    z: torch.Tensor, codebook: torch.Tensor, max_elements: int = DEFAULT_MAX_DISTANCE_ELEMENTS
) -> torch.Tensor:
    """Index of the L2-nearest codebook row for each row of ``z`` ``(N, D)`` → ``(N,)`` long.

    Computed in float32 as ``||c||^2 - 2 z.c`` (``||z||^2`` is constant per row, so it cannot change
    the argmin). At most ``max_elements`` distances exist at a time: frames are processed in blocks
    and, inside a block, the codebook in chunks whose running minimum is kept. Ties resolve to the
    lowest index, as ``torch.argmin`` does, so chunked and unchunked searches agree.
    """
    if z.dim() != 2 or codebook.dim() != 2 or z.shape[1] != codebook.shape[1]:
        raise ValueError(f"need z (N, D) and codebook (V, D), got {tuple(z.shape)}, {tuple(codebook.shape)}")
    z = z.float()
    codebook = codebook.float()
    n, size = z.shape[0], codebook.shape[0]
    codes = torch.empty(n, dtype=torch.long, device=z.device)
    if n == 0:
        return codes
    max_elements = max(int(max_elements), 1)
    rows = max(1, min(n, max_elements // size)) if size <= max_elements else 1
    chunk = max(1, min(size, max_elements // rows))
    norms = codebook.pow(2).sum(dim=1)
    for r0 in range(0, n, rows):
        block = z[r0 : r0 + rows]
        best_dist = torch.full((block.shape[0],), math.inf, device=z.device)
        best_code = torch.zeros(block.shape[0], dtype=torch.long, device=z.device)
        for c0 in range(0, size, chunk):
            part = codebook[c0 : c0 + chunk]
            dist = norms[c0 : c0 + chunk] - 2.0 * block @ part.T
            value, index = dist.min(dim=1)
            better = value < best_dist  # strict: an earlier chunk wins ties, like argmin
            best_dist = torch.where(better, value, best_dist)
            best_code = torch.where(better, index + c0, best_code)
        codes[r0 : r0 + rows] = best_code
    return codes


def usage_statistics(counts: torch.Tensor) -> tuple[float, float]:
    """``(perplexity, used fraction)`` of a code-count histogram ``(V,)``.

    Perplexity is ``exp(entropy)`` of the empirical code distribution: the effective number of
    codes in use (``V`` for uniform use, 1 for collapse). An empty histogram gives ``(0, 0)``.
    """
    counts = counts.double()
    total = counts.sum()
    if total <= 0:
        return 0.0, 0.0
    p = counts[counts > 0] / total
    entropy = -(p * p.log()).sum()
    return float(entropy.exp()), float((counts > 0).double().mean())


class SimVQ(nn.Module):
    """SimVQ quantizer: frozen ``C0`` ``(V, D)`` ~ N(0, 1/D) buffer, learned ``W = nn.Linear(D, D)``.

    ``forward(z (B, T, D), mask=None)`` → :class:`QuantizedResult` whose ``quantized`` equals
    ``decode(codes)`` in value and passes the gradient straight through to ``z``.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        beta: float = 0.25,
        seed: int = 0,
        bias: bool = True,
        max_distance_elements: int = DEFAULT_MAX_DISTANCE_ELEMENTS,
        lookup: str = "l2",
    ):
        super().__init__()
        if dim < 1 or codebook_size < 1:
            raise ValueError(f"dim and codebook_size must be positive, got {dim}, {codebook_size}")
        if lookup not in LOOKUPS:
            raise ValueError(f"lookup must be one of {LOOKUPS}, got {lookup!r}")
        self.lookup = lookup
        self.dim = dim
        self.codebook_size = codebook_size
        self.beta = beta
        self.max_distance_elements = max_distance_elements
        # Seeded so two runs (and a checkpoint-less re-creation) get the same frozen basis; it is
        # still saved in the state_dict so a checkpoint never depends on the RNG implementation.
        generator = torch.Generator().manual_seed(seed)
        base = torch.randn(codebook_size, dim, generator=generator) * dim**-0.5
        self.register_buffer("base_codebook", base, persistent=True)
        self.proj = nn.Linear(dim, dim, bias=bias)
        if lookup == "cosine":  # the fixed standardisation: identity until init_from_data fits it
            self.register_buffer("input_shift", torch.zeros(dim), persistent=True)
            self.register_buffer("input_whiten", torch.eye(dim), persistent=True)
            self.register_buffer("output_color", torch.eye(dim), persistent=True)

    def _effective_codebook(self) -> torch.Tensor:
        """``W(C0)`` in float32 with autocast off (bf16 would perturb distances and ``decode``)."""
        with torch.autocast(device_type=self.base_codebook.device.type, enabled=False):
            weight = self.proj.weight.float()
            bias = None if self.proj.bias is None else self.proj.bias.float()
            return nn.functional.linear(self.base_codebook.float(), weight, bias)

    def _lookup_codebook(self) -> torch.Tensor:
        """The codebook the nearest-neighbour search compares against: ``W(C0)``, with ``"cosine"``
        each row scaled to norm ``sqrt(D)``."""
        codebook = self._effective_codebook()
        if self.lookup == "cosine":
            codebook = nn.functional.normalize(codebook, dim=-1) * self.dim**0.5
        return codebook

    def _to_lookup(self, z: torch.Tensor) -> torch.Tensor:
        """Inputs (float32) → the lookup space (the identity for ``"l2"``)."""
        if self.lookup == "l2":
            return z
        u = (z - self.input_shift.float()) @ self.input_whiten.float().T
        return nn.functional.normalize(u, dim=-1) * self.dim**0.5

    def _from_lookup(self, u: torch.Tensor) -> torch.Tensor:
        """Lookup-space vectors → the input space (the identity for ``"l2"``)."""
        if self.lookup == "l2":
            return u
        return u @ self.output_color.float().T + self.input_shift.float()

    def codebook(self) -> torch.Tensor:
        """The codebook in the lookup space ``(V, D)``, float32, detached: ``W(C0)`` for ``"l2"``."""
        with torch.autocast(device_type=self.base_codebook.device.type, enabled=False):
            return self._lookup_codebook().detach()

    @torch.no_grad()
    def fingerprint(self) -> str:
        """16-hex-digit sha256 of the effective codebook, so token files can refuse a mismatched
        decoder. Computed on the CPU in float64 and rounded to 1e-6 (as integers, so -0.0 == +0.0):
        the same weights give the same fingerprint on any device despite matmul rounding."""
        weight = self.proj.weight.detach().cpu().double()
        codebook = self.base_codebook.detach().cpu().double() @ weight.T
        if self.proj.bias is not None:
            codebook = codebook + self.proj.bias.detach().cpu().double()
        if self.lookup == "cosine":  # what decode returns, so the standardisation is covered too
            codebook = nn.functional.normalize(codebook, dim=-1) * self.dim**0.5
            codebook = codebook @ self.output_color.detach().cpu().double().T + self.input_shift.detach().cpu().double()
        quantised = torch.round(codebook * 1e6).to(torch.int64)
        digest = hashlib.sha256()
        digest.update(str(tuple(quantised.shape)).encode())
        digest.update(quantised.numpy().tobytes())
        return digest.hexdigest()[:16]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, T)`` → codebook vectors ``(B, T, D)`` in the input space (float32)."""
        with torch.autocast(device_type=self.base_codebook.device.type, enabled=False):
            return self._from_lookup(nn.functional.embedding(codes.long(), self._lookup_codebook()))

    embed = decode

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> QuantizedResult:
        if z.dim() != 3 or z.shape[-1] != self.dim:
            raise ValueError(f"SimVQ expects (B, T, {self.dim}) input, got {tuple(z.shape)}")
        valid = _valid_mask(mask, z.shape[:2], z.device)
        with torch.autocast(device_type=z.device.type, enabled=False):
            u = self._to_lookup(z.float())
            codebook = self._lookup_codebook()
            codes = nearest_codes(  # with "cosine" all rows have one norm: L2-nearest = most similar direction
                u.reshape(-1, self.dim).detach(), codebook.detach(), self.max_distance_elements
            )
            codes = codes.view(z.shape[:2])
            u_q = nn.functional.embedding(codes, codebook)
            loss = self._loss(u, u_q, valid)
            quantized = self._from_lookup(u + (u_q - u).detach())
        counts = torch.bincount(codes[valid], minlength=self.codebook_size)
        perplexity, usage = usage_statistics(counts)
        return QuantizedResult(
            quantized=quantized.to(z.dtype),
            codes=codes,
            loss=loss,
            metrics={"perplexity": perplexity, "usage": usage},
        )

    @torch.no_grad()
    def init_from_data(self, z: torch.Tensor, eps: float = 1e-5, shrinkage: float = 0.0) -> None:
        """Start the codebook where the inputs are. ``z``: ``(N, D)`` samples of the quantizer's input
        (N >= 2). ``shrinkage`` in [0, 1] blends the covariance with its isotropic part,
        ``(1 - s) Cov + s tr(Cov) / D I``: with ``"cosine"``, 0 whitens fully (every direction
        counts alike, the faint ones too), 1 only centres and rescales (the strong directions
        dominate, as in the raw features).

        ``"l2"``: bias = their mean, ``W`` = ``sqrt(D)`` x the Cholesky factor of their covariance, so
        ``W(C0)`` (``C0`` rows ~ N(0, I/D)) has the inputs' mean and covariance. ``"cosine"``: the
        fixed standardisation is fitted (shift = mean; whitening = the inverse Cholesky factor of the
        shrunk covariance, colouring = the factor) and ``W`` gets the covariance the inputs have in
        that whitened space (the identity for ``shrinkage=0``), bias 0 — so the codes' directions
        are spread like the inputs' directions.

        Why: with a random ``W`` the codebook sits near the origin at RMS ~ D^-1/2 while an
        un-normalised bottleneck can sit far off it (a shared offset, another scale); then every input
        is nearest to the few entries at the codebook's rim, and the commitment term shrinks the
        encoder toward them instead of the codebook spreading over the data (codebook collapse)."""
        if self.proj.bias is None:
            raise ValueError("init_from_data sets the bias: build SimVQ with bias=True")
        z = z.detach().reshape(-1, self.dim).double()
        if z.shape[0] < 2:
            raise ValueError(f"need at least 2 samples of the input, got {z.shape[0]}")
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}")
        mean = z.mean(dim=0)
        centred = z - mean
        cov = centred.T @ centred / (z.shape[0] - 1)
        scale = cov.diagonal().mean().clamp_min(eps)
        eye = torch.eye(self.dim, dtype=cov.dtype)
        if self.lookup == "cosine":
            # metric: whiten by the shrunk covariance; codes: the covariance the inputs have there
            metric = torch.linalg.cholesky((1.0 - shrinkage) * cov + (shrinkage + eps) * scale * eye)
            whiten = torch.linalg.inv(metric)
            inner = whiten @ cov @ whiten.T
            self.input_shift.copy_(mean.to(self.input_shift))
            self.output_color.copy_(metric.to(self.output_color))
            self.input_whiten.copy_(whiten.to(self.input_whiten))
            self.proj.weight.copy_((torch.linalg.cholesky(inner + eps * eye) * self.dim**0.5).to(self.proj.weight))
            self.proj.bias.zero_()
            return
        chol = torch.linalg.cholesky(cov + eps * scale * eye)
        self.proj.weight.copy_((chol * self.dim**0.5).to(self.proj.weight))
        self.proj.bias.copy_(mean.to(self.proj.bias))

    def _loss(self, z: torch.Tensor, z_q: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Commitment + codebook loss, mean squared error per element over valid frames (0 if none)."""
        weight = valid.unsqueeze(-1).float()
        denom = weight.sum().clamp_min(1.0) * self.dim
        commitment = ((z_q.detach() - z).pow(2) * weight).sum() / denom
        codebook = ((z_q - z.detach()).pow(2) * weight).sum() / denom
        return self.beta * commitment + codebook


class CodeUsage:
    """Code counts accumulated over many batches (an epoch, a validation pass), because one batch
    holds far fewer frames than a 32768-entry codebook and so always looks under-used."""

    def __init__(self, codebook_size: int):
        self.codebook_size = codebook_size
        self.counts = torch.zeros(codebook_size, dtype=torch.long)

    def reset(self) -> None:
        self.counts.zero_()

    @torch.no_grad()
    def update(self, codes: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Add the codes of the valid frames (``mask`` True) to the histogram."""
        codes = codes if mask is None else codes[mask.to(torch.bool)]
        codes = codes.reshape(-1).long()
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes outside [0, {self.codebook_size})")
        self.counts += torch.bincount(codes, minlength=self.codebook_size).cpu()

    def usage_fraction(self) -> float:
        return usage_statistics(self.counts)[1]

    def perplexity(self) -> float:
        return usage_statistics(self.counts)[0]

    def dead_codes(self) -> torch.Tensor:
        """Indices of codes never used since the last reset."""
        return torch.nonzero(self.counts == 0).flatten()
