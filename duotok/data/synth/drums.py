"""A drum-pattern generator: General-MIDI drum notes for several styles, fitted to the song's meter.

A style is a function of the bar length (in beats) returning hits as (position in beats, GM note,
velocity). Bars get humanised velocities and a few milliseconds of timing jitter; every fourth bar
ends with a fill and the first downbeat gets a crash, which is what makes a pattern sound played.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from duotok.data.synth.score import NoteEvent

KICK, SIDESTICK, SNARE, CLAP, HAT, HAT_OPEN, CRASH, RIDE = 36, 37, 38, 39, 42, 46, 49, 51
TOM_LO, TOM_MID, TOM_HI, SHAKER, CLAVES = 45, 47, 50, 70, 75

Hit = tuple[float, int, int]


def _rock(beats: int) -> list[Hit]:
    hits: list[Hit] = [(i / 2, HAT, 70 if i % 2 else 85) for i in range(2 * beats)]
    for b in range(beats):
        if beats == 3:
            hits.append((b, KICK if b == 0 else SNARE, 100 if b == 0 else 80))
        else:
            hits.append((b, KICK if b % 2 == 0 else SNARE, 100 if b % 2 == 0 else 95))
    hits.append((beats - 0.5, KICK, 75))
    return hits


def _ballad(beats: int) -> list[Hit]:
    hits: list[Hit] = [(b, RIDE, 60) for b in range(beats)]
    hits.append((0, KICK, 85))
    hits.append((beats // 2 if beats > 3 else 1, SIDESTICK, 70))
    return hits


def _shuffle(beats: int) -> list[Hit]:
    hits: list[Hit] = []
    for b in range(beats):
        hits += [(b, HAT, 80), (b + 2 / 3, HAT, 60)]
        hits.append((b, KICK if b % 2 == 0 else SNARE, 95 if b % 2 == 0 else 90))
    return hits


def _disco(beats: int) -> list[Hit]:
    hits: list[Hit] = [(b, KICK, 105) for b in range(beats)]
    hits += [(b + 0.5, HAT_OPEN, 70) for b in range(beats)]
    hits += [(b, CLAP, 85) for b in range(1, beats, 2)]
    return hits


def _bossa(beats: int) -> list[Hit]:
    hits: list[Hit] = [(i / 2, SHAKER, 55 + 10 * (i % 2)) for i in range(2 * beats)]
    hits += [(b, KICK, 80) for b in range(0, beats, 2)] + [(b + 1.5, KICK, 70) for b in range(0, beats - 1, 2)]
    clave = [0, 1.5, 3] if beats >= 4 else [0, 1.5]
    hits += [(c, CLAVES, 75) for c in clave if c < beats]
    return hits


STYLES: dict[str, Callable[[int], list[Hit]] | None] = {
    "none": None,
    "rock": _rock,
    "ballad": _ballad,
    "shuffle": _shuffle,
    "disco": _disco,
    "bossa": _bossa,
}


def _fill(beats: int) -> list[Hit]:
    start = max(0, beats - 1)
    toms = [TOM_HI, TOM_HI, TOM_MID, TOM_LO]
    return [(start + i / 4, toms[i], 90) for i in range(4)]


def drum_track(
    style: str,
    duration: float,
    seconds_per_beat: float,
    beats_per_bar: int,
    rng: np.random.Generator,
    first_bar_offset: float = 0.0,
) -> list[NoteEvent]:
    """GM drum hits (``pitch`` = drum note) for ``duration`` seconds of music."""
    if style not in STYLES:
        raise ValueError(f"unknown drum style {style!r}; known: {sorted(STYLES)}")
    pattern = STYLES[style]
    if pattern is None:
        return []
    beats_per_bar = max(2, int(round(beats_per_bar)))
    bar_seconds = beats_per_bar * seconds_per_beat
    n_bars = int(np.ceil((duration - first_bar_offset) / bar_seconds))
    events: list[NoteEvent] = []
    for bar in range(n_bars):
        hits = list(pattern(beats_per_bar))
        if bar % 4 == 3:
            hits = [h for h in hits if h[0] < beats_per_bar - 1] + _fill(beats_per_bar)
        if bar == 0:
            hits.append((0, CRASH, 90))
        for pos, note, vel in hits:
            t = first_bar_offset + bar * bar_seconds + pos * seconds_per_beat + rng.normal(0, 0.004)
            if 0 <= t < duration:
                v = int(np.clip(vel + rng.normal(0, 6), 30, 127))
                events.append(NoteEvent(note, max(0.0, t), 0.1, v))
    events.sort(key=lambda e: (e.onset, e.pitch))
    return events
