"""The one interface every separator implements (issue 19).

A separator maps a mono mixture ``(T,)`` float32 at :attr:`Separator.sample_rate` to the four stems of
:data:`STEMS`, each ``(T,)`` float32 — the same length as the input, so chunking, evaluation and the
CLI never guess. Systems differ in how (masks, token generation); nothing downstream needs to know."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch is imported where a tensor is touched: `duotok --help` reads STEMS from here
    import torch

#: The stems of MUSDB18 and of the generated corpus, in the order every table and generative model uses.
STEMS: tuple[str, ...] = ("vocals", "drums", "bass", "other")
#: Chunk length when neither the caller nor the separator (a ``chunk_seconds`` attribute: its training
#: crop) names one, and the longest default overlap (``duotok separate``'s defaults; see chunking).
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_OVERLAP_SECONDS = 1.0


@runtime_checkable
class Separator(Protocol):
    """``separate(mixture)``: ``(T,)`` float32 → ``{stem: (T,) float32}`` for every stem of :data:`STEMS`."""

    name: str

    @property
    def sample_rate(self) -> int: ...

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]: ...


def check_stems(stems: Mapping[str, torch.Tensor], n_samples: int, who: str = "separator") -> dict[str, torch.Tensor]:
    """The stems of a separator's output, checked: exactly :data:`STEMS`, each 1-D of ``n_samples``
    finite float samples; returned in :data:`STEMS` order as float32. A separator that breaks the
    contract fails here with its name, not later inside a metric."""
    import torch

    missing = [s for s in STEMS if s not in stems]
    extra = [s for s in stems if s not in STEMS]
    if missing or extra:
        raise ValueError(f"{who}: expected the stems {STEMS}, got {tuple(stems)}"
                         + (f" (missing {missing})" if missing else "") + (f" (unknown {extra})" if extra else ""))
    out = {}
    for name in STEMS:
        x = torch.as_tensor(stems[name])
        if x.dim() != 1 or x.numel() != n_samples:
            raise ValueError(f"{who}: stem {name!r} has shape {tuple(x.shape)}, expected ({n_samples},)")
        if not torch.isfinite(x).all():
            raise ValueError(f"{who}: stem {name!r} contains NaN or inf")
        out[name] = x.float()
    return out
