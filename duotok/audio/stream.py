"""Reading a long audio file block by block, with memory bounded by the block, not the song.

Why: ``load_audio`` decodes, downmixes and resamples a whole file at once, so a 20-minute song costs
gigabytes before the tokenizer — which works in 10-s chunks anyway — sees a sample. :func:`stream_audio`
yields the same samples in fixed-size blocks:

* at the file's own rate, blocks come straight from ``soundfile.blocks``;
* at another rate, each output block is resampled from its slice of the input plus a margin on both
  sides, with the same polyphase filter as :func:`duotok.audio.io.resample` (scipy ``resample_poly``).
  The slices start at multiples of the reduced down-sampling factor, so every output sample sees the
  same filter taps at the same phase as in the whole-file resampling, and the margin (far wider than
  the filter's half-length) keeps the slice edges out of reach: the concatenated blocks equal
  ``load_audio``'s output (a test pins this).

The same checks as ``load_audio`` apply (missing, corrupt, empty, NaN/inf, rate/channel policies), each
an :class:`~duotok.errors.AudioFileError` naming the file; a NaN deep inside a file is found when its
block is read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from duotok.audio.io import (
    _DECODE_ERRORS,
    MultichannelPolicy,
    RateMismatchPolicy,
    audio_info,
    check_conversion,
    check_finite,
    downmix,
)
from duotok.errors import AudioFileError

#: Input samples read beyond each side of a resampled slice, in units of the reduced down factor. The
#: default ``resample_poly`` filter spans 10 * max(up, down) taps at the upsampled rate, i.e. about
#: 10 input samples on each side: 64 down-steps is far more than enough for any rate pair.
MARGIN_STEPS = 64


def stream_audio(path: str | os.PathLike[str], sample_rate: int, block: int, *,
                 on_rate_mismatch: RateMismatchPolicy = "error",
                 on_multichannel: MultichannelPolicy = "error") -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``block`` samples at ``sample_rate`` (the last one shorter), whose
    concatenation is ``load_audio(path, sample_rate, ...)`` with the same policies."""
    if block < 1:
        raise ValueError(f"block must be >= 1 sample, got {block}")
    rate, channels, frames = audio_info(path)
    p = Path(path)
    check_conversion(p, rate, channels, sample_rate, on_rate_mismatch, on_multichannel)
    try:
        if rate == sample_rate:
            start = 0
            for data in sf.blocks(str(p), blocksize=block, dtype="float32", always_2d=True):
                check_finite(p, data, start)
                yield np.ascontiguousarray(downmix(data), dtype=np.float32)
                start += data.shape[0]
            return
        yield from _resampled_blocks(p, rate, frames, sample_rate, block)
    except _DECODE_ERRORS as exc:
        raise AudioFileError(p, f"unreadable or corrupt audio file ({exc})") from exc


def _resampled_blocks(p: Path, rate: int, frames: int, sample_rate: int, block: int) -> Iterator[np.ndarray]:
    g = math.gcd(rate, sample_rate)
    up, down = sample_rate // g, rate // g
    total = math.ceil(frames * up / down)
    # Output slices of a whole number of `up`s start at input frames that are multiples of `down`.
    step = max(1, math.ceil(block / up)) * up
    margin = MARGIN_STEPS * down
    pending = np.zeros(0, dtype=np.float32)
    with sf.SoundFile(str(p)) as fh:
        for out_start in range(0, total, step):
            in_start = out_start // up * down
            lo = max(0, in_start - margin)
            hi = min(frames, in_start + step // up * down + margin)
            fh.seek(lo)
            data = fh.read(hi - lo, dtype="float32", always_2d=True)
            check_finite(p, data, lo)
            mono = downmix(data).astype(np.float64)
            out = resample_poly(mono, up, down)
            offset = (in_start - lo) // down * up
            piece = out[offset: offset + min(step, total - out_start)].astype(np.float32)
            pending = np.concatenate([pending, piece])
            while pending.size >= block:
                yield pending[:block]
                pending = pending[block:]
    if pending.size:
        yield pending
