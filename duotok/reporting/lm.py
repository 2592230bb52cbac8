"""Tables and figure of the LM evaluation (notebook ``06_lm``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def lm_codebook_table(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (codec, codebook): CE in nats, and the codec's PPL@1024 and bits/s."""
    rows = []
    for r in results.values():
        for k, (ce, v) in enumerate(zip(r["ce_per_codebook"], r["codebook_sizes"], strict=True)):
            rows.append({"codec": r["codec"], "codebook": k, "size": v, "ce_nats": ce,
                         "bits_per_second": r["bits_per_second_per_codebook"][k],
                         "codec_ppl_1024": r["ppl_1024"], "codec_bits_per_second": r["bits_per_second"]})
    return pd.DataFrame(rows)


def lm_information_table(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per codec: PPL@1024 and LM bits/s beside what the test tokens could carry (unigram
    entropy rate, bits/s; codebook usage), the codec-training seeds and the test songs behind the
    per-song values. Records without the information fields (older metrics) show NaN."""
    rows = []
    for r in results.values():
        by_seed = r.get("per_song_by_seed") or {}
        rows.append({"codec": r["codec"], "ppl_1024": r["ppl_1024"], "lm_bits_per_second": r["bits_per_second"],
                     "entropy_rate_bps": r.get("entropy_rate_bps", float("nan")),
                     "codebook_usage": r.get("codebook_usage", float("nan")),
                     "training_seeds": len(by_seed),
                     "test_songs": len(next(iter(by_seed.values()))) if by_seed else 0})
    return pd.DataFrame(rows)


def lm_protocol_table(protocols: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Protocol (ii) per codec: accompaniment bits/s without and with the vocal condition."""
    return pd.DataFrame([{
        "codec": r["codec"],
        "acc. bits/s (acc. prefix only)": r["accompaniment_only"]["bits_per_second"],
        "acc. bits/s (+ vocal tokens)": r["given_vocals"]["bits_per_second"],
        "bits/s saved": r["bits_per_second_saved"],
        "relative saving": r["relative_saving"],
        "acc. PPL@1024 (prefix only)": r["accompaniment_only"]["ppl_1024"],
        "acc. PPL@1024 (+ vocals)": r["given_vocals"]["ppl_1024"],
    } for r in protocols.values()])


def plot_lm_results(results: Mapping[str, Mapping[str, Any]]) -> plt.Figure:
    """PPL@1024 (log) and bits per second per codec."""
    names = [r["codec"] for r in results.values()]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].bar(x, [r["ppl_1024"] for r in results.values()], color="#4c72b0")
    axes[0].set_yscale("log")
    axes[0].set_title("PPL@1024 (lower is better)", fontsize=10)
    axes[1].bar(x, [r["bits_per_second"] for r in results.values()], color="#dd8452")
    axes[1].set_title("LM bits per second (lower is better)", fontsize=10)
    for ax in axes:
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
