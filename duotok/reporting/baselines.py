"""Figures of the baseline stages (notebook ``05_baseline``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from duotok.reporting.training import plot_curves

#: (sub-folder written by duotok.train.baselines, the curve worth looking at)
RUNS = (("train", "mel_l1"), ("decoder", "loss"))


def plot_training_logs(baseline_dir: str | Path) -> plt.Figure | None:
    """The training curve of whichever run the baseline has (RVQ codec or token-decoder DiT); None if none."""
    for sub, column in RUNS:
        run = Path(baseline_dir) / sub
        train_log = run / "train_log.csv"
        if train_log.is_file():
            valid_log = run / "valid_log.csv"
            valid = pd.read_csv(valid_log) if valid_log.is_file() and valid_log.stat().st_size else None
            return plot_curves(pd.read_csv(train_log), valid, [column], title=f"{Path(baseline_dir).name}: {sub}")
    return None
