"""Scoring separators: excerpts, BSS-eval + reconstruction metrics per stem, the SiSEC summary, the RTF."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from duotok.errors import DatasetError
from duotok.separation import STEMS
from duotok.separation.evaluate import score_separator, stem_excerpts, summarize
from duotok.separation.mask_separators import OracleMaskSeparator

SR = 16000
SONGS = (("s1", "train", 1.0), ("t1", "test", 2.0), ("t2", "test", 1.5))


@pytest.fixture
def corpus(tmp_path, make_duosynth):
    return make_duosynth(tmp_path / "corpus", SONGS)


class Perfect:
    """Returns the true stems of each excerpt (looked up by its mixture): the best any system can do."""

    name = "perfect"
    sample_rate = SR

    def __init__(self, root, seconds):
        self.lookup = {ex.mixture.tobytes(): ex.stems for ex in stem_excerpts(root, "test", seconds, 9, SR)}

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        stems = self.lookup[mixture.numpy().tobytes()]
        return {s: torch.from_numpy(stems[i].copy()) for i, s in enumerate(STEMS)}


class Quarter:
    name = "mixture / 4"
    sample_rate = SR

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        return {s: mixture / 4 for s in STEMS}


def test_excerpts_are_the_round_trip_evaluations_centre_crops(corpus):
    from duotok.eval.roundtrip import held_out_excerpts

    ours = stem_excerpts(corpus, "test", 1.2, 5, SR)
    theirs = held_out_excerpts(corpus, "test", 1.2, 5, SR)
    assert [e.song_id for e in ours] == [e.song_id for e in theirs] == ["t1", "t2"]
    for a, b in zip(ours, theirs, strict=True):
        assert a.offset_seconds == b.offset_seconds > 0
        assert np.array_equal(a.mixture, b.mixture)
        assert a.stems.shape == (4, int(1.2 * SR))
        assert np.allclose(a.stems[0], b.vocal) and np.allclose(a.stems[1:].sum(axis=0), b.accompaniment, atol=1e-6)


def test_a_perfect_separator_scores_at_the_top_and_mixture_over_four_far_below(corpus):
    perfect = score_separator(Perfect(corpus, 1.2), corpus, "test", n_songs=2, seconds=1.2)
    assert list(perfect.columns[:3]) == ["system", "song", "stem"]
    assert len(perfect) == 2 * len(STEMS) and set(perfect["stem"]) == set(STEMS)
    assert (perfect["sdr"] > 100).all()                  # museval: inf for an exact estimate
    assert (perfect["mel_l1"].abs() < 1e-6).all()
    assert (perfect["visqol"] > 4.5).all()
    quarter = score_separator(Quarter(), corpus, "test", n_songs=2, seconds=1.2, metrics=("sdr", "sir", "mel_l1"))
    assert list(quarter.columns[-3:]) == ["sdr", "sir", "mel_l1"] and "visqol" not in quarter
    assert (quarter["sdr"] < 10).all() and (quarter["mel_l1"] > 0.1).all()
    # The real-time factor is measured per song and in total.
    for scores in (perfect, quarter):
        assert (scores["rtf"] > 0).all() and scores.attrs["rtf"] > 0
        assert math.isclose(scores.attrs["audio_seconds"], 2 * 1.2)
        assert math.isclose(scores.attrs["rtf"], scores.attrs["compute_seconds"] / scores.attrs["audio_seconds"])


def test_the_oracle_is_scored_with_its_references(corpus):
    oracle = score_separator(OracleMaskSeparator(SR), corpus, "test", n_songs=2, seconds=1.2, metrics=("sdr",))
    quarter = score_separator(Quarter(), corpus, "test", n_songs=2, seconds=1.2, metrics=("sdr",))
    assert oracle["system"].iloc[0].startswith("oracle")
    assert oracle["sdr"].mean() > quarter["sdr"].mean() + 5


def test_summarize_follows_the_sisec_convention():
    rows = []
    for song, base in (("a", 0.0), ("b", 2.0), ("c", 10.0)):
        for i, stem in enumerate(STEMS):
            value = float("nan") if (song == "c" and stem == "drums") else base + i
            rows.append({"system": "toy", "song": song, "stem": stem, "rtf": 0.5, "sdr": value, "mel_l1": 1.0})
    summary = summarize(pd.DataFrame(rows))
    assert summary["system"] == "toy" and summary["n_songs"] == 3 and summary["rtf"] == 0.5
    assert list(summary["stems"]) == list(STEMS)
    vocals = summary["stems"]["vocals"]["sdr"]
    assert vocals == {"mean": 4.0, "median": 2.0, "n": 3}
    assert summary["stems"]["drums"]["sdr"] == {"mean": 2.0, "median": 2.0, "n": 2}   # the silent one skipped
    medians = [summary["stems"][s]["sdr"]["median"] for s in STEMS]
    assert summary["average"]["sdr"]["median"] == pytest.approx(np.mean(medians))
    assert summary["average"]["mel_l1"] == {"mean": 1.0, "median": 1.0}
    with pytest.raises(ValueError, match="no scores"):
        summarize(pd.DataFrame())


class Broken:
    name = "broken"
    sample_rate = SR

    def separate(self, mixture):
        return {s: mixture for s in STEMS[:3]}


class WrongRate(Quarter):
    sample_rate = 22050


def test_bad_separators_metrics_and_splits_are_named(corpus):
    with pytest.raises(ValueError, match="broken on t1.*missing"):
        score_separator(Broken(), corpus, "test", 1, 1.2, metrics=("sdr",))
    with pytest.raises(DatasetError, match="22050 Hz"):
        score_separator(WrongRate(), corpus, "test", 1, 1.2, metrics=("sdr",))
    with pytest.raises(ValueError, match="unknown metric"):
        score_separator(Quarter(), corpus, "test", 1, 1.2, metrics=("sdr", "si-sdr"))
    with pytest.raises(DatasetError, match="no songs in split 'valid'"):
        score_separator(Quarter(), corpus, "valid", 1, 1.2, metrics=("sdr",))


def test_the_trainable_separators_plug_in(corpus):
    """Both learned separators of this package go through score_separator unchanged."""
    from duotok.models.encoder import EncoderConfig
    from duotok.models.multitask import MultiTaskConfig, MultiTaskModel
    from duotok.separation.mask_separators import MaskHeadSeparator
    from duotok.separation.openunmix import OpenUnmix, OpenUnmixConfig, OpenUnmixSeparator

    torch.manual_seed(0)
    stage2 = MultiTaskModel(MultiTaskConfig(encoder=EncoderConfig(dim=32, n_lower=1, n_upper=1, n_heads=2),
                                            bottleneck_dim=8))
    for separator in (MaskHeadSeparator(stage2, chunk_seconds=0.5),
                      OpenUnmixSeparator(OpenUnmix(OpenUnmixConfig(hidden_size=16, n_layers=1)))):
        scores = score_separator(separator, corpus, "test", n_songs=1, seconds=1.2, metrics=("mel_l1",))
        assert len(scores) == len(STEMS) and scores["system"].iloc[0] == separator.name
        assert np.isfinite(scores["mel_l1"]).all() and scores.attrs["rtf"] > 0
