"""Reconstruction of any codec of the comparison, scored exactly as Duo-Tok's (:mod:`duotok.eval.roundtrip`).

A codec is run on held-out :class:`~duotok.eval.roundtrip.Excerpt` s and scored on the tracks it
returns: vocal, accompaniment and mixture for dual-track codecs, the mixture only for mixture codecs
and Opus. ``source`` is what a dual-track codec tokenizes: the true stems (``"oracle"``) or the
mixture through Duo-Tok's separator (``"separated"``); mixture codecs ignore it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pandas as pd
from tqdm.auto import tqdm

from duotok.eval.reconstruction import METRICS, reconstruction_metrics
from duotok.eval.roundtrip import TRACK_NAMES, Excerpt, System, codec_system

__all__ = ["codec_system", "score_codec", "track_means"]


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
