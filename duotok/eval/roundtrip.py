"""Round-trip evaluation: held-out excerpts → a system's reconstruction → the toolkit's metrics.

Systems compared on the *same* excerpts (one centre crop per held-out song):

* ``autoencoder`` — the audio autoencoder alone (encode → decode each track): the ceiling of any
  token decoder that renders through it;
* ``tokens (oracle stems)`` — ``DuoTok.encode_stems`` of the true vocal / accompaniment, then
  ``DuoTok.decode``: the codec as the paper evaluates it per track;
* ``tokens (separated)`` — ``DuoTok.encode`` of the mixture (stage-2 mask-head separation), then
  ``decode``: the tokenizer's real inference path; the gap to the oracle row is the cost of separation.

Every system yields the three tracks ``vocal``, ``accompaniment`` and ``mixture`` (for the token
decoders, mixture = decoded vocal + decoded accompaniment), each scored against the true track.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from duotok.codecs.base import Codec, Reconstructor
from duotok.codecs.duotok import as_codec
from duotok.data.latents import stem_tracks
from duotok.data.stems import SongRecord, crop_offset, crop_pad, discover_songs, load_song
from duotok.errors import DatasetError
from duotok.eval.reconstruction import METRICS, reconstruction_metrics
from duotok.tokenizer.model import DuoTok

TRACK_NAMES = ("vocal", "accompaniment", "mixture")


@dataclass
class Excerpt:
    """The same time span of a song's three tracks (float32, mono)."""

    song_id: str
    offset_seconds: float
    vocal: np.ndarray
    accompaniment: np.ndarray
    mixture: np.ndarray

    def track(self, name: str) -> np.ndarray:
        return getattr(self, name)


def held_out_songs(root: str | os.PathLike[str], split: str, n_songs: int) -> list[SongRecord]:
    """The first ``n_songs`` songs of ``split`` in corpus order: the songs every held-out table scores."""
    records = [r for r in discover_songs(root) if r.split == split][: int(n_songs)]
    if not records:
        raise DatasetError(root, f"no songs in split {split!r}")
    return records


def centre_span(n_samples: int, seconds: float, sample_rate: int) -> tuple[int, int]:
    """``(offset, length)`` in samples of a song's centre ``seconds``; a shorter song is used whole (not
    padded: silence would inflate every metric). One rule, so codec, separation and domain-gap tables
    cover the same audio."""
    segment = int(round(seconds * sample_rate))
    return crop_offset(n_samples, segment, random=False, seed=0, epoch=0, index=0), min(segment, n_samples)


def held_out_excerpts(root: str | os.PathLike[str], split: str, seconds: float, n_songs: int,
                      sample_rate: int) -> list[Excerpt]:
    """The centre ``seconds`` (:func:`centre_span`) of the :func:`held_out_songs` of ``split``."""
    out = []
    for record in held_out_songs(root, split, n_songs):
        song = load_song(record, sample_rate)
        offset, length = centre_span(song["mixture"].shape[-1], seconds, sample_rate)
        vocal, accompaniment = stem_tracks(song["stems"])
        tracks = [crop_pad(x, offset, length)[0] for x in (vocal, accompaniment, song["mixture"])]
        out.append(Excerpt(record.id, offset / sample_rate, *tracks))
    return out


System = Callable[[Excerpt], dict[str, np.ndarray]]


def autoencoder_system(autoencoder: torch.nn.Module) -> System:
    """Each track through the autoencoder on its own."""

    @torch.no_grad()
    def run(ex: Excerpt) -> dict[str, np.ndarray]:
        audio = torch.from_numpy(np.stack([ex.track(t) for t in TRACK_NAMES]))
        recon = autoencoder.reconstruct(audio).cpu().numpy()
        return dict(zip(TRACK_NAMES, recon, strict=True))

    return run


def codec_system(codec: Codec | Reconstructor | DuoTok, source: str = "oracle", **decode_kwargs) -> System:
    """The one round trip of every codec of the comparison (:mod:`duotok.codecs.base`): tokens of the true
    stems (``source="oracle"``; mixture codecs tokenize the mixture whatever ``source`` says) or of the
    mixture (``"separated"``: a dual-track codec separates first), decoded; a :class:`Reconstructor`
    (Opus) just reconstructs. A :class:`duotok.DuoTok` is taken through its codec view
    (:class:`~duotok.codecs.duotok.DuoTokCodec`); ``decode_kwargs`` (``steps``, ``cfg_scale``, ``seed``)
    reach its decoder. Returns the tracks the codec gives: all three for dual-track codecs, the mixture
    for the others."""
    if source not in ("oracle", "separated"):
        raise ValueError(f"source must be 'oracle' or 'separated', got {source!r}")
    codec = as_codec(codec)

    @torch.inference_mode()
    def run(ex: Excerpt) -> dict[str, np.ndarray]:
        if isinstance(codec, Reconstructor) and not hasattr(codec, "encode"):
            out = codec.reconstruct(torch.from_numpy(ex.mixture))
        else:
            if source == "oracle" and "mixture" not in codec.streams:
                ids = codec.encode_stems(torch.from_numpy(ex.vocal), torch.from_numpy(ex.accompaniment))
            else:
                ids = codec.encode(torch.from_numpy(ex.mixture))
            out = codec.decode(ids, num_samples=ex.mixture.shape[-1], **decode_kwargs)
        return {name: torch.as_tensor(x).float().numpy() for name, x in out.items()}

    return run


def score_system(name: str, system: System, excerpts: Sequence[Excerpt], sample_rate: int,
                 metrics: Sequence[str] = METRICS, progress: bool = False) -> pd.DataFrame:
    """One row per (excerpt, track): ``system, song, track`` and each metric."""
    rows = []
    for ex in tqdm(excerpts, desc=name, disable=not progress):
        recon = system(ex)
        for track in (t for t in TRACK_NAMES if t in recon):
            scores = reconstruction_metrics(ex.track(track), recon[track], sample_rate, metrics)
            rows.append({"system": name, "song": ex.song_id, "track": track, **scores})
    return pd.DataFrame(rows)


def summary_table(scores: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Mean of each metric per (system, track) over excerpts, NaN (undefined, e.g. a silent vocal)
    excluded; ``n`` = excerpts scored."""
    cols = [m for m in metrics if m in scores]
    table = scores.groupby(["system", "track"], sort=False)[cols].mean()
    table["n"] = scores.groupby(["system", "track"], sort=False).size()
    return table


def _json_means(row: pd.Series) -> dict[str, float | None]:
    """A row of means for JSON: rounded floats, NaN (nothing defined to average) as null."""
    return {k: (None if pd.isna(v) else round(float(v), 4)) for k, v in row.items()}


def summary_dict(scores: pd.DataFrame, metrics: Sequence[str] = METRICS) -> dict[str, dict[str, dict[str, float]]]:
    """``{system: {track: {metric: mean, "n": count}}}`` for the metrics JSON."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (system, track), row in summary_table(scores, metrics).iterrows():
        out.setdefault(system, {})[track] = _json_means(row)
    return out


def sweep_means(scores: pd.DataFrame, parameter: str,
                metrics: Sequence[str] = METRICS) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{str(value): {track: {metric: mean}}}`` of a sweep over ``parameter`` (steps, cfg_scale), for JSON."""
    cols = [m for m in metrics if m in scores]
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for (value, track), row in scores.groupby([parameter, "track"], sort=True)[cols].mean().iterrows():
        out.setdefault(str(value), {})[track] = _json_means(row)
    return out
