"""The espeak-ng + WORLD singer: stretching, formant warp and — the point — sung pitch."""

from __future__ import annotations

import numpy as np
import pytest

from duotok.data.checks import note_pitch_errors, track_pitch
from duotok.data.synth.singing import (
    VOICES,
    SungSyllable,
    _stretch_plan,
    espeak_available,
    sing,
    warp_formants,
)

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (make setup installs it)")


def test_stretch_plan_keeps_consonants_and_sings_the_nucleus():
    voiced = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0], dtype=bool)  # 3 onset, 4 vowel, 2 coda frames
    plan, sung = _stretch_plan(voiced, 40)
    assert plan.size == sung.size == 40
    assert list(plan[:3]) == [0, 1, 2], "onset consonant keeps its natural length"
    assert list(plan[-2:]) == [7, 8], "coda keeps its natural length"
    assert sung[3:-2].all() and not sung[:3].any() and not sung[-2:].any()
    assert np.all(np.diff(plan) >= 0), "time never runs backwards"


def test_stretch_plan_of_unvoiced_syllable_sings_nothing():
    plan, sung = _stretch_plan(np.zeros(10, dtype=bool), 25)
    assert plan.size == 25 and not sung.any()


def test_warp_formants_identity_and_shift():
    sp = np.zeros((2, 101))
    sp[:, 20] = 1.0
    assert warp_formants(sp, 1.0) is sp
    warped = warp_formants(sp, 1.25)
    assert np.argmax(warped[0]) == 25, "a peak at bin 20 moves to bin 25 for a 1.25 warp"


@pytest.mark.parametrize("voice_name", sorted(VOICES))
def test_sung_pitch_matches_the_score(voice_name):
    voice = VOICES[voice_name]
    pitches = [67, 69, 71, 72, 74, 72]
    syllables, notes = [], []
    for i, (text, p) in enumerate(zip(["Al", "lein", "zu", "dir", "Herr", "Christ"], pitches, strict=True)):
        pitch = p + 12 * voice.octave_shift
        syllables.append(SungSyllable(text, (pitch,), (0.5 * i,), (0.45,)))
        notes.append({"pitch": pitch, "onset": 0.5 * i, "duration": 0.45})
    audio = sing(syllables, 3.5, "de", voice, 16000, np.random.default_rng(0))
    assert audio.shape == (56000,) and np.isfinite(audio).all()
    assert 0.5 < np.max(np.abs(audio)) <= 0.9 + 1e-9
    f0, times = track_pitch(audio, 16000)
    err = note_pitch_errors(f0, times, notes)
    assert np.mean(np.abs(err) <= 50) >= 5 / 6, f"cents errors {np.round(err, 1)}"
