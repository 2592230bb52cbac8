"""One interface for every codec the evaluation compares, so the LM, the probe and the reconstruction
code never special-case a codec.

A codec tokenizes audio into ``K`` parallel codebooks at ``frame_rate`` Hz: ids are a ``(K, T)``
LongTensor. The codebooks are grouped into *streams*: ``{"vocal": (0,), "accompaniment": (1,)}`` for a
dual-track tokenizer, ``{"mixture": (0, …, 7)}`` for an 8-level RVQ of the mixture. Streams are what the
conditional LM protocol conditions on and what a dual-track codec decodes separately.

    encode(mixture (T,))                 → ids (K, T_tok)        what a user of the codec does
    encode_stems(vocal (T,), acc. (T,))  → ids (K, T_tok)        oracle stems (mixture codecs sum them)
    embed(ids)                           → (T_tok, D)            the quantized embeddings the probe reads
    embed_stream(ids[stream], stream)    → (T_tok, D_s)          one stream's (what a token decoder reads)
    decode(ids, num_samples)             → {"mixture": …, and "vocal"/"accompaniment" when dual-track}

plus ``name``, ``sample_rate``, ``frame_rate``, ``codebook_sizes``, ``streams`` and ``fingerprint()``.
:class:`Codec` is a ``Protocol`` (structural): the models implement it directly, except
:class:`duotok.DuoTok`, whose richer API is wrapped by :class:`duotok.codecs.duotok.DuoTokCodec`
(``as_codec`` does it where a DuoTok arrives), so :func:`duotok.eval.roundtrip.codec_system` is the one
round trip for every codec, Duo-Tok included.
Reconstruction-only references (Opus) implement :class:`Reconstructor`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

STEM_STREAMS = ("vocal", "accompaniment")


@runtime_checkable
class Reconstructor(Protocol):
    name: str
    sample_rate: int

    def reconstruct(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class Codec(Protocol):
    name: str

    @property
    def sample_rate(self) -> int: ...

    @property
    def frame_rate(self) -> float: ...

    @property
    def codebook_sizes(self) -> tuple[int, ...]: ...

    @property
    def streams(self) -> dict[str, tuple[int, ...]]: ...

    def fingerprint(self) -> str: ...

    def encode(self, mixture: torch.Tensor) -> torch.Tensor: ...

    def encode_stems(self, vocal: torch.Tensor, accompaniment: torch.Tensor) -> torch.Tensor: ...

    def embed(self, ids: torch.Tensor) -> torch.Tensor: ...

    def embed_stream(self, ids: torch.Tensor, stream: str) -> torch.Tensor: ...

    def decode(self, ids: torch.Tensor, num_samples: int | None = None) -> dict[str, torch.Tensor]: ...


def fixed_bitrate(frame_rate: float, codebook_sizes: Sequence[int]) -> float:
    """Bits per second: ``frame_rate · Σ_k log2 V_k`` (fixed-rate codes, no entropy coding)."""
    return float(frame_rate) * sum(math.log2(v) for v in codebook_sizes)


def bitrate(codec: Codec) -> float:
    return fixed_bitrate(codec.frame_rate, codec.codebook_sizes)


def sizes_label(codebook_sizes: Sequence[int]) -> str:
    """``"2x1024"`` / ``"8x1024"`` / ``"2x1024+1x4096"`` as in Table 2 (runs of equal sizes grouped)."""
    groups: list[tuple[int, int]] = []
    for v in codebook_sizes:
        if groups and groups[-1][1] == v:
            groups[-1] = (groups[-1][0] + 1, v)
        else:
            groups.append((1, v))
    return "+".join(f"{n}x{v}" for n, v in groups)


def codebook_label(codec: Codec) -> str:
    return sizes_label(codec.codebook_sizes)


def is_dual_track(codec: Codec) -> bool:
    return tuple(codec.streams) == STEM_STREAMS


def stream_ids(codec: Codec, ids: torch.Tensor, stream: str) -> torch.Tensor:
    """The rows of ``ids`` (K, T) that belong to ``stream``."""
    if stream not in codec.streams:
        raise KeyError(f"{codec.name} has streams {list(codec.streams)}, not {stream!r}")
    return ids[list(codec.streams[stream])]


def check_ids(codec: Codec, ids: torch.Tensor) -> torch.Tensor:
    """A clear error for ids of the wrong shape or out of a codebook's range."""
    ids = torch.as_tensor(ids)
    k = len(codec.codebook_sizes)
    if ids.dim() != 2 or ids.shape[0] != k:
        raise ValueError(f"{codec.name} expects ({k}, T) ids, got shape {tuple(ids.shape)}")
    for row, v in zip(ids, codec.codebook_sizes, strict=True):
        if row.numel() and (int(row.min()) < 0 or int(row.max()) >= v):
            raise ValueError(f"{codec.name}: ids outside [0, {v}) for a codebook of size {v}")
    return ids.long()
