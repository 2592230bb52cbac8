"""Chunking: zero-padded fixed-size chunks whose valid parts rebuild the signal; batch slices cover all rows."""

from __future__ import annotations

import pytest
import torch

from duotok.audio.chunks import batch_slices, split_chunks


@pytest.mark.parametrize("n", [1, 99, 100, 101, 350])
def test_chunks_rebuild_the_signal_and_pad_with_zeros(n):
    x = torch.randn(n)
    chunks, lengths = split_chunks(x, 100)
    assert chunks.shape == (max(1, -(-n // 100)), 100) and int(lengths.sum()) == n
    assert torch.equal(torch.cat([c[: int(k)] for c, k in zip(chunks, lengths, strict=True)]), x)
    assert not chunks.reshape(-1)[n:].any()


def test_batch_slices_cover_every_row_once():
    rows = [i for s in batch_slices(11, 4) for i in range(11)[s]]
    assert rows == list(range(11))
    with pytest.raises(ValueError):
        list(batch_slices(3, 0))
    with pytest.raises(ValueError):
        split_chunks(torch.zeros(3), 0)
