"""Every corpus song tokenized by one codec, saved once and read by the LM and probe evaluations.

The file is a ``torch.save`` dict with a format name, a version and the codec's codebook
fingerprint, so tokens are never silently read against a different codebook (:func:`load_corpus_tokens`
with ``codec=`` checks it). ``source`` says what a dual-track codec tokenized: ``"oracle"`` stems
(default: the comparison is between tokenizers, not separators; the paper's HTDemucs is far closer
to oracle than this repository's stage-2 mask head) or the ``"separated"`` mixture. Mixture codecs
always tokenize the mixture.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from duotok.codecs.base import Codec
from duotok.data.latents import stem_tracks
from duotok.data.stems import discover_songs, load_song
from duotok.errors import DatasetError
from duotok.io.files import atomic_write

FORMAT = "duotok-corpus-tokens"
VERSION = 1
SOURCES = ("oracle", "separated")


def encode_song(codec: Codec, song: dict[str, Any], source: str) -> torch.Tensor:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if "mixture" in codec.streams or source == "separated":
        return codec.encode(torch.from_numpy(song["mixture"]))
    vocal, accompaniment = stem_tracks(song["stems"])
    return codec.encode_stems(torch.from_numpy(vocal), torch.from_numpy(accompaniment))


def encode_corpus(codec: Codec, root: str | os.PathLike[str], splits: tuple[str, ...] = ("train", "valid", "test"),
                  source: str = "oracle", progress: bool = True) -> dict[str, Any]:
    records = [r for r in discover_songs(root) if r.split in splits]
    if not records:
        raise DatasetError(root, f"no songs in splits {splits}")
    songs = []
    for record in tqdm(records, desc=f"tokenizing with {codec.name}", mininterval=5,
                       disable=not (progress and sys.stderr.isatty())):
        ids = encode_song(codec, load_song(record, codec.sample_rate), source).long().cpu()
        songs.append({"id": record.id, "split": record.split, "tags": list(record.meta.get("tags", [])), "ids": ids})
    return {"format": FORMAT, "version": VERSION, "codec": codec.name, "fingerprint": codec.fingerprint(),
            "frame_rate": float(codec.frame_rate), "codebook_sizes": list(codec.codebook_sizes),
            "streams": {k: list(v) for k, v in codec.streams.items()}, "source": source, "songs": songs}


def save_corpus_tokens(tokens: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Atomic: a temporary file in the same folder, then renamed."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save(tokens, f)
    return path


def load_corpus_tokens(path: str | os.PathLike[str], codec: Codec | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no corpus tokens here (run the tokens stage: dvc repro tokens)")
    tokens = torch.load(path, weights_only=False)
    if not isinstance(tokens, dict) or tokens.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    if tokens.get("version") != VERSION:
        raise ValueError(f"{path}: format version {tokens.get('version')}, this duotok reads {VERSION}")
    if codec is not None and tokens["fingerprint"] != codec.fingerprint():
        raise ValueError(f"{path}: tokens were made by codebooks {tokens['fingerprint']}, but {codec.name}'s are "
                         f"{codec.fingerprint()}: re-tokenize the corpus")
    return tokens


def split_ids(tokens: dict[str, Any], split: str) -> list[torch.Tensor]:
    return [s["ids"] for s in tokens["songs"] if s["split"] == split]
