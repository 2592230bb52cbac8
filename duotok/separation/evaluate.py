"""Scoring a four-stem separator on held-out songs (issue 19, SPEC §2).

Per song excerpt, every system gets the same centre crop (the offset rule of
:func:`duotok.eval.roundtrip.held_out_excerpts`, so separation and codec tables cover the same audio),
and per stem:

* ``sdr`` / ``sir`` / ``sar`` — BSS-eval via museval (:func:`duotok.eval.separation.bss_eval_track`):
  framewise over 1-s windows, the median over a track's windows; the **four stems are evaluated
  together**, because BSS-eval projects each estimate on all references;
* ``mel_l1`` (lower is better), ``visqol`` (audio mode), and on request ``pesq`` / ``stoi`` — the
  toolkit's reconstruction metrics (:mod:`duotok.eval.reconstruction`), per stem against the true stem,
  because the generative separator of the second paper is judged by ViSQOL rather than SDR.

:func:`summarize` follows the SiSEC convention: per stem the mean and the median over tracks, then
averaged over stems (the headline "SDR" of a MUSDB table is the mean over stems of the per-stem
medians). The separation **real-time factor** (seconds of separator compute per second of audio;
data loading and metrics excluded) is measured here because the generative separator costs orders of
magnitude more than a mask.

Silent reference stems (a song without drums) have no BSS-eval score and no ViSQOL: NaN, skipped by
the summaries, which report ``n`` (the tracks each number rests on).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from duotok.data.stems import crop_pad, load_song
from duotok.errors import DatasetError
from duotok.eval.reconstruction import METRICS as RECONSTRUCTION_METRICS
from duotok.eval.reconstruction import reconstruction_metrics
from duotok.eval.roundtrip import centre_span, held_out_songs
from duotok.eval.separation import bss_eval_track
from duotok.separation.base import STEMS, Separator, check_stems

#: BSS-eval metrics (lower-case column names; museval calls them SDR, SIR, SAR).
BSS_METRICS: tuple[str, ...] = ("sdr", "sir", "sar")
#: Every metric :func:`score_separator` can compute.
METRICS: tuple[str, ...] = (*BSS_METRICS, *RECONSTRUCTION_METRICS)
DEFAULT_METRICS: tuple[str, ...] = ("sdr", "sir", "sar", "mel_l1", "visqol")
#: The columns of :func:`score_separator`'s table before the metrics.
INFO_COLUMNS: tuple[str, ...] = ("system", "song", "stem", "offset_seconds", "seconds", "compute_seconds", "rtf")
HIGHER_IS_BETTER: dict[str, bool] = {"sdr": True, "sir": True, "sar": True, "mel_l1": False, "pesq": True,
                                     "stoi": True, "visqol": True}


@dataclass
class StemExcerpt:
    """The same time span of a song's mixture ``(T,)`` and true stems ``(4, T)`` (:data:`STEMS` order)."""

    song_id: str
    offset_seconds: float
    mixture: np.ndarray
    stems: np.ndarray

    @property
    def n_samples(self) -> int:
        return int(self.mixture.shape[-1])


def stem_excerpts(root: str | os.PathLike[str], split: str, seconds: float, n_songs: int,
                  sample_rate: int) -> list[StemExcerpt]:
    """The centre ``seconds`` of the first ``n_songs`` songs of ``split`` (corpus order) with all four
    stems — the songs and spans :func:`duotok.eval.roundtrip.held_out_excerpts` picks (its
    :func:`~duotok.eval.roundtrip.held_out_songs` and :func:`~duotok.eval.roundtrip.centre_span`)."""
    if not seconds > 0 or n_songs < 1:
        raise ValueError(f"need seconds > 0 and n_songs >= 1, got seconds={seconds}, n_songs={n_songs}")
    records = held_out_songs(root, split, n_songs)
    for record in records:
        if record.layout == "duosynth" and record.sample_rate != sample_rate:
            raise DatasetError(Path(root), f"the corpus is at {record.sample_rate} Hz but the separator reads "
                                           f"{sample_rate} Hz audio (duosynth audio is never resampled)")
    out = []
    for record in records:
        song = load_song(record, sample_rate)
        offset, length = centre_span(song["mixture"].shape[-1], seconds, sample_rate)
        mixture = crop_pad(song["mixture"], offset, length)[0]
        stems = crop_pad(song["stems"], offset, length)[0]
        out.append(StemExcerpt(record.id, offset / sample_rate, mixture, stems))
    return out


def run_separator(separator: Separator, excerpt: StemExcerpt) -> tuple[np.ndarray, float]:
    """The separator's ``(4, T)`` estimates of the excerpt and the seconds it took. A separator with
    ``needs_references`` (the oracle mask, a bound rather than a system) is handed the true stems.
    Every output passes :func:`~duotok.separation.base.check_stems`, so a separator breaking the
    contract fails here with its name, not inside museval."""
    mixture = torch.from_numpy(excerpt.mixture)
    start = time.perf_counter()
    if getattr(separator, "needs_references", False):
        estimates = separator.separate_with_references(mixture, torch.from_numpy(excerpt.stems))
    else:
        estimates = separator.separate(mixture)
    elapsed = time.perf_counter() - start
    name = getattr(separator, "name", type(separator).__name__)
    checked = check_stems(estimates, excerpt.n_samples, f"{name} on {excerpt.song_id}")
    return torch.stack(list(checked.values())).detach().cpu().numpy(), elapsed


def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {METRICS}" if unknown else "no metrics requested")
    return metrics


def score_excerpt(excerpt: StemExcerpt, estimates: np.ndarray, sample_rate: int,
                  metrics: Sequence[str] = DEFAULT_METRICS) -> list[dict[str, Any]]:
    """One row per stem: ``stem`` and each requested metric, the BSS-eval ones from one joint
    evaluation of the four stems."""
    metrics = _check_metrics(metrics)
    bss = [m for m in metrics if m in BSS_METRICS]
    joint = bss_eval_track(excerpt.stems, estimates, sample_rate) if bss else {}
    recon = [m for m in metrics if m in RECONSTRUCTION_METRICS]
    rows = []
    for i, stem in enumerate(STEMS):
        row: dict[str, Any] = {"stem": stem}
        row.update({m: float(joint[m.upper()][i]) for m in bss})
        if recon:
            try:
                row.update(reconstruction_metrics(excerpt.stems[i], estimates[i], sample_rate, recon))
            except ValueError as exc:  # too short for a metric (Mel L1's 2048 window, ViSQOL's patches)
                raise ValueError(f"{excerpt.song_id}/{stem} ({excerpt.n_samples} samples): {exc}") from exc
        rows.append(row)
    return rows


def score_separator(separator: Separator, root: str | os.PathLike[str], split: str = "test", n_songs: int = 16,
                    seconds: float = 10.0, metrics: Sequence[str] = DEFAULT_METRICS,
                    progress: bool = False) -> pd.DataFrame:
    """Score ``separator`` on the centre ``seconds`` of the first ``n_songs`` songs of ``split``.

    One row per (song, stem): ``system, song, stem, offset_seconds, seconds`` (audio), the song's
    ``compute_seconds`` and ``rtf`` (its real-time factor), then the metrics. ``scores.attrs`` holds
    the run's totals: ``rtf`` (total compute / total audio), ``compute_seconds``, ``audio_seconds``,
    ``system``. Accepts the oracle separator (``needs_references``) like any other."""
    metrics = _check_metrics(metrics)
    name = getattr(separator, "name", type(separator).__name__)
    rate = int(separator.sample_rate)
    excerpts = stem_excerpts(root, split, seconds, n_songs, rate)
    rows: list[dict[str, Any]] = []
    compute = audio = 0.0
    for ex in tqdm(excerpts, desc=f"scoring {name}", disable=not progress):
        estimates, elapsed = run_separator(separator, ex)
        duration = ex.n_samples / rate
        compute, audio = compute + elapsed, audio + duration
        info = {"system": name, "song": ex.song_id, "offset_seconds": ex.offset_seconds, "seconds": duration,
                "compute_seconds": elapsed, "rtf": elapsed / duration}
        rows += [{**info, **row} for row in score_excerpt(ex, estimates, rate, metrics)]
    scores = pd.DataFrame(rows, columns=[*INFO_COLUMNS, *metrics])
    scores.attrs.update({"system": name, "rtf": compute / audio, "compute_seconds": compute, "audio_seconds": audio})
    return scores


def _stats(values: pd.Series) -> dict[str, float]:
    """Mean and median over the non-NaN values (a silent stem's NaN is skipped) and their count."""
    finite = values.to_numpy(dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "n": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # inf - inf of a perfect estimate's SDR
        return {"mean": float(np.mean(finite)), "median": float(np.median(finite)), "n": int(finite.size)}


def summarize(scores: pd.DataFrame) -> dict[str, Any]:
    """The SiSEC summary of :func:`score_separator`'s table::

        {"system", "n_songs", "rtf",
         "stems": {stem: {metric: {"mean", "median", "n"}}},       # over tracks
         "average": {metric: {"mean", "median"}}}                   # over stems of the per-stem values

    ``average[m]["median"]`` (the mean over stems of the per-stem medians over tracks) is the number a
    MUSDB table calls "SDR"; ``rtf`` is ``scores.attrs["rtf"]`` when present, else the mean of the
    per-song factors."""
    if scores.empty:
        raise ValueError("no scores to summarize")
    metrics = [m for m in METRICS if m in scores.columns]
    per_stem = {stem: {m: _stats(group[m]) for m in metrics}
                for stem, group in scores.groupby("stem", sort=False)}
    per_stem = {s: per_stem[s] for s in STEMS if s in per_stem}
    average: dict[str, dict[str, float]] = {}
    for m in metrics:
        average[m] = {}
        for stat in ("mean", "median"):
            values = [per_stem[s][m][stat] for s in per_stem if not np.isnan(per_stem[s][m][stat])]
            average[m][stat] = float(np.mean(values)) if values else float("nan")
    songs = scores.drop_duplicates("song")
    rtf = scores.attrs.get("rtf", float(songs["rtf"].mean()) if "rtf" in songs else float("nan"))
    systems = scores["system"].unique() if "system" in scores else []
    return {"system": systems[0] if len(systems) == 1 else list(systems), "n_songs": int(len(songs)),
            "rtf": float(rtf), "stems": per_stem, "average": average}
