"""``duotok bench encode``: how fast the tokenizer runs here — real-time factor (processing time /
audio duration; below 1 is faster than real time) and the process's peak resident memory."""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import torch

from duotok.tokenizer.model import DuoTok


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB); ru_maxrss is KiB on Linux, bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def stand_in_signal(seconds: float, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """A music-like stand-in when no file is given: a chord, a melody and noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    chord = sum(0.08 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    melody = 0.15 * np.sin(2 * np.pi * 440.0 * 2 ** (np.floor(t * 2) % 5 / 12) * t)
    bursts = 0.05 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.9)
    return torch.from_numpy((chord + melody + bursts).astype(np.float32))


def bench_encode(model: DuoTok, audio: torch.Tensor, repeats: int = 3) -> dict[str, float]:
    """Time ``model.encode(audio)`` ``repeats`` times after one warm-up; report the best and the mean."""
    seconds = audio.numel() / model.sample_rate
    model.encode(audio[: model.samples_per_chunk])  # warm-up: allocator, kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.encode(audio)
        times.append(time.perf_counter() - start)
    return {"audio_seconds": seconds, "repeats": repeats, "best_seconds": min(times),
            "mean_seconds": float(np.mean(times)), "rtf_best": min(times) / seconds,
            "rtf_mean": float(np.mean(times)) / seconds, "threads": torch.get_num_threads(),
            "peak_rss_mib": peak_rss_mib()}
