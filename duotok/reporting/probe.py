"""Figure of the tagging probe (notebook ``07_probe``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np


def plot_probe_results(results: Mapping[str, Mapping[str, Any]]) -> plt.Figure:
    """Macro AP and ROC-AUC per codec: bars = mean over seeds, error bars = std, dots = each seed."""
    names = [r["name"] for r in results.values()]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, key, label in zip(axes, ("ap", "auc"), ("macro AP", "macro ROC-AUC"), strict=True):
        means = [r[f"{key}_mean"] for r in results.values()]
        stds = [r[f"{key}_std"] for r in results.values()]
        x = np.arange(len(names))
        ax.bar(x, means, yerr=stds, color="#4c72b0", alpha=0.8, capsize=3)
        for i, r in enumerate(results.values()):
            ax.plot([i] * len(r["per_seed"]), [s[key] for s in r["per_seed"]], "k.", ms=4)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
