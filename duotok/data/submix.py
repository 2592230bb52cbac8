"""Stems as well as mixtures through the encoder in stages 1-2: some training crops are replaced by a
*submix* — the vocal stem alone, or the accompaniment alone — with every target made consistent.

Why (issue 17): stage 3 feeds isolated stems to the lower encoder that stages 1-2 froze after
seeing only mixtures, so its tokens quantize out-of-distribution features; and the lyrics head of
stage 2 only ever heard vocals under an accompaniment. The corpus gives the stems for free, and a
submix is a valid training example for every stage-2 head: the mixture is the sum of the kept
stems, the dropped stems are silent (so the mask head learns to give them nothing), the chroma
comes from the kept stems' notes, and an accompaniment-only crop has no lyrics (an empty CTC
target: all blank).

The choice is a pure function of ``(seed, song id, crop offset)``, so a resumed run and every
DataLoader worker draw the same submixes as an uninterrupted run.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from duotok.data.stems import ACCOMPANIMENT, SOURCES

#: The submixes a crop can become, with the stems each keeps.
SUBMIXES: dict[str, tuple[str, ...]] = {"vocals": ("vocals",), "accompaniment": ACCOMPANIMENT}


def choose_submix(song_id: str, offset: float, prob: float, seed: int) -> str | None:
    """The submix a crop becomes (``"vocals"`` or ``"accompaniment"``, equally likely) with
    probability ``prob``, else ``None`` (it stays a mixture)."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"submix probability must lie in [0, 1], got {prob}")
    if prob == 0.0:
        return None
    h = zlib.crc32(f"{seed}|{song_id}|{offset:.6f}".encode())
    if (h & 0xFFFF) / 0x10000 >= prob:
        return None
    return "vocals" if (h >> 16) & 1 else "accompaniment"


def submix_meta(meta: Mapping[str, Any], keep: Sequence[str]) -> dict[str, Any]:
    """``meta`` with the notes of the dropped stems removed and, without vocals, no syllables sung."""
    out = dict(meta)
    if isinstance(meta.get("notes"), dict):
        out["notes"] = {stem: notes for stem, notes in meta["notes"].items() if stem in keep}
    lyrics = meta.get("lyrics")
    if "vocals" not in keep and isinstance(lyrics, dict) and "syllables" in lyrics:
        out["lyrics"] = {**lyrics, "syllables": []}
    return out


def apply_submix(item: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One crop of :class:`~duotok.data.stems.StemCropDataset` turned into submix ``name``."""
    if name not in SUBMIXES:
        raise ValueError(f"unknown submix {name!r}; known: {sorted(SUBMIXES)}")
    keep = SUBMIXES[name]
    gate = torch.tensor([1.0 if s in keep else 0.0 for s in SOURCES], dtype=item["stems"].dtype)
    stems = item["stems"] * gate[:, None]
    accompaniment = stems[[SOURCES.index(s) for s in ACCOMPANIMENT]].sum(dim=0)
    return {**item, "mixture": stems.sum(dim=0), "stems": stems, "accompaniment": accompaniment,
            "meta": submix_meta(item["meta"], keep), "submix": name}


class Submixer:
    """Applies :func:`choose_submix` / :func:`apply_submix` to a list of crops (before collation)."""

    def __init__(self, prob: float, seed: int = 0):
        choose_submix("", 0.0, prob, seed)  # validates prob
        self.prob = float(prob)
        self.seed = int(seed)

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            name = choose_submix(str(item["song_id"]), float(item["offset"]), self.prob, self.seed)
            out.append(apply_submix(item, name) if name else {**item, "submix": "mixture"})
        return out


class SubmixCollate:
    """``collate(submixer(items))``: a DataLoader ``collate_fn`` (picklable, for worker processes)."""

    def __init__(self, collate: Any, prob: float, seed: int = 0):
        self.collate = collate
        self.submixer = Submixer(prob, seed)

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self.collate(self.submixer(items) if self.submixer.prob > 0 else list(items))
