"""Reconstruction of any codec of the comparison, scored exactly as Duo-Tok's (:mod:`duotok.eval.roundtrip`).

A codec is run on held-out :class:`~duotok.eval.roundtrip.Excerpt` s and scored on the tracks it
returns: vocal, accompaniment and mixture for dual-track codecs, the mixture only for mixture codecs
and Opus. ``source`` is what a dual-track codec tokenizes: the true stems (``"oracle"``) or the
mixture through Duo-Tok's separator (``"separated"``); mixture codecs ignore it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from duotok.codecs.base import Codec, Reconstructor
from duotok.eval.reconstruction import METRICS, reconstruction_metrics
from duotok.eval.roundtrip import TRACK_NAMES, Excerpt, System


def codec_system(codec: Codec | Reconstructor, source: str = "oracle") -> System:
    if source not in ("oracle", "separated"):
        raise ValueError(f"source must be 'oracle' or 'separated', got {source!r}")

    @torch.no_grad()
    def run(ex: Excerpt) -> dict[str, np.ndarray]:
        if isinstance(codec, Reconstructor) and not hasattr(codec, "encode"):
            out = codec.reconstruct(torch.from_numpy(ex.mixture))
        else:
            if source == "oracle" and "mixture" not in codec.streams:
                ids = codec.encode_stems(torch.from_numpy(ex.vocal), torch.from_numpy(ex.accompaniment))
            else:
                ids = codec.encode(torch.from_numpy(ex.mixture))
            out = codec.decode(ids, num_samples=ex.mixture.shape[-1])
        return {name: torch.as_tensor(x).float().numpy() for name, x in out.items()}

    return run


def score_codec(name: str, system: System, excerpts: Sequence[Excerpt], sample_rate: int,
                metrics: Sequence[str] = METRICS, source: str = "oracle", progress: bool = True) -> pd.DataFrame:
    """One row per (excerpt, returned track): ``system, source, song, track`` and each metric."""
    rows = []
    for ex in tqdm(excerpts, desc=name, disable=not (progress and sys.stderr.isatty())):
        recon = system(ex)
        for track in TRACK_NAMES:
            if track in recon:
                scores = reconstruction_metrics(ex.track(track), recon[track], sample_rate, metrics)
                rows.append({"system": name, "source": source, "song": ex.song_id, "track": track, **scores})
    return pd.DataFrame(rows)


def track_means(scores: pd.DataFrame, metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float | None]]:
    """``{track: {metric: mean over songs}}`` (NaN scores — silent references — excluded)."""
    out: dict[str, dict[str, float | None]] = {}
    for track, group in scores.groupby("track", sort=False):
        out[str(track)] = {m: (None if group[m].isna().all() else float(group[m].mean())) for m in metrics
                           if m in group}
    return out
