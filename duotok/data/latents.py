"""Training data of the stage-4 diffusion decoder: (token embeddings, autoencoder latents) per track.

Both sides are *computed once* per song before training, with the frozen models:

* the condition — the stage-3 tokens of the ground-truth vocal / accompaniment stem, made exactly as
  :meth:`DuoTok.encode_stems` makes them (same chunks), turned into quantized embeddings by
  :meth:`DuoTok.embed`: what ``DuoTok.decode`` feeds the decoder at inference;
* the target — the autoencoder's latent (its posterior mean) of the same stem, 2 frames per token.

Caching them makes a decoder training step cost only the DiT itself, instead of the tokenizer's
encoder and the autoencoder's encoder on every crop (several times the DiT's cost on a CPU). The
features of the default corpus take ~60 MB per split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from duotok.data.stems import ACCOMPANIMENT, SOURCES, EpochCropDataset, crop_offset, discover_songs, load_song
from duotok.errors import DatasetError

#: Track ids, as the tokenizer's router numbers them.
VOCAL, ACCOMPANIMENT_TRACK = 0, 1


class _Tokenizer(Protocol):
    samples_per_token: int
    sample_rate: int

    def encode_stems(self, vocals: Any, accompaniment: Any) -> tuple[torch.Tensor, torch.Tensor]: ...
    def embed(self, ids: torch.Tensor, track: str | int) -> torch.Tensor: ...


class _Autoencoder(Protocol):
    samples_per_latent: int

    def encode(self, audio: torch.Tensor) -> torch.Tensor: ...


@dataclass
class TrackFeatures:
    """One track of one song: ``cond`` ``(T_tok, cond_dim)`` and ``latents`` ``(k·T_tok, latent_dim)``."""

    song_id: str
    track: int
    cond: torch.Tensor
    latents: torch.Tensor

    @property
    def n_tokens(self) -> int:
        return int(self.cond.shape[0])


def stem_tracks(stems: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(4, T)`` stems in SOURCES order → (vocals, accompaniment = drums + bass + other)."""
    vocals = stems[SOURCES.index("vocals")]
    accompaniment = stems[[SOURCES.index(s) for s in ACCOMPANIMENT]].sum(axis=0, dtype=np.float32)
    return vocals, accompaniment


@torch.no_grad()
def track_features(tokenizer: _Tokenizer, autoencoder: _Autoencoder, song_id: str, vocals: np.ndarray,
                   accompaniment: np.ndarray) -> list[TrackFeatures]:
    """Both tracks of one song (see the module docstring)."""
    ids = tokenizer.encode_stems(torch.from_numpy(vocals), torch.from_numpy(accompaniment))
    per_token = tokenizer.samples_per_token
    if per_token % autoencoder.samples_per_latent:
        raise ValueError(f"a token covers {per_token} samples, not a whole number of autoencoder latent frames "
                         f"({autoencoder.samples_per_latent} samples each)")
    out = []
    for track, (audio, track_ids) in enumerate(zip((vocals, accompaniment), ids, strict=True)):
        n_tok = int(track_ids.numel())
        padded = torch.zeros(n_tok * per_token)
        padded[: audio.shape[-1]] = torch.from_numpy(audio)[: n_tok * per_token]
        latents = autoencoder.encode(padded[None])[0].transpose(0, 1).contiguous()     # (L, latent_dim)
        cond = tokenizer.embed(track_ids, track).float().cpu()
        out.append(TrackFeatures(song_id, track, cond, latents.float().cpu()))
    return out


def extract_features(tokenizer: _Tokenizer, autoencoder: _Autoencoder, root: str | os.PathLike[str], split: str,
                     progress: bool = True) -> list[TrackFeatures]:
    """:func:`track_features` of every song of ``split`` of the corpus at ``root`` (2 entries per song)."""
    records = [r for r in discover_songs(root) if r.split == split]
    if not records:
        raise DatasetError(root, f"no songs in split {split!r}")
    features: list[TrackFeatures] = []
    for record in tqdm(records, desc=f"decoder features ({split})", disable=not progress, mininterval=5):
        song = load_song(record, tokenizer.sample_rate)
        features += track_features(tokenizer, autoencoder, record.id, *stem_tracks(song["stems"]))
    return features


def latent_stats(features: list[TrackFeatures]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of every latent frame (the diffusion model works on standardised latents)."""
    stacked = torch.cat([f.latents for f in features])
    return stacked.mean(dim=0), stacked.std(dim=0).clamp_min(1e-5)


class TokenLatentDataset(EpochCropDataset):
    """Crops of ``segment_tokens`` tokens (and the matching latent frames) of every track.

    Item ``i`` is crop ``i % crops_per_track`` of ``features[i // crops_per_track]``::

        {"cond": (S, cond_dim), "latents": (k·S, latent_dim), "track": int, "length": valid tokens}

    Tracks shorter than the segment are zero-padded at the end (``length`` says how much is real).
    Crop offsets follow :func:`duotok.data.stems.crop_offset`: random per (seed, epoch, index), or
    evenly spaced when ``random=False``."""

    def __init__(self, features: list[TrackFeatures], segment_tokens: int, crops_per_track: int = 1,
                 seed: int = 0, random: bool = True):
        if not features:
            raise ValueError("no track features to crop")
        if segment_tokens < 1 or crops_per_track < 1:
            raise ValueError("segment_tokens and crops_per_track must be at least 1")
        ratios = {f.latents.shape[0] // max(1, f.n_tokens) for f in features}
        if len(ratios) != 1 or any(f.latents.shape[0] != f.n_tokens * next(iter(ratios)) for f in features):
            raise ValueError("every track needs the same whole number of latent frames per token")
        self.features = features
        self.segment = int(segment_tokens)
        self.crops_per_track = int(crops_per_track)
        self.frames_per_token = next(iter(ratios))
        self.seed = int(seed)
        self.random = bool(random)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.features) * self.crops_per_track

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        which, crop = divmod(index, self.crops_per_track)
        f = self.features[which]
        start = crop_offset(f.n_tokens, self.segment, random=self.random, seed=self.seed, epoch=self.epoch,
                            index=index, crop_index=crop, n_crops=self.crops_per_track)
        n = min(self.segment, f.n_tokens - start)
        k = self.frames_per_token
        cond = torch.zeros(self.segment, f.cond.shape[1])
        latents = torch.zeros(self.segment * k, f.latents.shape[1])
        cond[:n] = f.cond[start : start + n]
        latents[: n * k] = f.latents[start * k : (start + n) * k]
        return {"cond": cond, "latents": latents, "track": f.track, "length": n}
