"""Song plans from real music21 scores, and the drum patterns."""

from __future__ import annotations

import numpy as np
import pytest
from music21 import corpus

from duotok.data.synth.drums import STYLES, drum_track
from duotok.data.synth.score import clean_syllable, plan_song, words_from_syllables


@pytest.fixture(scope="module")
def chorale():
    return corpus.parse("bach/bwv10.7.mxl")


def test_plan_timings_follow_the_tempo_and_the_cut(chorale):
    plan = plan_song(chorale, "bach/bwv10.7.mxl", base_tempo_qpm=90.0, transpose=2, max_seconds=20.0)
    spq = 60 / 90
    assert plan.duration <= 20.0 + 1e-9
    # the cut is on a bar line: a whole number of bars
    bars = plan.duration / (plan.quarters_per_bar * spq)
    assert abs(bars - round(bars)) < 1e-6 or plan.duration == pytest.approx(float(chorale.highestTime) * spq)
    onsets = [s.onset for s in plan.syllables]
    assert onsets == sorted(onsets)
    assert all(0 <= s.onset < s.offset <= plan.duration + 1e-9 for s in plan.syllables)
    # onsets lie on the quarter grid scaled by the tempo (chorale melodies move in quarters/eighths)
    assert all(abs((o / spq) * 2 - round((o / spq) * 2)) < 1e-6 for o in onsets)
    assert plan.syllables[0].text == "Mei"
    assert plan.bass and all(24 <= n.pitch <= 60 for n in plan.bass), "bass is kept in the bass register"


def test_transposition_shifts_every_pitch(chorale):
    a = plan_song(chorale, "w", base_tempo_qpm=90.0, transpose=0, max_seconds=15.0)
    b = plan_song(chorale, "w", base_tempo_qpm=90.0, transpose=3, max_seconds=15.0)
    assert [p + 3 for s in a.syllables for p in s.pitches] == [p for s in b.syllables for p in s.pitches]


def test_words_join_syllables(chorale):
    plan = plan_song(chorale, "w", base_tempo_qpm=90.0, transpose=0, max_seconds=30.0)
    words = words_from_syllables(plan.syllables)
    text = " ".join(w["text"] for w in words)
    assert text.startswith("Meine Seel erhebt den Herren")
    assert all(w["onset"] < w["offset"] for w in words)


def test_clean_syllable_strips_punctuation():
    assert clean_syllable("Herr,") == "Herr"
    assert clean_syllable("(Christ!)") == "Christ"


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("beats", [3, 4])
def test_drum_styles_fit_the_song(style, beats):
    events = drum_track(style, 12.0, 0.5, beats, np.random.default_rng(0))
    if STYLES[style] is None:
        assert events == []
        return
    assert events, f"{style} produced no hits"
    assert all(0 <= e.onset < 12.0 for e in events)
    assert all(27 <= e.pitch <= 87 for e in events), "GM percussion keys"
    assert min(e.onset for e in events) < 0.05, "the song starts with a hit"


def test_unknown_drum_style_is_an_error():
    with pytest.raises(ValueError, match="unknown drum style"):
        drum_track("polka", 5.0, 0.5, 4, np.random.default_rng(0))


def test_language_guess():
    from duotok.data.synth.catalog import guess_language

    assert guess_language("bach", "Nun danket alle Gott") == "de"
    assert guess_language("trecento", "Kyrie eleison, Christe eleison") == "la"
    assert guess_language("trecento", "Non so che sia amor, ma il cor mi duole") == "it"
