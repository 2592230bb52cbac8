"""From a music21 score to a *song plan*: the vocal syllables with exact timings and the note lists of
the accompaniment parts, in seconds, after tempo choice, transposition and cutting to length.

Kept free of any audio so that the timing logic can be tested on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from duotok.data.synth.singing import SungSyllable

_PUNCT = re.compile(r"[^\w'’-]+", re.UNICODE)


@dataclass
class NoteEvent:
    """A pitched note in seconds (MIDI pitch, already transposed)."""

    pitch: float
    onset: float
    duration: float
    velocity: int = 80

    def as_dict(self) -> dict[str, float]:
        return {"pitch": float(self.pitch), "onset": round(self.onset, 6), "duration": round(self.duration, 6)}


@dataclass
class LyricSyllable:
    text: str              # as written in the score (punctuation stripped)
    syllabic: str          # single | begin | middle | end (music21/MusicXML semantics)
    pitches: list[float]
    onsets: list[float]
    durations: list[float]

    @property
    def onset(self) -> float:
        return self.onsets[0]

    @property
    def offset(self) -> float:
        return self.onsets[-1] + self.durations[-1]


@dataclass
class SongPlan:
    """Everything about a song that does not depend on synthesis."""

    work: str
    title: str
    seconds_per_quarter: float
    quarters_per_bar: float
    beat_quarters: float             # the beat unit in quarters (1 for x/4, 1.5 for compound x/8, 2 for x/2)
    time_signature: str
    duration: float                  # seconds, after cutting (the audio adds a release tail)
    syllables: list[LyricSyllable]
    bass: list[NoteEvent]
    others: list[list[NoteEvent]]    # one list per inner part
    key_tonic: str = "C"
    key_mode: str = "major"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tempo_bpm(self) -> float:
        """Tempo in quarter notes per minute."""
        return 60.0 / self.seconds_per_quarter

    def sung_syllables(self, octave_shift: int) -> list[SungSyllable]:
        return [
            SungSyllable(
                text=s.text,
                pitches=tuple(p + 12 * octave_shift for p in s.pitches),
                onsets=tuple(s.onsets),
                durations=tuple(s.durations),
            )
            for s in self.syllables
        ]


def clean_syllable(text: str) -> str:
    """Strip punctuation and editorial marks from a lyric syllable; keep letters and apostrophes."""
    text = text.replace("_", " ").strip()
    return _PUNCT.sub("", text).strip("-'’")


def lyric_counts(score) -> list[int]:
    return [sum(1 for n in part.flatten().notes if getattr(n, "lyric", None)) for part in score.parts]


def choose_vocal_part(score) -> int:
    """The part to sing: the highest (first-listed) part carrying at least 70 % of the most lyric
    syllables any part has — the tune is usually on top, and in madrigals every part has text."""
    counts = lyric_counts(score)
    best = max(counts)
    return next(i for i, c in enumerate(counts) if c >= 0.7 * best)


def _beat_quarters(ts) -> float:
    if ts is None:
        return 1.0
    if ts.denominator == 8 and ts.numerator % 3 == 0:
        return 1.5
    return 4.0 / ts.denominator


def _part_notes(part, spq: float, transpose: int, cut_q: float) -> list[NoteEvent]:
    events: list[NoteEvent] = []
    for n in part.stripTies().flatten().notes:
        start = float(n.offset)
        if start >= cut_q:
            continue
        dur_q = min(float(n.quarterLength), cut_q - start)
        if dur_q <= 0:
            continue
        pitches = [p.midi for p in n.pitches]
        for p in pitches:
            events.append(NoteEvent(p + transpose, start * spq, dur_q * spq))
    events.sort(key=lambda e: (e.onset, e.pitch))
    return events


def _vocal_syllables(part, spq: float, transpose: int, cut_q: float) -> list[LyricSyllable]:
    """Group the vocal part's notes into syllables: a note with a lyric starts a syllable; following
    notes without one extend it (a melisma), unless a rest intervenes, in which case they are
    sung on a neutral vowel ("a") so that every sung note is in the plan."""
    syllables: list[LyricSyllable] = []
    prev_end_q = None
    for n in part.stripTies().flatten().notes:
        start = float(n.offset)
        if start >= cut_q:
            break
        dur_q = min(float(n.quarterLength), cut_q - start)
        if dur_q <= 0 or not n.pitches:
            continue
        pitch = float(max(p.midi for p in n.pitches)) + transpose
        lyric = n.lyrics[0] if getattr(n, "lyrics", None) else None
        text = clean_syllable(lyric.text) if lyric is not None and lyric.text else ""
        contiguous = prev_end_q is not None and abs(start - prev_end_q) < 1e-6
        if text:
            syllabic = lyric.syllabic or "single"
            syllables.append(LyricSyllable(text, syllabic, [pitch], [start * spq], [dur_q * spq]))
        elif syllables and contiguous:
            s = syllables[-1]
            s.pitches.append(pitch)
            s.onsets.append(start * spq)
            s.durations.append(dur_q * spq)
        else:
            syllables.append(LyricSyllable("a", "single", [pitch], [start * spq], [dur_q * spq]))
        prev_end_q = start + dur_q
    return syllables


def _cut_quarters(score, spq: float, max_seconds: float) -> float:
    """The last bar line at or before ``max_seconds`` (the end of the score if it is shorter)."""
    total_q = float(score.highestTime)
    if total_q * spq <= max_seconds:
        return total_q
    limit_q = max_seconds / spq
    measures = score.parts[0].getElementsByClass("Measure")
    cut = 0.0
    for m in measures:
        bar_end = float(m.offset + m.barDuration.quarterLength)
        if bar_end <= limit_q + 1e-6:
            cut = bar_end
        else:
            break
    return cut if cut > 0 else limit_q


def plan_song(
    score,
    work: str,
    *,
    base_tempo_qpm: float,
    transpose: int,
    max_seconds: float,
) -> SongPlan:
    """Build the song plan of one score. ``base_tempo_qpm`` is the tempo in quarter notes per minute."""
    spq = 60.0 / base_tempo_qpm
    ts = score.recurse().getElementsByClass("TimeSignature").first()
    cut_q = _cut_quarters(score, spq, max_seconds)
    vocal_idx = choose_vocal_part(score)
    parts = list(score.parts)
    # The bass is the lowest-sounding non-vocal part.
    others_idx = [i for i in range(len(parts)) if i != vocal_idx]

    def mean_pitch(i: int) -> float:
        ps = [p.midi for n in parts[i].flatten().notes for p in n.pitches]
        return sum(ps) / len(ps) if ps else 1e9

    bass_idx = min(others_idx, key=mean_pitch)
    inner_idx = [i for i in others_idx if i != bass_idx]
    bass = _part_notes(parts[bass_idx], spq, transpose, cut_q)
    # keep the bass in the bass register (E1..G3)
    if bass:
        mean = sum(e.pitch for e in bass) / len(bass)
        shift = -12 * max(0, round((mean - 45) / 12))
        for e in bass:
            e.pitch += shift
    others = [_part_notes(parts[i], spq, transpose, cut_q) for i in inner_idx]
    try:
        k = score.analyze("key")
        tonic = k.tonic.transpose(transpose).name
        mode = k.mode if k.mode in ("major", "minor") else "major"
    except Exception:  # noqa: BLE001 — key analysis can fail on odd scores; default is harmless
        tonic, mode = "C", "major"
    return SongPlan(
        work=work,
        title=str(score.metadata.title) if score.metadata and score.metadata.title else work,
        seconds_per_quarter=spq,
        quarters_per_bar=float(ts.barDuration.quarterLength) if ts is not None else 4.0,
        beat_quarters=_beat_quarters(ts),
        time_signature=ts.ratioString if ts is not None else "4/4",
        duration=cut_q * spq,
        syllables=_vocal_syllables(parts[vocal_idx], spq, transpose, cut_q),
        bass=bass,
        others=[o for o in others if o],
        key_tonic=tonic,
        key_mode=mode,
        extra={"vocal_part": vocal_idx, "bass_part": bass_idx, "inner_parts": inner_idx},
    )


def words_from_syllables(syllables: list[LyricSyllable]) -> list[dict[str, Any]]:
    """Join syllables into words using MusicXML's syllabic marks (begin … middle … end)."""
    words: list[dict[str, Any]] = []
    current: list[int] = []
    for i, s in enumerate(syllables):
        current.append(i)
        if s.syllabic in ("single", "end") or i == len(syllables) - 1:
            words.append({
                "text": "".join(syllables[j].text for j in current),
                "onset": round(syllables[current[0]].onset, 6),
                "offset": round(syllables[current[-1]].offset, 6),
                "syllables": list(current),
            })
            current = []
    return words
