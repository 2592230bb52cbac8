"""Soundfont rendering of note lists with tinysoundfont and the General-MIDI soundfont that ships
inside the pinned ``pretty_midi`` wheel (TimGM6mb.sf2), so every machine renders the same bytes
without a system package. Instrument families are the tag vocabulary's accompaniment tags."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from duotok.data.synth.score import NoteEvent

# General-MIDI programs (0-based) per audible family.
OTHER_FAMILIES: dict[str, tuple[int, ...]] = {
    "piano": (0, 1, 4),            # acoustic grand, bright, electric piano
    "organ": (16, 19),             # drawbar, church organ
    "guitar": (24, 25, 26),        # nylon, steel, jazz
    "strings": (48, 49, 42),       # string ensembles, cello
    "brass": (61, 57),             # brass section, trombone
    "woodwinds": (68, 71, 73),     # oboe, clarinet, flute
    "synth_pad": (89, 90),         # warm pad, polysynth
}
BASS_FAMILIES: dict[str, tuple[int, ...]] = {
    "bass_acoustic": (32,),
    "bass_electric": (33, 34, 35),
    "bass_synth": (38, 39),
}
# Families whose sound is sustained: give their notes full length; plucked/struck ones decay anyway.
_DRUM_CHANNEL = 9


@functools.cache
def soundfont_path() -> Path:
    import pretty_midi

    path = Path(pretty_midi.__file__).with_name("TimGM6mb.sf2")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: General-MIDI soundfont missing from the pretty_midi wheel")
    return path


def render_notes(
    tracks: list[tuple[int, list[NoteEvent]]],
    duration: float,
    sample_rate: int,
    drums: bool = False,
) -> np.ndarray:
    """Render (program, notes) tracks into one mono float64 signal of ``duration`` seconds.

    Notes are scheduled sample-accurately: the synth is advanced to each event's sample and the
    event applied, which is deterministic (no real-time callback)."""
    import tinysoundfont

    n_total = int(round(duration * sample_rate))
    synth = tinysoundfont.Synth(samplerate=sample_rate, gain=-3)
    sfid = synth.sfload(str(soundfont_path()))
    events: list[tuple[int, int, int, int, int]] = []  # (sample, order, kind, channel, key/vel)
    for ch_index, (program, notes) in enumerate(tracks):
        channel = _DRUM_CHANNEL if drums else ch_index if ch_index < _DRUM_CHANNEL else ch_index + 1
        synth.program_select(channel, sfid, 128 if drums else 0, 0 if drums else program, is_drums=drums)
        for n in notes:
            key = int(round(n.pitch))
            if not 0 <= key <= 127:
                continue
            on = int(round(n.onset * sample_rate))
            off = int(round((n.onset + n.duration) * sample_rate))
            if on >= n_total:
                continue
            # note-offs sort before note-ons at the same sample so repeated notes retrigger
            events.append((on, 1, key, channel, n.velocity))
            events.append((max(on + 1, min(off, n_total)), 0, key, channel, 0))
    events.sort()
    out = np.zeros((n_total, 2), dtype=np.float32)
    pos = 0
    for sample, kind, key, channel, vel in events:
        sample = min(sample, n_total)
        if sample > pos:
            buf = synth.generate(sample - pos)
            out[pos:sample] = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
            pos = sample
        if kind == 1:
            synth.noteon(channel, key, vel)
        else:
            synth.noteoff(channel, key)
    if pos < n_total:
        buf = synth.generate(n_total - pos)
        out[pos:] = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
    return out.mean(axis=1).astype(np.float64)
