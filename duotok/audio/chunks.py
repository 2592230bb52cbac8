"""Fixed-size chunking of a long signal, the unit every tokenizer here encodes in.

Why one helper: the encoders were trained on crops of one length, and a song is tokenized as the
concatenation of its chunks' tokens (so token ``t`` always covers the same 40 ms, and encoding is
chunk-local). Duo-Tok and the frozen-feature baselines must cut songs identically for their tokens to
be comparable frame by frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


def split_chunks(audio: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(samples,)`` → zero-padded ``(n_chunks, size)`` (at least one chunk) and each chunk's valid
    length ``(n_chunks,)``."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1 sample, got {size}")
    n = max(1, math.ceil(audio.numel() / size))
    padded = audio.new_zeros(n * size)
    padded[: audio.numel()] = audio.reshape(-1)
    lengths = torch.tensor([max(0, min(size, audio.numel() - i * size)) for i in range(n)])
    return padded.view(n, size), lengths


def batch_slices(n: int, batch: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch`` rows covering ``range(n)``."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    return (slice(i, min(n, i + batch)) for i in range(0, n, batch))
