"""Deterministic evaluation batches: fixed crops of a held-out split, in order, no shuffling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


def eval_batches(data: Dataset, batch_size: int, collate_fn: Callable | None = None,
                 max_batches: int | None = None, device: str | torch.device = "cpu") -> Iterator[dict[str, Any]]:
    """Batches of ``data`` in order (tensors moved to ``device``), at most ``max_batches``."""
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_fn, num_workers=0)
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        yield {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
