"""Character vocabulary, greedy CTC decoding, CER and window lyrics."""

from __future__ import annotations

import math

import pytest
import torch

from duotok.text import CharVocab, character_error_rate, edit_distance, lyrics_targets_for_window

VOCAB = CharVocab()


def test_layout_blank_space_apostrophe():
    assert VOCAB.symbols[:5] == ("<blank>", " ", "'", "a", "b")
    assert len(VOCAB) == 3 + 26 + 12


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Meine Seel erhebt", "meine seel erhebt"),
        ("ch'io più", "ch'io più"),
        ("  Kyrie-eleison,  GLORIA!\n", "kyrie eleison gloria"),
        ("Straße über’s Öl 42", "straße über's öl"),
        ("garçon", "garcon"),
    ],
)
def test_normalise_and_round_trip(text, expected):
    ids = VOCAB.encode(text)
    assert 0 not in ids
    assert VOCAB.decode(ids) == expected == VOCAB.normalize(text)


def _one_hot_path(path: str) -> torch.Tensor:
    """Scores whose argmax spells ``path``; ``-`` is the blank."""
    ids = [0 if c == "-" else VOCAB.encode(c)[0] if c != " " else 1 for c in path]
    return torch.nn.functional.one_hot(torch.tensor(ids), len(VOCAB)).float().log_softmax(-1)


def test_greedy_ctc_decode_collapses_repeats_and_drops_blanks():
    assert VOCAB.greedy_ctc_decode(_one_hot_path("aa-b")) == ["ab"]
    assert VOCAB.greedy_ctc_decode(_one_hot_path("a-a--bb")) == ["aab"]
    assert VOCAB.greedy_ctc_decode(_one_hot_path(" -ll-a  la- ")) == ["la la"]
    batch = torch.stack([_one_hot_path("aa-bcc"), _one_hot_path("--c--d")])
    assert VOCAB.greedy_ctc_decode(batch, lengths=[4, 6]) == ["ab", "cd"]


def test_edit_distance_and_cer():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3
    assert character_error_rate(["gloria"], ["gloria"]) == 0.0
    assert character_error_rate(["gloria"], ["glorio"]) == pytest.approx(1 / 6)  # substitution
    assert character_error_rate(["gloria"], ["glorria"]) == pytest.approx(1 / 6)  # insertion
    assert character_error_rate(["abc", "de"], ["", ""]) == 1.0  # empty hypothesis
    assert character_error_rate(["abcd", "e"], ["abcd", "x"]) == pytest.approx(1 / 5)  # pooled, not averaged
    assert character_error_rate([""], [""]) == 0.0 and math.isinf(character_error_rate([""], ["a"]))
    with pytest.raises(ValueError):
        character_error_rate(["a"], [])


def test_lyrics_targets_for_window():
    syllables = [
        {"text": "Mei", "onset": 0.0, "offset": 0.4, "word": 0},
        {"text": "ne", "onset": 0.5, "offset": 0.9, "word": 0},
        {"text": "Seel", "onset": 1.0, "offset": 1.8, "word": 1},
        {"text": "er", "onset": 2.0, "offset": 2.4, "word": 2},
        {"text": "hebt", "onset": 2.5, "offset": 3.0, "word": 2},
    ]
    assert lyrics_targets_for_window(syllables, 0.0, 10.0) == "Meine Seel erhebt"
    assert lyrics_targets_for_window(syllables, 0.5, 2.0) == "ne Seel"  # onset 2.0 is outside [.5, 2)
    assert lyrics_targets_for_window(syllables, 3.1, 4.0) == ""
    no_words = [{k: v for k, v in s.items() if k != "word"} for s in syllables]
    assert lyrics_targets_for_window(no_words, 0.0, 1.0) == "Mei ne"
