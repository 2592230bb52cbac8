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


def _time_runs(run, warm_up, audio_seconds: float, repeats: int) -> dict[str, float]:
    """Call ``warm_up()`` once (allocator, kernels), then time ``run()`` ``repeats`` times; the best and
    mean wall time and real-time factor, torch's thread count and the peak memory."""
    warm_up()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"audio_seconds": audio_seconds, "repeats": repeats, "best_seconds": min(times),
            "mean_seconds": float(np.mean(times)), "rtf_best": min(times) / audio_seconds,
            "rtf_mean": float(np.mean(times)) / audio_seconds, "threads": torch.get_num_threads(),
            "peak_rss_mib": peak_rss_mib()}


def bench_encode(model: DuoTok, audio: torch.Tensor, repeats: int = 3) -> dict[str, float]:
    """Time ``model.encode(audio)`` ``repeats`` times after one warm-up; report the best and the mean."""
    return _time_runs(lambda: model.encode(audio), lambda: model.encode(audio[: model.samples_per_chunk]),
                      audio.numel() / model.sample_rate, repeats)


def bench_decode(model: DuoTok, n_tokens: int, steps: int | None = None, cfg_scale: float | None = None,
                 repeats: int = 3, seed: int = 0, time_shift: float | None = None,
                 precision: str | None = None) -> dict[str, float | str]:
    """Time ``model.decode`` of ``n_tokens`` random ids per track (decoding cost does not depend on which
    ids) ``repeats`` times after a one-chunk warm-up; report the best and the mean real-time factor, the
    settings, and the precision the DiT actually ran in (``auto`` resolves per machine, so a speed
    means little without it)."""
    g = torch.Generator().manual_seed(seed)
    ids = [torch.randint(0, size, (n_tokens,), generator=g) for size in model.codebook_sizes]
    per_chunk = model.samples_per_chunk // model.samples_per_token
    settings = {"steps": steps, "cfg_scale": cfg_scale, "time_shift": time_shift, "precision": precision}
    result = _time_runs(lambda: model.decode(*ids, **settings),
                        lambda: model.decode(*(x[:per_chunk] for x in ids), **settings),
                        n_tokens * model.samples_per_token / model.sample_rate, repeats)
    cfg = model.decoder.config
    used = model.decoder.sampling_precision(precision)
    return {**result, **{k: getattr(cfg, k) if v is None else v for k, v in settings.items()},
            "precision_used": used.used}
