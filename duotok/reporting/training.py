"""Plots of the three training-stage notebooks: learning curves, a feature PCA, head outputs against
their targets, separation masks, code-usage histograms, codebook usage over steps of several runs
(the codebook collapse) and token rasters — and the copy of each stage's CSV logs into
``reports/curves/``."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from duotok.io.files import atomic_write
from duotok.reporting.figures import plt


def export_curves(run_dir: str | Path, curves_dir: str | Path, stage: str) -> dict[str, Path]:
    """Copy ``<run>/train_log.csv`` and ``valid_log.csv`` to ``<curves>/<stage>_{train,valid}.csv``."""
    out: dict[str, Path] = {}
    Path(curves_dir).mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        src = Path(run_dir) / f"{split}_log.csv"
        if src.is_file():
            dst = Path(curves_dir) / f"{stage}_{split}.csv"
            with atomic_write(dst, "wb") as fh, open(src, "rb") as source:
                shutil.copyfileobj(source, fh)
            out[split] = dst
    return out


def plot_curves(train: pd.DataFrame, valid: pd.DataFrame | None, columns: Sequence[str],
                title: str = "") -> plt.Figure:
    """One panel per metric column: training (per logging window) and validation against step."""
    fig, axes = plt.subplots(1, len(columns), figsize=(3.6 * len(columns), 2.8), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        if column in train:
            ax.plot(train["step"], train[column], label="train", color="#4c72b0")
        if valid is not None and column in valid:
            ax.plot(valid["step"], valid[column], "o-", label="valid", color="#dd8452")
        ax.set_title(column, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_usage_over_steps(runs: Mapping[str, pd.DataFrame], tracks: Sequence[str] = ("vocal", "accompaniment"),
                          ) -> plt.Figure:
    """One panel per track: the fraction of its codebook used on the training batch (``<track>/usage``
    of ``train_log.csv``) against step, one line per labelled run; a run without that column is skipped."""
    fig, axes = plt.subplots(1, len(tracks), figsize=(5 * len(tracks), 3.0), squeeze=False)
    for ax, track in zip(axes[0], tracks, strict=True):
        column = f"{track}/usage"
        for label, log in runs.items():
            if column in log and "step" in log:
                ax.plot(log["step"], log[column], "o-", ms=3, label=label)
        ax.set_title(f"{track} codebook", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0][0].set_ylabel("codebook usage (fraction)")
    fig.tight_layout()
    return fig


def plot_feature_pca(mel: np.ndarray, projected: np.ndarray, explained: np.ndarray, frame_rate: float,
                     mel_rate: float) -> plt.Figure:
    """Log-mel (top) and the first principal components of the encoder features over time (bottom)."""
    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True)
    a.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, mel.shape[1] / mel_rate, 0, mel.shape[0]))
    a.set_ylabel("mel band")
    t = np.arange(projected.shape[0]) / frame_rate
    for k in range(projected.shape[1]):
        b.plot(t, projected[:, k], lw=1, label=f"PC{k + 1} ({100 * explained[k]:.0f} %)")
    b.set_xlabel("time (s)")
    b.legend(fontsize=8, ncol=projected.shape[1])
    fig.tight_layout()
    return fig


def plot_target_vs_prediction(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], frame_rate: float,
                              ) -> plt.Figure:
    """For each named head, its target (left) and prediction (right), both ``(channels, frames)``."""
    fig, axes = plt.subplots(len(pairs), 2, figsize=(11, 2.2 * len(pairs)), squeeze=False)
    for row, (name, (target, pred)) in enumerate(pairs.items()):
        lo, hi = float(np.min(target)), float(np.max(target))
        for col, (label, image) in enumerate((("target", target), ("prediction", pred))):
            ax = axes[row][col]
            ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi,
                      extent=(0, image.shape[1] / frame_rate, 0, image.shape[0]))
            ax.set_title(f"{name}: {label}", fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_masks(masks: np.ndarray, sources: Sequence[str], frame_rate: float) -> plt.Figure:
    """Predicted ratio masks ``(S, F, T)``, one panel per source."""
    fig, axes = plt.subplots(1, len(sources), figsize=(3 * len(sources), 2.6), sharey=True)
    for ax, mask, name in zip(np.atleast_1d(axes), masks, sources, strict=True):
        ax.imshow(mask, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                  extent=(0, mask.shape[1] / frame_rate, 0, mask.shape[0]))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("time (s)")
    np.atleast_1d(axes)[0].set_ylabel("STFT bin")
    fig.tight_layout()
    return fig


def plot_code_usage(counts: Mapping[str, torch.Tensor | np.ndarray]) -> plt.Figure:
    """Per codebook: how often each code is used, codes sorted from most to least used (log scale),
    with the number of unused (dead) codes in the title."""
    fig, axes = plt.subplots(1, len(counts), figsize=(5 * len(counts), 2.8), squeeze=False)
    for ax, (name, c) in zip(axes[0], counts.items(), strict=True):
        c = np.asarray(c, dtype=np.float64)
        ranked = np.sort(c)[::-1]
        ax.bar(np.arange(len(ranked)), ranked, width=1.0, color="#4c72b0")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_title(f"{name}: {int((c > 0).sum())}/{len(c)} codes used, {int((c == 0).sum())} dead", fontsize=10)
        ax.set_xlabel("code rank")
        ax.set_ylabel("frames")
    fig.tight_layout()
    return fig


def plot_token_raster(tracks: Mapping[str, np.ndarray], codebook_sizes: Sequence[int], frame_rate: float,
                      ) -> plt.Figure:
    """Token ids over time, one row of dots per track (colour = id): repeated ids show as flat runs."""
    fig, axes = plt.subplots(len(tracks), 1, figsize=(11, 1.9 * len(tracks)), sharex=True, squeeze=False)
    for ax, (name, ids), size in zip(axes[:, 0], tracks.items(), codebook_sizes, strict=True):
        ids = np.asarray(ids)
        t = np.arange(len(ids)) / frame_rate
        ax.scatter(t, ids, c=ids, s=4, cmap="turbo", vmin=0, vmax=size - 1)
        ax.set_ylim(-1, size)
        ax.set_ylabel(f"{name}\ntoken id")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig
