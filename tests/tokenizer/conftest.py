"""A tiny randomly initialised DuoTok (smoke-profile sizes, 1-s chunks) shared by the tokenizer tests."""

from __future__ import annotations

import pytest
import torch

from duotok.tokenizer import DuoTok, DuoTokConfig
from duotok.train import finetune, quantize


def tiny_config(chunk_seconds: float = 1.0, seed: int = 0) -> DuoTokConfig:
    separator, _, _ = finetune.build_config("smoke")
    quantizer, _, _ = quantize.build_config("smoke")
    quantizer.quantizer_seed = seed
    return DuoTokConfig(separator=separator, quantizer=quantizer, chunk_seconds=chunk_seconds, chunk_batch=2)


@pytest.fixture(scope="session")
def tiny_duotok() -> DuoTok:
    torch.manual_seed(0)
    return DuoTok(tiny_config()).eval()
