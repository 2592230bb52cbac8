"""The duosynth tag vocabulary: things a listener can hear, derived from how each song was made.

The tagging probe (SPEC §2) trains on these. Every tag is decided by the generator, so labels are
exact; the vocabulary is fixed (not "whatever occurred") so that probes trained on different
corpora share output units.
"""

from __future__ import annotations

from duotok.data.synth.drums import STYLES
from duotok.data.synth.instruments import BASS_FAMILIES, OTHER_FAMILIES

VOICE_TAGS = ("voice_tenor", "voice_soprano")
LANGUAGE_TAGS = ("lang_de", "lang_it", "lang_la")  # what music21's scores with lyrics are sung in
DRUM_TAGS = tuple(f"drums_{s}" for s in STYLES)
TEMPO_TAGS = ("tempo_slow", "tempo_medium", "tempo_fast")
MODE_TAGS = ("mode_major", "mode_minor")
METER_TAGS = ("meter_duple", "meter_triple", "meter_compound")
OTHER_TAGS = tuple(OTHER_FAMILIES)
BASS_TAGS = tuple(BASS_FAMILIES)
BALANCE_TAGS = ("vocal_prominent", "vocal_balanced")

TAG_VOCABULARY: tuple[str, ...] = (
    VOICE_TAGS + LANGUAGE_TAGS + DRUM_TAGS + TEMPO_TAGS + MODE_TAGS + METER_TAGS + OTHER_TAGS + BASS_TAGS
    + BALANCE_TAGS
)

TEMPO_SLOW_BELOW = 80.0    # quarter notes per minute
TEMPO_FAST_ABOVE = 110.0
VOCAL_PROMINENT_DB = 3.0   # vocal-to-accompaniment ratio at or above this → "vocal_prominent"


def tempo_tag(qpm: float) -> str:
    if qpm < TEMPO_SLOW_BELOW:
        return "tempo_slow"
    return "tempo_fast" if qpm > TEMPO_FAST_ABOVE else "tempo_medium"


def meter_tag(time_signature: str) -> str:
    num, den = (int(x) for x in time_signature.split("/"))
    if den == 8 and num % 3 == 0 and num > 3:
        return "meter_compound"
    return "meter_triple" if num % 3 == 0 else "meter_duple"


def song_tags(
    *, voice: str, language: str, drum_style: str, tempo_qpm: float, mode: str, time_signature: str,
    other_families: list[str], bass_family: str, vocal_to_accompaniment_db: float,
) -> list[str]:
    tags = [f"voice_{voice}", f"lang_{language}", f"drums_{drum_style}", tempo_tag(tempo_qpm),
            f"mode_{mode}", meter_tag(time_signature), *other_families, bass_family,
            "vocal_prominent" if vocal_to_accompaniment_db >= VOCAL_PROMINENT_DB else "vocal_balanced"]
    unknown = [t for t in tags if t not in TAG_VOCABULARY]
    if unknown:
        raise ValueError(f"tags outside the vocabulary: {unknown}")
    return sorted(set(tags), key=TAG_VOCABULARY.index)
