"""Quantizers (audiocraft's ``quantization/``): BEST-RQ's frozen random-projection target quantizer,
SimVQ, and Duo-Tok's dual-codebook quantizer with hard routing."""

from duotok.quantization.base import QuantizedResult
from duotok.quantization.bestrq import (
    RandomProjectionQuantizer,
    bestrq_loss,
    replace_masked,
    span_mask,
    stack_frames,
)
from duotok.quantization.dual import DualCodebookQuantizer
from duotok.quantization.simvq import CodeUsage, SimVQ

__all__ = [
    "CodeUsage",
    "DualCodebookQuantizer",
    "QuantizedResult",
    "RandomProjectionQuantizer",
    "SimVQ",
    "bestrq_loss",
    "replace_masked",
    "span_mask",
    "stack_frames",
]
