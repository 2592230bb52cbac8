"""Frame-level chroma (12 pitch classes) targets at the token rate.

Two sources, same output convention so a training target never depends on which one was used:

- :func:`chroma_from_notes` — exact, from the note lists the ``duosynth`` generator stores in
  ``meta.json`` (concatenate several stems' lists to get the accompaniment's harmony).
- :func:`chroma_from_audio` — the fallback for audio without notes (real music), via librosa.

Convention: frame ``i`` covers the time span ``[i / frame_rate, (i + 1) / frame_rate)`` (it is
*not* centred on ``i / frame_rate``). Each non-silent frame is scaled so its largest pitch class
is 1; silent frames are all zero. Output is ``(12, n_frames)`` float32, row 0 = C, row 9 = A.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

#: Overlaps shorter than this fraction of a frame are float round-off, not sound: a note ending at
#: exactly 0.52 s must not leak into the frame that starts at 0.52 s.
_OVERLAP_TOL = 1e-6

#: Frames whose chroma energy is this far below the loudest frame count as silent (-60 dB power).
_SILENCE_RATIO = 1e-6


def _normalise_frames(chroma: np.ndarray, threshold: float) -> np.ndarray:
    """Scale each frame (column) to max 1; frames whose max is <= threshold become all zero."""
    peak = chroma.max(axis=0, keepdims=True)
    active = peak > threshold
    out = np.where(active, chroma / np.where(active, peak, 1.0), 0.0)
    return out.astype(np.float32)


def _note_fields(index: int, note: Mapping[str, Any]) -> tuple[int, float, float]:
    """Validate one note dict; a malformed note is a generator bug, so say which one."""
    try:
        pitch, onset, duration = float(note["pitch"]), float(note["onset"]), float(note["duration"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"note {index} ({note!r}) needs numeric 'pitch', 'onset' and 'duration'") from exc
    if not all(math.isfinite(v) for v in (pitch, onset, duration)) or duration < 0:
        raise ValueError(f"note {index} ({note!r}) has a non-finite value or a negative duration")
    return int(round(pitch)) % 12, onset, duration


def chroma_from_notes(notes: Iterable[Mapping[str, Any]], n_frames: int, frame_rate: float) -> np.ndarray:
    """Chroma ``(12, n_frames)`` from notes ``{"pitch": midi, "onset": s, "duration": s}``.

    A note sounds over ``[onset, onset + duration)``; it contributes to frame ``i`` the fraction of
    the frame's span ``[i / frame_rate, (i + 1) / frame_rate)`` it overlaps (so a pitch class
    played twice at once, or held across the whole frame, weighs more than a passing note), and
    the frame is then normalised to max 1. A frame is therefore *active* for a pitch class exactly
    when some note of that class overlaps its span by a positive amount. Zero-length notes and the
    parts of notes outside ``[0, n_frames / frame_rate)`` are ignored. Pitches are rounded to the
    nearest semitone.
    """
    if n_frames < 0 or frame_rate <= 0:
        raise ValueError(f"need n_frames >= 0 and frame_rate > 0, got {n_frames}, {frame_rate}")
    chroma = np.zeros((12, n_frames), dtype=np.float64)
    for index, note in enumerate(notes):
        pitch_class, onset, duration = _note_fields(index, note)
        # Work in frame units: the note covers [start, end) frames.
        start, end = onset * frame_rate, (onset + duration) * frame_rate
        first = max(int(math.floor(start)), 0)
        last = min(int(math.ceil(end)), n_frames)  # exclusive
        if last <= first:
            continue
        frames = np.arange(first, last, dtype=np.float64)
        overlap = np.minimum(end, frames + 1.0) - np.maximum(start, frames)
        overlap[overlap < _OVERLAP_TOL] = 0.0
        chroma[pitch_class, first:last] += overlap
    return _normalise_frames(chroma, threshold=0.0)


def chroma_from_audio(
    audio: np.ndarray,
    sample_rate: int,
    frame_rate: float,
    n_frames: int | None = None,
    n_fft: int = 2048,
) -> np.ndarray:
    """Chroma ``(12, n_frames)`` estimated from mono audio, on the same frame grid as
    :func:`chroma_from_notes`.

    librosa's ``chroma_stft`` (unnormalised, tuning estimated) is computed at 4x the frame rate,
    and the analysis frames whose centre falls in ``[i / frame_rate, (i + 1) / frame_rate)`` are
    averaged into frame ``i``. Frames more than 60 dB below the loudest one are treated as silent
    (all zero). ``n_frames`` defaults to ``ceil(len(audio) * frame_rate / sample_rate)``.
    """
    import librosa  # slow to import; only needed here

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"chroma_from_audio expects mono (T,) audio, got shape {audio.shape}")
    if n_frames is None:
        n_frames = int(math.ceil(len(audio) * frame_rate / sample_rate))
    hop = max(1, int(round(sample_rate / (4 * frame_rate))))
    raw = librosa.feature.chroma_stft(
        y=audio, sr=sample_rate, n_fft=n_fft, hop_length=hop, center=True, norm=None
    )
    centres = np.arange(raw.shape[1]) * hop / sample_rate
    target = np.floor(centres * frame_rate + 1e-9).astype(np.int64)
    keep = target < n_frames
    sums = np.zeros((12, n_frames), dtype=np.float64)
    counts = np.zeros(n_frames, dtype=np.float64)
    np.add.at(sums.T, target[keep], raw[:, keep].T)
    np.add.at(counts, target[keep], 1.0)
    mean = sums / np.maximum(counts, 1.0)
    loudest = float(mean.max()) if mean.size else 0.0
    return _normalise_frames(mean, threshold=loudest * _SILENCE_RATIO)
