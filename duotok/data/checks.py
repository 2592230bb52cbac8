"""Checks that a generated (or real) stem corpus is what it claims to be. The corpus notebook runs
them on every song and writes the results to ``reports/metrics/corpus.json``; the tests run them on
the smoke corpus. Each returns plain numbers so a failure is visible, not silently absorbed."""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_NOTE_SECONDS = 0.15


def check_song_consistency(song: dict[str, Any], sample_rate: int) -> dict[str, Any]:
    """Stems sum to the mixture; lyric timings lie inside the audio; the vocal stem is audible
    during sung syllables. ``song`` is what ``duotok.data.load_song`` returns at ``sample_rate``.
    (Real data has no lyrics metadata: its syllable counts are simply zero.)"""
    mixture, stems, meta = song["mixture"], song["stems"], song["meta"]
    sr = sample_rate
    duration = mixture.shape[-1] / sr
    residual = float(np.max(np.abs(mixture - stems.sum(axis=0)))) if mixture.size else 0.0
    syllables = meta.get("lyrics", {}).get("syllables", [])
    inside = sum(1 for s in syllables if 0.0 <= s["onset"] < s["offset"] <= duration + 1e-6)
    vocals = stems[0]
    frame_rms = _frame_rms(vocals, sr)
    ref = float(np.percentile(frame_rms, 95)) if frame_rms.size else 0.0
    audible = 0
    for s in syllables:
        a, b = int(s["onset"] * 100), max(int(s["onset"] * 100) + 1, int(s["offset"] * 100))
        seg = frame_rms[a:b]
        if seg.size and ref > 0 and 20 * np.log10(seg.max() / ref + 1e-12) > -30.0:
            audible += 1
    return {
        "duration": duration,
        "mixture_residual": residual,
        "n_syllables": len(syllables),
        "syllables_inside_audio": inside,
        "syllables_audible": audible,
    }


def _frame_rms(x: np.ndarray, sr: int, rate: int = 100) -> np.ndarray:
    hop = sr // rate
    n = x.size // hop
    return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1)) if n else np.zeros(0)


def track_pitch(vocals: np.ndarray, sr: int, fmin: float = 65.0, fmax: float = 1050.0,
                hop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """pyin f0 (Hz, NaN where unvoiced) and frame times of a vocal stem at 100 frames/s."""
    import librosa

    hop = hop or sr // 100
    f0, _, _ = librosa.pyin(vocals.astype(np.float64), fmin=fmin, fmax=fmax, sr=sr, hop_length=hop,
                            frame_length=4 * hop * 4 if sr >= 16000 else 2048)
    times = np.arange(f0.size) * hop / sr
    return f0, times


def note_pitch_errors(f0: np.ndarray, times: np.ndarray, notes: list[dict[str, float]]) -> np.ndarray:
    """Per-note error in cents between the median tracked pitch in the note's steady part and the
    score pitch; NaN where the tracker found no voiced frame. Notes shorter than 150 ms are skipped
    (their pitch is mostly transition)."""
    errors = []
    for n in notes:
        if n["duration"] < MIN_NOTE_SECONDS:
            continue
        a, b = n["onset"] + 0.06, n["onset"] + n["duration"] - 0.04
        seg = f0[(times >= a) & (times < b)]
        seg = seg[np.isfinite(seg)]
        if seg.size == 0:
            errors.append(np.nan)
            continue
        target = 440.0 * 2 ** ((n["pitch"] - 69) / 12)
        errors.append(1200 * np.log2(np.median(seg) / target))
    return np.asarray(errors, dtype=np.float64)


def pitch_accuracy(vocals: np.ndarray, sr: int, notes: list[dict[str, float]],
                   tolerance_cents: float = 50.0) -> dict[str, float]:
    """Fraction of (long enough) sung notes whose tracked pitch is within ``tolerance_cents`` of the score."""
    f0, times = track_pitch(vocals, sr)
    err = note_pitch_errors(f0, times, notes)
    n = err.size
    within = int(np.sum(np.abs(err) <= tolerance_cents)) if n else 0
    finite = err[np.isfinite(err)]
    return {
        "notes_checked": int(n),
        "notes_within_tolerance": within,
        "fraction_within_tolerance": within / n if n else float("nan"),
        "median_abs_error_cents": float(np.median(np.abs(finite))) if finite.size else float("nan"),
        "tolerance_cents": tolerance_cents,
    }


def corpus_checks(records: list, sample_rate: int, n_pitch_check_songs: int,
                  pitch_split: str = "test") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run :func:`check_song_consistency` on every song and the pitch check on the first
    ``n_pitch_check_songs`` of ``pitch_split``. Returns (per-song rows, summary)."""
    from duotok.data.stems import load_song

    rows = [{"id": r.id, **check_song_consistency(load_song(r, sample_rate), sample_rate)} for r in records]
    pitch_records, errors = [], []
    for r in (r for r in records if r.split == pitch_split):
        if len(pitch_records) == n_pitch_check_songs:
            break
        song = load_song(r, sample_rate)
        if not song["meta"].get("notes", {}).get("vocals"):
            continue  # real data: no score to compare with
        pitch_records.append(r)
        f0, times = track_pitch(song["stems"][0], sample_rate)
        errors.append(note_pitch_errors(f0, times, song["meta"]["notes"]["vocals"]))
    err = np.concatenate(errors) if errors else np.zeros(0)
    n_syl = sum(r["n_syllables"] for r in rows)
    finite = err[np.isfinite(err)]
    summary = {
        "n_songs": len(rows),
        "max_mixture_residual": max((r["mixture_residual"] for r in rows), default=0.0),
        "syllables": n_syl,
        "fraction_syllables_inside_audio": sum(r["syllables_inside_audio"] for r in rows) / n_syl if n_syl else None,
        "fraction_syllables_audible": sum(r["syllables_audible"] for r in rows) / n_syl if n_syl else None,
        "pitch_check": {
            "songs": len(pitch_records),
            "notes": int(err.size),
            "fraction_within_50_cents": round(float(np.mean(np.abs(err) <= 50.0)), 4) if err.size else None,
            "median_abs_error_cents": round(float(np.median(np.abs(finite))), 2) if finite.size else None,
        },
    }
    return rows, summary
