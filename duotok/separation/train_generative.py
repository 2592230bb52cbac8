"""Training the generative separator (:mod:`.generative`) on crops of a stem corpus.

Why a token cache (``<out_dir>/stem_tokens.pt``): every training step needs the codec tokens of four
stems, and the codec encoder costs about as much per crop as a training step of the LM. Each song's
stems (and, for the ``mixture_tokens`` encoder, its mixture) are therefore encoded ONCE, whole, with
all the codec's codebooks (so a different K reuses the cache), and stored as int16; crops index the
cache. The cache is valid for one codec (its fingerprint), sample rate and hop; anything else is
re-encoded. Encoding whole songs rather than crops also means a crop's tokens near its edges see the
real neighbouring audio, as they will when a whole song is separated.

Alignment: crops start at a token frame ``f0`` (a multiple of the codec's 320-sample hop), so the
mixture crop ``[f0·hop, (f0 + T)·hop)`` and the token crop ``[f0, f0 + T)`` cover the same 50 Hz grid
the encoder's mel frames use. A song shorter than the crop is used whole; its padded frames are
masked (``lengths``).

Mixture audio, when the encoder reads audio, is held in memory as int16 (the corpus's own PCM
precision; ~230 MB for the 2-hour default training split) — decoding a whole FLAC for every random
crop would cost more than the training step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from duotok.codecs.rvq import RVQCodecModel
from duotok.data.stems import EpochCropDataset, SongRecord, crop_offset, discover_songs, load_song
from duotok.io.files import atomic_path
from duotok.separation.generative import GenerativeSeparator, GenerativeSeparatorConfig, generative_loss
from duotok.train.loop import TrainConfig, Trainer, TrainResult

__all__ = [
    "CACHE_NAME",
    "GenerativeCropDataset",
    "check_codec_fits",
    "load_token_cache",
    "train_generative",
]

CACHE_NAME = "stem_tokens.pt"
CACHE_FORMAT = 1


def check_codec_fits(config: GenerativeSeparatorConfig, codec: RVQCodecModel) -> None:
    """``ValueError`` unless the codec's codebooks, rate and hop are the ones the model predicts."""
    r = codec.config.rvq
    if r.codebook_size != config.codebook_size or r.n_codebooks < config.n_codebooks:
        raise ValueError(f"the codec has {r.n_codebooks} x {r.codebook_size} codebooks; the model wants the first "
                         f"{config.n_codebooks} of size {config.codebook_size}")
    if codec.sample_rate != config.sample_rate or codec.samples_per_token != config.hop_length:
        raise ValueError(f"the codec runs at {codec.sample_rate} Hz, {codec.samples_per_token} samples per token; "
                         f"the model at {config.sample_rate} Hz, hop {config.hop_length}")


# --------------------------------------------------------------------------- the token cache


def _cache_header(codec: RVQCodecModel) -> dict[str, Any]:
    return {"format": CACHE_FORMAT, "codec": codec.fingerprint(), "sample_rate": codec.sample_rate,
            "hop": codec.samples_per_token, "n_codebooks": codec.config.rvq.n_codebooks}


def _read_cache(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    """The cached songs when ``path`` holds a cache of this codec; ``{}`` otherwise (stale or absent)."""
    if not path.is_file():
        return {}
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file is rebuilt, not fatal
        return {}
    if not isinstance(payload, dict) or {k: payload.get(k) for k in header} != header:
        return {}
    songs = payload.get("songs")
    return dict(songs) if isinstance(songs, dict) else {}


def _encode_song(codec: RVQCodecModel, song: dict[str, Any], with_mixture: bool) -> dict[str, torch.Tensor]:
    stems = torch.stack([codec.encode(torch.from_numpy(s)) for s in song["stems"]]).to(torch.int16)
    entry = {"stems": stems, "n_samples": torch.tensor(song["stems"].shape[-1])}
    if with_mixture:
        entry["mixture"] = codec.encode(torch.from_numpy(song["mixture"])).to(torch.int16)
    return entry


def load_token_cache(
    codec: RVQCodecModel,
    records: Sequence[SongRecord],
    path: str | os.PathLike[str],
    with_mixture: bool = False,
    log: bool = True,
) -> dict[str, dict[str, torch.Tensor]]:
    """``{song id: {"stems": (4, n_codebooks, T) int16, "n_samples": int tensor[, "mixture":
    (n_codebooks, T) int16]}}`` for ``records``: read from ``path`` when it holds a cache of this codec,
    encoding only what is missing (new songs; mixture tokens when ``with_mixture`` and absent) and
    rewriting the file (atomically) only then."""
    path = Path(path)
    header = _cache_header(codec)
    songs = _read_cache(path, header)
    missing = [r for r in records if r.id not in songs or (with_mixture and "mixture" not in songs[r.id])]
    for i, record in enumerate(missing):
        if log and (i % 20 == 0):
            print(f"[stem tokens] encoding {record.id} ({i + 1}/{len(missing)})", flush=True)
        songs[record.id] = _encode_song(codec, load_song(record, codec.sample_rate), with_mixture)
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({**header, "songs": songs}, tmp)
    return {r.id: songs[r.id] for r in records}


# --------------------------------------------------------------------------- crops


class GenerativeCropDataset(EpochCropDataset):
    """Crops of ``n_frames`` token frames: ``{"features": mixture audio (n_frames·hop,) float32 or
    mixture ids (K, n_frames) long, "codes": (4, K, n_frames) long, "lengths": real frames}``.

    Random crops (``random=True``) draw their start frame from ``(seed, epoch, index)``
    (:func:`~duotok.data.stems.crop_offset`), so a resumed run sees the same crops; ``random=False``
    gives evenly spaced crops for validation. ``audio`` (per song, int16 mixture samples) is needed
    when the features are audio, ``tokens[i]["mixture"]`` when they are the mixture's ids."""

    def __init__(
        self,
        tokens: Sequence[dict[str, torch.Tensor]],
        n_frames: int,
        n_codebooks: int,
        hop: int,
        audio: Sequence[np.ndarray] | None = None,
        seed: int = 0,
        random: bool = True,
        crops_per_song: int = 1,
    ) -> None:
        if n_frames < 1 or n_codebooks < 1 or hop < 1 or crops_per_song < 1 or seed < 0:
            raise ValueError(f"need positive n_frames, n_codebooks, hop, crops_per_song and seed >= 0; got "
                             f"{n_frames}, {n_codebooks}, {hop}, {crops_per_song}, {seed}")
        if not tokens:
            raise ValueError("no songs to crop")
        if audio is not None and len(audio) != len(tokens):
            raise ValueError(f"{len(audio)} mixtures for {len(tokens)} songs")
        if audio is None and any("mixture" not in t for t in tokens):
            raise ValueError("without mixture audio every song needs its mixture tokens")
        self.tokens, self.audio = list(tokens), audio
        self.n_frames, self.k, self.hop = int(n_frames), int(n_codebooks), int(hop)
        self.seed, self.random, self.crops_per_song = int(seed), bool(random), int(crops_per_song)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.tokens) * self.crops_per_song

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        song = index // self.crops_per_song
        stems = self.tokens[song]["stems"]
        total = stems.shape[-1]
        f0 = crop_offset(total, self.n_frames, random=self.random, seed=self.seed, epoch=self.epoch, index=index,
                         crop_index=index % self.crops_per_song, n_crops=self.crops_per_song)
        length = min(self.n_frames, total - f0)
        codes = torch.zeros((stems.shape[0], self.k, self.n_frames), dtype=torch.long)
        codes[..., :length] = stems[:, : self.k, f0 : f0 + length].long()
        return {"features": self._features(song, f0, length), "codes": codes,
                "lengths": torch.tensor(length, dtype=torch.long)}

    def _features(self, song: int, f0: int, length: int) -> torch.Tensor:
        if self.audio is None:
            ids = torch.zeros((self.k, self.n_frames), dtype=torch.long)
            ids[:, :length] = self.tokens[song]["mixture"][: self.k, f0 : f0 + length].long()
            return ids
        pcm = self.audio[song][f0 * self.hop : (f0 + self.n_frames) * self.hop]
        out = torch.zeros(self.n_frames * self.hop, dtype=torch.float32)
        out[: pcm.shape[0]] = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
        return out


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def _dataset(records: Sequence[SongRecord], tokens: dict[str, dict[str, torch.Tensor]],
             config: GenerativeSeparatorConfig, n_frames: int, seed: int, random: bool,
             crops_per_song: int) -> GenerativeCropDataset:
    audio = None
    if config.encoder != "mixture_tokens":
        audio = [_to_int16(load_song(r, config.sample_rate)["mixture"]) for r in records]
    return GenerativeCropDataset([tokens[r.id] for r in records], n_frames, config.n_codebooks,
                                 config.hop_length, audio, seed=seed, random=random, crops_per_song=crops_per_song)


# --------------------------------------------------------------------------- training


def _crop_frames(segment_seconds: float, config: GenerativeSeparatorConfig) -> int:
    n_frames = int(round(segment_seconds * config.frame_rate))
    if not 1 <= n_frames <= config.max_frames:
        raise ValueError(f"segment_seconds={segment_seconds} gives {n_frames} frames; need 1 .. max_frames="
                         f"{config.max_frames}")
    return n_frames


def train_generative(
    config: GenerativeSeparatorConfig,
    train_cfg: TrainConfig,
    codec_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    segment_seconds: float = 5.0,
    crops_per_song: int = 8,
    resume: bool = True,
    valid_crops_per_song: int = 2,
) -> tuple[GenerativeSeparator, TrainResult]:
    """Train a :class:`GenerativeSeparator` on the ``train`` songs of the corpus at ``root``
    (validation on ``valid`` when there are any) with the shared
    :class:`~duotok.train.loop.Trainer` (bf16 where native, resumable, csv logs in ``out_dir``).

    Stem tokens come from the RVQ codec at ``codec_dir`` through the cache ``out_dir/stem_tokens.pt``
    (module docstring). Each epoch takes ``crops_per_song`` random ``segment_seconds`` crops per song.
    Returns the model (eval mode, CPU) and the trainer's result."""
    out_dir = Path(out_dir)
    codec = RVQCodecModel.from_pretrained(codec_dir)
    check_codec_fits(config, codec)
    n_frames = _crop_frames(segment_seconds, config)
    records = discover_songs(root)
    train_records = [r for r in records if r.split == "train"]
    valid_records = [r for r in records if r.split == "valid"]
    if not train_records:
        raise ValueError(f"{root}: no songs in the train split")
    tokens = load_token_cache(codec, train_records + valid_records, out_dir / CACHE_NAME,
                              with_mixture=config.encoder == "mixture_tokens")
    del codec
    train_data = _dataset(train_records, tokens, config, n_frames, train_cfg.seed, True, crops_per_song)
    valid_data = (_dataset(valid_records, tokens, config, n_frames, train_cfg.seed, False, valid_crops_per_song)
                  if valid_records else None)
    torch.manual_seed(train_cfg.seed)
    model = GenerativeSeparator.build(config)
    trainer = Trainer(model, generative_loss, train_data, train_cfg, out_dir, valid_data=valid_data)
    result = trainer.fit(resume=resume)
    return model.cpu().eval(), result

