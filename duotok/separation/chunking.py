"""Separating a long song in overlapping chunks joined by a crossfade (issue 19).

Why chunk at all: every separator here was trained on crops of a few seconds, and its memory grows
with the input (attention, STFT frames, generated tokens), so a 10-minute song is run as a sequence
of chunks of the length the model knows.

Why overlap and crossfade: seams are the most common complaint users file against separators and
codecs. Each chunk is processed without seeing its neighbours, so two chunks disagree where they
meet — a slightly different gain, phase or masking decision — and a hard cut turns that disagreement
into a step in the waveform: a click every ``chunk_seconds``, periodic and plainly audible in quiet
passages, and the model itself can never repair it because it never sees the boundary. The samples
next to a chunk's edge are also its worst (no context on one side). Overlapping the chunks and
crossfading hides both: across an overlap the output glides from one chunk's estimate to the next,
and each chunk's weakest samples are the ones weighted down.

The fades are amplitude-complementary (fade-out ``w`` and fade-in ``1 - w`` sum exactly to 1 at every
sample), not power-complementary: the two chunks estimate the *same* stem, so their errors are highly
correlated and weights whose squares sum to 1 would add up to a +3 dB bump in every overlap. The
join is computed as ``new + w · (old - new)``, so where two chunks agree the result is bit-for-bit
their common value: a separator that is the identity on each chunk reconstructs its input exactly.

Memory: the output is four ``(T,)`` buffers filled in place; at any moment only one chunk's input
(a view of the mixture, not a copy) and its four output stems are alive, and the previous chunk's
tail is read back from the buffers themselves — no ``(n_chunks, T)`` tensor is ever built.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from duotok.separation.base import (
    STEMS,
    Separator,
    check_stems,
)

#: Crossfade shapes: ``hann`` (raised-cosine, smooth at both ends: no kink where the fade starts) and
#: ``linear`` (a straight ramp).
FADES: tuple[str, ...] = ("hann", "linear")

#: How far ``seconds * sample_rate`` may be from a whole number and still count as one (float64
#: rounding of e.g. 0.1 s * 16 kHz), in samples.
_SAMPLE_TOLERANCE = 1e-6


def seconds_to_samples(seconds: float, sample_rate: int, what: str) -> int:
    """``seconds`` as a whole number of samples at ``sample_rate``. A duration that falls between
    samples is refused rather than rounded: chunks and overlaps that drift by a fraction of a sample
    per chunk would make the chunk grid depend on the song length."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number of seconds, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {seconds!r}")
    exact = float(seconds) * sample_rate
    n = round(exact)
    if abs(exact - n) > _SAMPLE_TOLERANCE:
        raise ValueError(f"{what}={seconds!r} s is {exact:.4f} samples at {sample_rate} Hz, not a whole number; "
                         f"use a multiple of 1/{sample_rate} s (e.g. {n / sample_rate:g})")
    return n


def chunk_geometry(sample_rate: int, chunk_seconds: float, overlap_seconds: float) -> tuple[int, int]:
    """``(chunk, overlap)`` in samples, checked: a chunk of at least one sample, an overlap shorter
    than the chunk (otherwise the next chunk would start at or before this one and never advance)."""
    chunk = seconds_to_samples(chunk_seconds, sample_rate, "chunk_seconds")
    overlap = seconds_to_samples(overlap_seconds, sample_rate, "overlap_seconds")
    if chunk < 1:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds!r}")
    if overlap >= chunk:
        raise ValueError(f"overlap_seconds ({overlap_seconds:g} s) must be shorter than chunk_seconds "
                         f"({chunk_seconds:g} s): chunks advance by chunk - overlap")
    return chunk, overlap


def chunk_starts(n_samples: int, chunk: int, overlap: int) -> list[int]:
    """Start sample of every chunk of a ``n_samples`` signal. Chunks advance by ``chunk - overlap``;
    a signal no longer than one chunk is one chunk. When the song is not a whole number of hops the
    last chunk is moved back to end exactly at the song's end: it stays a full chunk (the context the
    model was trained on, and no zero padding whose silence the model would try to separate) and
    overlaps its predecessor by more than ``overlap``."""
    if n_samples <= chunk:
        return [0]
    hop = chunk - overlap
    starts = list(range(0, n_samples - chunk, hop))
    starts.append(n_samples - chunk)
    return starts


def fade_out(length: int, fade: str = "hann") -> torch.Tensor:
    """Weights ``(length,)`` of the outgoing chunk across an overlap, falling from near 1 to near 0
    (sampled at bin centres, so neither end is exactly 0 or 1 and both chunks contribute everywhere).
    The incoming chunk gets ``1 - w``."""
    if fade not in FADES:
        raise ValueError(f"fade must be one of {FADES}, got {fade!r}")
    t = (torch.arange(length, dtype=torch.float64) + 0.5) / length
    fade_in = torch.sin(0.5 * math.pi * t) ** 2 if fade == "hann" else t
    return (1.0 - fade_in).to(torch.float32)


def _as_mixture(mixture: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A mono float mixture as a float32 CPU tensor; integer PCM, multichannel, empty or non-finite input
    is refused here, with the reason, instead of surfacing as a NaN stem from the first chunk."""
    x = torch.as_tensor(mixture)
    if not x.is_floating_point():
        raise ValueError(f"mixture: expected float samples in [-1, 1], got {x.dtype} (scale integer PCM first, "
                         "or load the file with duotok.audio.io.load_audio)")
    if x.dim() != 1:
        raise ValueError(f"mixture: expected mono audio of shape (samples,), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError("mixture: empty audio")
    x = x.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("mixture: contains NaN or inf samples")
    return x


def _join(buffer: torch.Tensor, new: torch.Tensor, start: int, written: int,
          weights: torch.Tensor | None) -> None:
    """Write one chunk's stem ``new`` (covering ``[start, start + len(new))``) into ``buffer``, whose
    samples before ``written`` are final except for the overlap ``[start, written)``: that holds the
    previous chunk's estimate and is crossfaded in place as ``new + w · (old - new)`` (``weights``:
    :func:`fade_out` of the overlap's length; ``None`` when there is no overlap)."""
    overlap = written - start
    if weights is not None:
        head = new[:overlap]
        buffer[start:written].sub_(head).mul_(weights).add_(head)
    buffer[written: start + new.numel()] = new[overlap:]


def separate_long(separator: Separator, mixture: torch.Tensor | np.ndarray, chunk_seconds: float,
                  overlap_seconds: float, fade: str = "hann") -> dict[str, torch.Tensor]:
    """Run ``separator`` on ``mixture`` ``(T,)`` (at ``separator.sample_rate``) in chunks of
    ``chunk_seconds`` overlapping by ``overlap_seconds``, crossfaded (see the module docstring); returns
    ``{stem: (T,) float32}`` in :data:`STEMS` order.

    A mixture no longer than one chunk is separated in one call, unpadded. Every chunk's output is
    checked with :func:`check_stems` (named by the separator and the chunk's time), and the separator
    never sees more than ``chunk_seconds`` of audio at once. Raises ``ValueError`` for an overlap not
    shorter than the chunk, durations that are not whole samples, an unknown ``fade`` or a bad mixture."""
    if fade not in FADES:
        raise ValueError(f"fade must be one of {FADES}, got {fade!r}")
    sample_rate = int(separator.sample_rate)
    chunk, overlap = chunk_geometry(sample_rate, chunk_seconds, overlap_seconds)
    x = _as_mixture(mixture)
    n = x.numel()
    name = getattr(separator, "name", type(separator).__name__)
    out = {stem: torch.empty(n, dtype=torch.float32) for stem in STEMS}
    written = 0
    with torch.no_grad():       # a separator returning tensors with a graph must not chain it across chunks
        for start in chunk_starts(n, chunk, overlap):
            end = min(start + chunk, n)
            who = f"{name} (chunk at {start / sample_rate:.2f}-{end / sample_rate:.2f} s)"
            stems = check_stems(separator.separate(x[start:end]), end - start, who)
            weights = fade_out(written - start, fade) if written > start else None
            for stem, y in stems.items():
                _join(out[stem], y.detach().to("cpu"), start, written, weights)
            del stems
            written = end
    return out
