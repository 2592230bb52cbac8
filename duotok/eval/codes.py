"""Codebook health on held-out data: how much of each codebook is used and how evenly (perplexity),
accumulated over many batches because one batch holds far fewer frames than a large codebook."""

from __future__ import annotations

import math

import torch

from duotok.quantization.simvq import CodeUsage


def usage_report(usage: CodeUsage, frame_rate: float = 25.0) -> dict[str, float]:
    """``usage`` (fraction of codes seen), ``perplexity`` (2^entropy, in codes), ``dead`` codes,
    ``entropy_bits`` per token, and the entropy-limited ``bits_per_second`` at ``frame_rate``."""
    counts = usage.counts.double()
    total = counts.sum()
    if total == 0:
        raise ValueError("no codes recorded")
    p = counts[counts > 0] / total
    entropy = float(-(p * p.log2()).sum())
    return {"usage": usage.usage_fraction(), "perplexity": 2.0 ** entropy, "dead": int((counts == 0).sum()),
            "entropy_bits": entropy, "max_entropy_bits": math.log2(usage.codebook_size),
            "frames": int(total), "entropy_bits_per_second": entropy * frame_rate}


def token_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of positions where two equally long token sequences agree (e.g. tokens from separated
    stems vs. from the true stems)."""
    if a.shape != b.shape:
        raise ValueError(f"token sequences differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        raise ValueError("empty token sequences")
    return float((a == b).float().mean())
