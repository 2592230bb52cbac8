"""Figures of the stage-4 notebooks: spectrograms of a track against its reconstructions, and a
metric against a sweep parameter (diffusion steps, guidance scale)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from duotok.reporting.figures import plt


def plot_spectrograms(rows: Mapping[str, Mapping[str, np.ndarray]], sample_rate: int,
                      title: str = "") -> plt.Figure:
    """A grid: one row per track (``rows`` key), one column per version (inner key: "original",
    "autoencoder", ...), all on the same dB scale relative to the row's original."""
    import librosa

    tracks = list(rows)
    versions = list(next(iter(rows.values())))
    fig, axes = plt.subplots(len(tracks), len(versions), figsize=(3.2 * len(versions), 2.2 * len(tracks)),
                             squeeze=False, sharex=True, sharey=True)
    for i, track in enumerate(tracks):
        ref_peak = None
        for j, version in enumerate(versions):
            audio = np.asarray(rows[track][version], dtype=np.float32)
            spec = np.abs(librosa.stft(audio, n_fft=1024, hop_length=256))
            ref_peak = ref_peak or max(float(spec.max()), 1e-8)
            db = librosa.amplitude_to_db(spec, ref=ref_peak, top_db=None).clip(-80, 0)
            ax = axes[i, j]
            ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                      extent=(0, audio.size / sample_rate, 0, sample_rate / 2000))
            if i == 0:
                ax.set_title(version, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{track}\nkHz", fontsize=9)
            if i == len(tracks) - 1:
                ax.set_xlabel("s")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_metric_sweep(scores: pd.DataFrame, parameter: str, metrics: Sequence[str],
                      higher_is_better: Mapping[str, bool] | None = None, title: str = "") -> plt.Figure:
    """Mean of each metric (one panel each) against ``parameter``, one line per track."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 2.8), squeeze=False)
    means = scores.groupby([parameter, "track"])[list(metrics)].mean().reset_index()
    for ax, metric in zip(axes[0], metrics, strict=True):
        for track, part in means.groupby("track", sort=False):
            ax.plot(part[parameter], part[metric], marker="o", label=track)
        arrow = "" if higher_is_better is None else (" ↑" if higher_is_better.get(metric, True) else " ↓")
        ax.set_title(f"{metric}{arrow}", fontsize=10)
        ax.set_xlabel(parameter)
        if pd.api.types.is_numeric_dtype(means[parameter]) and means[parameter].min() > 0:
            ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_system_bars(summary: pd.DataFrame, metrics: Sequence[str],
                     reference: Mapping[str, Mapping[str, float]] | None = None) -> plt.Figure:
    """Grouped bars of ``summary`` (index (system, track), metric columns); ``reference``
    (``{track: {metric: value}}``, e.g. the paper's) drawn as dashed lines labelled *published*."""
    table = summary.reset_index()
    systems = list(dict.fromkeys(table["system"]))
    tracks = list(dict.fromkeys(table["track"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.0), squeeze=False)
    width = 0.8 / max(1, len(systems))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for k, system in enumerate(systems):
            part = table[table["system"] == system].set_index("track").reindex(tracks)
            ax.bar(np.arange(len(tracks)) + k * width, part[metric], width, label=system)
        if reference:
            for i, track in enumerate(tracks):
                value = reference.get(track, {}).get(metric)
                if value is not None:
                    ax.hlines(value, i - 0.1, i + 0.9, colors="k", linestyles="--",
                              label="published (paper)" if i == 0 else None)
        ax.set_xticks(np.arange(len(tracks)) + 0.4 - width / 2, tracks, fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
