"""Plots of the corpus notebook: tag frequencies, per-stem spectrograms, the vocal pitch track with
the score notes and the lyric syllables."""

from __future__ import annotations

from collections import Counter
from typing import Any

import librosa
import numpy as np

from duotok.reporting.figures import plt


def plot_tag_counts(songs: list[dict[str, Any]], vocabulary: list[str]) -> plt.Figure:
    counts = Counter(t for s in songs for t in s["tags"])
    values = [counts.get(t, 0) for t in vocabulary]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.bar(range(len(vocabulary)), values, color="#4c72b0")
    ax.set_xticks(range(len(vocabulary)), vocabulary, rotation=70, ha="right", fontsize=8)
    ax.set_ylabel("songs")
    ax.set_title(f"Tag frequencies over {len(songs)} songs")
    fig.tight_layout()
    return fig


def plot_stem_spectrograms(signals: dict[str, np.ndarray], sr: int, seconds: float | None = None) -> plt.Figure:
    """Log-mel spectrograms of the mixture and each stem, stacked on one time axis."""
    names = list(signals)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 1.7 * len(names)), sharex=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        x = signals[name][: int(seconds * sr)] if seconds else signals[name]
        mel = librosa.feature.melspectrogram(y=x.astype(np.float32), sr=sr, n_fft=1024, hop_length=160, n_mels=96)
        db = librosa.power_to_db(mel + 1e-10, ref=1.0, top_db=None)
        ax.imshow(np.clip(db, -90, 0), origin="lower", aspect="auto", cmap="magma", vmin=-90, vmax=0,
                  extent=(0, x.size / sr, 0, 96))
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_yticks([])
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_pitch_and_lyrics(f0: np.ndarray, times: np.ndarray, notes: list[dict[str, float]],
                          syllables: list[dict[str, Any]], seconds: float | None = None) -> plt.Figure:
    """The tracked vocal pitch over the score's notes, with each syllable written at its onset."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    for n in notes:
        ax.plot([n["onset"], n["onset"] + n["duration"]], [n["pitch"]] * 2, color="#dd8452", lw=5,
                alpha=0.5, solid_capstyle="butt")
    with np.errstate(invalid="ignore", divide="ignore"):
        midi = 69 + 12 * np.log2(f0 / 440.0)
    ax.plot(times, midi, color="#4c72b0", lw=1.2, label="sung pitch (pyin)")
    ax.plot([], [], color="#dd8452", lw=5, alpha=0.5, label="score notes")
    lo = min((n["pitch"] for n in notes), default=48) - 4
    for s in syllables:
        if seconds is None or s["onset"] < seconds:
            ax.text(s["onset"], lo + 1, s["text"], fontsize=7, rotation=45)
            ax.axvline(s["onset"], color="0.85", lw=0.6, zorder=0)
    ax.set_ylim(lo, max((n["pitch"] for n in notes), default=72) + 3)
    if seconds:
        ax.set_xlim(0, seconds)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig
