"""BSS-eval separation metrics, the way SiSEC/MUSDB report them (SPEC §2): museval's framewise
SDR/SIR/SAR over 1-s windows, the median over a track's windows, then the mean and median over
tracks. All four stems are evaluated together, because BSS-eval projects each estimate on all
references (adding or removing an estimate changes the others' scores)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

METRICS = ("SDR", "SIR", "SAR")


def bss_eval_track(references: np.ndarray, estimates: np.ndarray, sample_rate: int,
                   window_seconds: float = 1.0) -> dict[str, np.ndarray]:
    """``(S, T)`` references and estimates of one track → ``{"SDR": (S,), "SIR": (S,), "SAR": (S,)}``,
    each the median over windows (NaN windows — a silent stretch — ignored; NaN for a stem that is
    silent throughout)."""
    import museval  # heavy import (musdb, stempeg): only when separation is evaluated

    references = np.asarray(references, dtype=np.float64)
    estimates = np.asarray(estimates, dtype=np.float64)
    if references.shape != estimates.shape or references.ndim != 2:
        raise ValueError(f"references {references.shape} and estimates {estimates.shape} must both be (S, T)")
    if not np.isfinite(estimates).all():
        raise ValueError("estimates contain NaN or inf")
    win = int(round(window_seconds * sample_rate))
    # A silent reference (a song without drums) has no defined SDR and museval refuses it: score the
    # sounding stems together and report NaN for the silent ones.
    sounding = np.abs(references).max(axis=1) > 0
    out = {name: np.full(references.shape[0], np.nan) for name in METRICS}
    if not sounding.any():
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows of silent references
        sdr, _isr, sir, sar = museval.evaluate(references[sounding, :, None], estimates[sounding, :, None],
                                               win=win, hop=win)
        for name, values in zip(METRICS, (sdr, sir, sar), strict=True):
            out[name][sounding] = np.nanmedian(values, axis=1)
    return out


def summarize_tracks(per_track: Sequence[dict[str, np.ndarray]], sources: Sequence[str]) -> dict[str, float]:
    """Per-source mean and median over tracks (``"<source>/SDR_mean"``...) and the all-source mean of
    the per-source medians (``"SDR_median"``) — NaN tracks (a silent stem) are skipped."""
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for metric in METRICS:
            table = np.array([t[metric] for t in per_track])  # (tracks, S)
            for s, source in enumerate(sources):
                out[f"{source}/{metric}_mean"] = float(np.nanmean(table[:, s]))
                out[f"{source}/{metric}_median"] = float(np.nanmedian(table[:, s]))
            out[f"{metric}_median"] = float(np.nanmean([out[f"{s}/{metric}_median"] for s in sources]))
    return out
