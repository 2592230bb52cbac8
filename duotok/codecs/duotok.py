"""Duo-Tok behind the common codec interface (:mod:`duotok.codecs.base`): two streams, one codebook each."""

from __future__ import annotations

import torch

from duotok.codecs.base import STEM_STREAMS
from duotok.tokenizer.model import DuoTok


class DuoTokCodec:
    """Wraps a :class:`DuoTok` (ideally the complete ``models/codec``) without copying it."""

    name = "Duo-Tok"

    def __init__(self, model: DuoTok):
        self.model = model.eval()

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.model.frame_rate

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return tuple(self.model.codebook_sizes)

    @property
    def streams(self) -> dict[str, tuple[int, ...]]:
        return {name: (i,) for i, name in enumerate(STEM_STREAMS)}

    def fingerprint(self) -> str:
        return "+".join(self.model.fingerprints()[name] for name in STEM_STREAMS)

    def separate(self, mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stage-2 separator; also lent to the MuCodec-style baseline (same stems for both)."""
        return self.model.separate(mixture)

    def encode(self, mixture: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.model.encode(mixture))

    def encode_stems(self, vocal: torch.Tensor, accompaniment: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.model.encode_stems(vocal, accompaniment))

    def embed_stream(self, ids: torch.Tensor, stream: str) -> torch.Tensor:
        return self.model.embed(torch.as_tensor(ids).reshape(-1), stream).float().cpu()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids)
        return torch.cat([self.embed_stream(ids[i], s) for i, s in enumerate(STEM_STREAMS)], dim=-1)

    def decode(self, ids: torch.Tensor, num_samples: int | None = None, **kwargs) -> dict[str, torch.Tensor]:
        ids = torch.as_tensor(ids)
        vocal, accompaniment, mixture = self.model.decode(ids[0], ids[1], num_samples=num_samples, **kwargs)
        return {"vocal": vocal, "accompaniment": accompaniment, "mixture": mixture}


def as_codec(model: object) -> object:
    """A :class:`DuoTok` as a :class:`DuoTokCodec` (the codec interface); anything else unchanged."""
    return DuoTokCodec(model) if isinstance(model, DuoTok) else model
