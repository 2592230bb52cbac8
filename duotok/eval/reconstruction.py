"""Reconstruction quality, with the evaluation toolkit's definitions (SPEC §2).

* **Mel L1** (``mel_l1``, lower is better) — exactly the toolkit's Mel distance (Codec-Evaluation,
  ``calculate_mel_distance``), :func:`duotok.eval.mel_distance.toolkit_mel_distance`: for each of 7
  scales (window 32 … 2048 samples, 5 … 320 mel bands) a torchaudio-default ``MelSpectrogram`` —
  HTK mel scale, no area normalisation (``norm=None``), power 2, centred reflect-padded periodic-Hann
  frames, hop = window / 4 — then the mean absolute difference of ``ln(clamp(mel power, 1e-5))``
  between reference and estimate, then the mean over scales. Computed in float32, as the toolkit
  does on float32 audio. The published baselines' Mel L1 (the toolkit's README, copied into the
  paper's Table 2: :mod:`duotok.eval.published`) is this same definition, so the two are on one scale
  (not on the same data). It is *not* the DAC-style training loss
  :func:`duotok.losses.multiscale_mel_l1` (librosa Slaney mel, area-normalised), which this module
  reported as Mel L1 before issue 18 and which comes out 1.4–4.4× smaller on the same signals.
* **PESQ** (``pesq``, higher is better, about 1.04 … 4.64) — ITU-T P.862.2 wide-band PESQ via the
  ``pesq`` package, at 16 kHz only: P.862.2 is defined for 16 kHz input, so other rates are refused
  rather than silently resampled.
* **STOI** (``stoi``, higher is better, ≤ 1) — short-time objective intelligibility (Taal et al.,
  2011; ``pystoi``, non-extended), which resamples to 10 kHz internally.
* **ViSQOL** (``visqol``, higher is better, about 1 … 4.73) — ViSQOL v3 in *audio* mode
  (``visqol-python``), measured at 48 kHz after polyphase resampling (``scipy.signal.resample_poly``),
  because audio mode's similarity-to-quality model was trained on 48 kHz signals. What it sees on
  this corpus (audit, issue 18): it barely reacts to phase — the exact STFT magnitudes with *random*
  phase score 4.29–4.53, while a 4 kHz low-pass with perfect phase scores 3.54–4.43 — so it mostly
  reports spectral-envelope/bandwidth fidelity. PESQ and STOI do react to phase (random phase drops
  PESQ to about 1.5); read ViSQOL next to them, never alone.

PESQ, STOI and ViSQOL are undefined when the reference is silent (e.g. the vocal stem of an
instrumental song), so they are NaN there, while Mel L1 still scores the estimate's leakage;
:func:`summarize_metrics` skips NaN values.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from duotok.eval.mel_distance import toolkit_mel_distance

if TYPE_CHECKING:  # pragma: no cover - typing only; visqol is imported lazily (slow import)
    from visqol import VisqolApi

# --------------------------------------------------------------------------------------------------
# Perceptual metrics (numpy, not differentiable)
# --------------------------------------------------------------------------------------------------

#: Metric names, in report order, and the direction in which each improves.
METRICS: tuple[str, ...] = ("mel_l1", "pesq", "stoi", "visqol")
HIGHER_IS_BETTER: dict[str, bool] = {"mel_l1": False, "pesq": True, "stoi": True, "visqol": True}

#: PESQ-WB is defined at this rate only (ITU-T P.862.2).
PESQ_SAMPLE_RATE = 16000
#: ViSQOL audio mode's native rate: its quality model was trained on 48 kHz audio.
VISQOL_SAMPLE_RATE = 48000
#: A signal whose peak is at or below this (−120 dBFS, far below one 16-bit step of ~3e-5) counts as
#: silent: digital silence that picked up float noise from resampling or mixing is still silence.
SILENT_PEAK = 1e-6
#: The worst score each scale can give. A silent estimate of a real reference gets it: it is the
#: worst possible reconstruction, and NaN would silently drop it from the averages.
PESQ_WB_MIN = 1.0    # bottom of the MOS-LQO scale (P.862.2 scores of noise reach ~1.02)
VISQOL_MIN = 1.0     # MOS-LQO scale 1..5


def _is_silent(x: np.ndarray) -> bool:
    """True for (numerically) digital silence, where level-normalising metrics divide by zero."""
    return x.size == 0 or float(np.max(np.abs(x))) <= SILENT_PEAK


def _as_float64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """The C metric libraries want contiguous float64 numpy arrays."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.ascontiguousarray(x, dtype=np.float64)


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (P.862.2) of ``estimate`` against ``reference``, both mono at 16 kHz.

    PESQ-WB is only defined at 16 kHz, so another rate is a ValueError rather than a silent resample
    (the caller decides how to get to 16 kHz). Returns NaN where PESQ is undefined: a silent
    reference (its level alignment divides by the signal power; the ``pesq`` package raises) or no
    speech-like utterance detected in the reference. A silent *estimate* of a real reference gets
    :data:`PESQ_WB_MIN` (the package raises there too, but it is a failure to be counted)."""
    if sample_rate != PESQ_SAMPLE_RATE:
        raise ValueError(f"PESQ-WB is only defined at {PESQ_SAMPLE_RATE} Hz, got sample_rate={sample_rate}")
    from pesq import NoUtterancesError, pesq

    ref, est = _as_float64(reference), _as_float64(estimate)
    if _is_silent(ref):
        return float("nan")
    if _is_silent(est):
        return PESQ_WB_MIN
    try:
        return float(pesq(sample_rate, ref, est, "wb"))
    except NoUtterancesError:
        return float("nan")


def stoi_score(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """STOI (Taal et al., 2011) of ``estimate`` against ``reference``, mono, any rate.

    NaN for a silent reference: STOI correlates short-time envelopes with the reference's, which
    has none (``pystoi`` would report 0.0 there, indistinguishable from a useless estimate). A
    silent estimate of a non-silent reference is a genuine failure and scores as ``pystoi`` says."""
    from pystoi import stoi

    ref, est = _as_float64(reference), _as_float64(estimate)
    if _is_silent(ref):
        return float("nan")
    return float(stoi(ref, est, sample_rate, extended=False))


@functools.lru_cache(maxsize=1)
def _visqol_api() -> VisqolApi:
    """One audio-mode ViSQOL instance per process: creating it loads the quality model."""
    from visqol import VisqolApi

    api = VisqolApi()
    api.create(mode="audio")
    return api


def _resample_to(x: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling by the exact rational factor ``target_rate / sample_rate``."""
    if sample_rate == target_rate:
        return x
    from scipy.signal import resample_poly

    ratio = Fraction(target_rate, sample_rate)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def visqol_audio(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """ViSQOL v3 audio-mode MOS-LQO of ``estimate`` against ``reference``, mono.

    Both are resampled to 48 kHz first, because audio mode's model was trained at 48 kHz. NaN for
    a silent reference (ViSQOL would report its maximum, ~4.73, comparing silence to anything);
    :data:`VISQOL_MIN` for a silent estimate of a real reference (ViSQOL's level alignment divides by
    zero there and yields NaN, but it is a failure to be counted).
    Needs roughly 0.5 s of audio or more; shorter signals raise ValueError inside ViSQOL."""
    ref, est = _as_float64(reference), _as_float64(estimate)
    if _is_silent(ref):
        return float("nan")
    if _is_silent(est):
        return VISQOL_MIN
    ref = _resample_to(ref, sample_rate, VISQOL_SAMPLE_RATE)
    est = _resample_to(est, sample_rate, VISQOL_SAMPLE_RATE)
    return float(_visqol_api().measure_from_arrays(ref, est, VISQOL_SAMPLE_RATE).moslqo)


def toolkit_mel_l1(reference: np.ndarray | torch.Tensor, estimate: np.ndarray | torch.Tensor,
                   sample_rate: int) -> float:
    """The toolkit's Mel L1 (:func:`~duotok.eval.mel_distance.toolkit_mel_distance`) of one mono pair.

    Both signals are cast to float32 first — the precision the toolkit computes in (torchaudio on
    float32 audio), whatever dtype they arrive in. ``sample_rate`` may be any integral number
    (``16000``, ``np.int64(16000)``, ``16000.0``); the filterbank spans 0 … ``sample_rate // 2``.
    Signals must be longer than 1024 samples (the 2048-sample scale); shorter ones raise ValueError."""
    rate = float(sample_rate)
    if not (math.isfinite(rate) and rate.is_integer() and rate > 0):
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    ref = torch.as_tensor(_as_float64(reference)).to(torch.float32)
    est = torch.as_tensor(_as_float64(estimate)).to(torch.float32)
    return float(toolkit_mel_distance(ref, est, int(rate)))


def _validated_pair(reference: Any, estimate: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mono 1-D, equal-length, non-empty, finite float64 copies of the two signals."""
    ref, est = _as_float64(reference), _as_float64(estimate)
    for name, x in (("reference", ref), ("estimate", est)):
        if x.ndim != 1:
            raise ValueError(f"{name} must be mono 1-D (samples,), got shape {x.shape}")
        if x.size == 0:
            raise ValueError(f"{name} is empty")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or inf")
    if ref.shape != est.shape:
        raise ValueError(f"reference has {ref.shape[0]} samples but estimate has {est.shape[0]}; "
                         "they must have the same length")
    return ref, est


def reconstruction_metrics(reference: np.ndarray | torch.Tensor, estimate: np.ndarray | torch.Tensor,
                           sample_rate: int, metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """The requested metrics (keys in the order given) for one mono reference/estimate pair.

    Accepts numpy arrays or torch tensors. Inputs are validated up front — a silently broadcast or
    truncated pair would produce plausible but meaningless numbers. NaN marks a metric that is
    undefined for this pair (see the module docstring); ``pesq`` additionally requires 16 kHz."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known metrics are {list(METRICS)}")
    ref, est = _validated_pair(reference, estimate)
    out: dict[str, float] = {}
    for name in metrics:
        if name == "mel_l1":
            out[name] = toolkit_mel_l1(ref, est, sample_rate)
        elif name == "pesq":
            out[name] = pesq_wb(ref, est, sample_rate)
        elif name == "stoi":
            out[name] = stoi_score(ref, est, sample_rate)
        else:
            out[name] = visqol_audio(ref, est, sample_rate)
    return out


def summarize_metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric key (in first-seen order): mean, median and ``n`` over the finite values.

    NaN entries (metrics undefined for that item, e.g. PESQ on a silent vocal stem) and missing keys
    are skipped rather than poisoning the average; ``n`` says how many items each number rests on,
    and mean/median are NaN when ``n == 0``."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    summary: dict[str, dict[str, float]] = {}
    for key in keys:
        values = np.asarray([row[key] for row in rows if key in row], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            summary[key] = {"mean": math.nan, "median": math.nan, "n": 0}
        else:
            summary[key] = {"mean": float(finite.mean()), "median": float(np.median(finite)),
                            "n": int(finite.size)}
    return summary
