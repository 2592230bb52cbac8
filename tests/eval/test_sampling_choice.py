"""Stage 4b's sampling choice: fewest steps within tolerance, then the best guidance scale, on valid."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from duotok.data.stems import SPLITS
from duotok.eval.sampling_choice import (
    SELECTION_SPLIT,
    choose_cfg_scale,
    choose_sampling,
    choose_steps,
    choose_steps_and_shift,
    sweep_scores,
)


def frame(parameter: str, table: dict, metric: str = "mel_l1") -> pd.DataFrame:
    """``{value: {track: [per-excerpt scores]}}`` → score_system-like rows with the swept value."""
    rows = [{parameter: value, "track": track, "song": f"s{i}", metric: v}
            for value, tracks in table.items() for track, vals in tracks.items() for i, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_selection_split_is_validation_not_test():
    assert SELECTION_SPLIT == "valid" and SELECTION_SPLIT in SPLITS


def test_sweep_scores_average_excerpts_per_track_then_tracks_skipping_nan():
    df = frame("steps", {4: {"vocal": [1.0, 3.0, math.nan], "accompaniment": [4.0]},
                         8: {"vocal": [math.nan], "accompaniment": [1.0, 2.0]}})
    # 4: vocal mean 2 (NaN excluded), accompaniment 4 -> 3; 8: only accompaniment defined -> 1.5
    assert sweep_scores(df, "steps", "mel_l1") == {4: 3.0, 8: 1.5}
    assert all(type(k) is int for k in sweep_scores(df, "steps", "mel_l1"))
    with pytest.raises(ValueError, match="column"):
        sweep_scores(df, "cfg_scale", "mel_l1")
    with pytest.raises(ValueError, match="unknown selection metric"):
        sweep_scores(df, "steps", "sdr")


def test_fewest_steps_within_relative_tolerance_lower_is_better():
    scores = {4: 1.80, 8: 1.70, 16: 1.68, 32: 1.67}
    assert choose_steps(scores, "mel_l1", 0.02) == 8     # 1.70 <= 1.67 * 1.02 = 1.7034
    assert choose_steps(scores, "mel_l1", 0.01) == 16    # 1.68 <= 1.6867; 1.70 is not
    assert choose_steps(scores, "mel_l1", 0.005) == 32   # 1.68 > 1.67835
    assert choose_steps(scores, "mel_l1", 0.0) == 32     # the best itself
    assert choose_steps(scores, "mel_l1", 1.0) == 4      # anything goes: the cheapest


def test_fewest_steps_higher_is_better_and_order_independent():
    scores = {32: 3.50, 4: 3.00, 16: 3.45, 8: 3.30}
    assert choose_steps(scores, "visqol", 0.02) == 16    # 3.45 >= 3.5 * 0.98 = 3.43; 3.30 is not
    assert choose_steps(dict(reversed(list(scores.items()))), "visqol", 0.02) == 16


def test_steps_ties_and_nan_and_bad_arguments():
    assert choose_steps({16: 1.5, 8: 1.5, 32: 1.6}, "mel_l1", 0.0) == 8   # exact tie: fewer steps
    assert choose_steps({4: math.nan, 8: 2.0, 16: 1.99}, "mel_l1", 0.02) == 8  # NaN never chosen
    with pytest.raises(ValueError, match="no finite"):
        choose_steps({4: math.nan}, "mel_l1", 0.02)
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="tolerance"):
            choose_steps({4: 1.0}, "mel_l1", bad)


def test_cfg_scale_best_score_with_explicit_tie_rules():
    assert choose_cfg_scale({1.0: 1.8, 1.5: 1.7, 3.0: 1.63}, "mel_l1") == 3.0
    assert choose_cfg_scale({1.0: 3.1, 1.5: 3.3, 3.0: 3.2}, "pesq") == 1.5
    assert choose_cfg_scale({3.0: 1.6, 1.0: 1.6, 1.5: 1.7}, "mel_l1") == 1.0    # tie: 1.0 (half the cost)
    assert choose_cfg_scale({3.0: 1.6, 2.0: 1.6, 1.5: 1.7}, "mel_l1") == 2.0    # tie without 1.0: smallest
    assert choose_cfg_scale({1.0: math.nan, 2.0: 1.9}, "mel_l1") == 2.0
    assert isinstance(choose_cfg_scale({2: 1.0}, "mel_l1"), float)


def test_choose_sampling_end_to_end_and_record():
    steps_df = frame("steps", {4: {"vocal": [1.9, 1.9], "accompaniment": [1.7, 1.7]},
                               8: {"vocal": [1.72, 1.72], "accompaniment": [1.6, 1.6]},
                               16: {"vocal": [1.7, 1.7], "accompaniment": [1.58, 1.58]}})
    cfg_df = frame("cfg_scale", {1.0: {"vocal": [1.8], "accompaniment": [1.7]},
                                 1.5: {"vocal": [1.7], "accompaniment": [1.6]},
                                 3.0: {"vocal": [1.65], "accompaniment": [1.62]}}).assign(steps=8)
    choice = choose_sampling(steps_df, cfg_df, steps_at_cfg_scale=1.5, metric="mel_l1", tolerance=0.02)
    assert (choice.steps, choice.cfg_scale) == (8, 3.0)   # 1.66 <= 1.64 * 1.02; 1.635 < 1.65
    record = choice.as_dict()
    assert record["split"] == "valid" and record["metric"] == "mel_l1" and record["higher_is_better"] is False
    assert (record["steps"], record["cfg_scale"], record["tolerance"]) == (8, 3.0, 0.02)
    assert record["score_vs_steps"] == {"4": 1.8, "8": 1.66, "16": 1.64}
    assert record["score_vs_cfg_scale"] == {"1.0": 1.75, "1.5": 1.65, "3.0": 1.635}
    with pytest.raises(ValueError, match="guidance sweep ran at"):
        choose_sampling(steps_df, cfg_df.assign(steps=16), steps_at_cfg_scale=1.5)


def test_steps_and_shift_fewest_steps_on_their_best_grid_then_the_best_grid():
    scores = {(4, 1.0): 1.98, (4, 3.0): 1.90, (8, 1.0): 1.86, (8, 3.0): 1.78,
              (16, 1.0): 1.78, (16, 3.0): 1.77, (32, 1.0): 1.76, (32, 3.0): 1.77}
    # best 1.76; within 2 %: <= 1.7952 -> 8 steps on the shifted grid (uniform 8 steps is not)
    assert choose_steps_and_shift(scores, "mel_l1", 0.02) == (8, 3.0)
    assert choose_steps_and_shift(scores, "mel_l1", 0.01) == (16, 3.0)    # <= 1.7776: 16 @ 3 is, 8 @ 3 not
    assert choose_steps_and_shift(scores, "mel_l1", 0.005) == (32, 1.0)   # <= 1.7688: only the best
    assert choose_steps_and_shift(scores, "mel_l1", 0.0) == (32, 1.0)
    uniform_only = {k: v for k, v in scores.items() if k[1] == 1.0}
    assert choose_steps_and_shift(uniform_only, "mel_l1", 0.02) == (16, 1.0)   # what the 1-D rule chose
    assert choose_steps(dict((n, v) for (n, _), v in uniform_only.items()), "mel_l1", 0.02) == 16
    tie = {(8, 3.0): 1.5, (8, 1.0): 1.5, (8, 2.0): 1.5}
    assert choose_steps_and_shift(tie, "mel_l1", 0.0) == (8, 1.0)            # tie: the uniform grid
    assert choose_steps_and_shift({(8, 3.0): 1.5, (8, 2.0): 1.5}, "mel_l1", 0.0) == (8, 2.0)
    assert choose_steps_and_shift({(8, 1.0): math.nan, (8, 3.0): 2.0}, "mel_l1", 0.0) == (8, 3.0)
    assert choose_steps_and_shift({(8, 1.0): 3.0, (8, 3.0): 3.2}, "pesq", 0.0) == (8, 3.0)
    with pytest.raises(ValueError, match="no finite"):
        choose_steps_and_shift({(8, 1.0): math.nan}, "mel_l1")


def test_sweep_scores_over_two_parameters_gives_tuple_keys():
    df = pd.DataFrame([{"steps": n, "time_shift": sh, "track": tr, "mel_l1": n / 10 + sh + (tr == "vocal")}
                       for n in (4, 8) for sh in (1.0, 3.0) for tr in ("vocal", "accompaniment")])
    got = sweep_scores(df, ("steps", "time_shift"), "mel_l1")
    assert got == pytest.approx({(4, 1.0): 1.9, (4, 3.0): 3.9, (8, 1.0): 2.3, (8, 3.0): 4.3})
    assert all(type(n) is int and type(sh) is float for n, sh in got)


def test_choose_sampling_on_a_grid_sweep_records_every_cell_and_checks_the_guidance_sweep():
    rows = {(4, 1.0): 1.9, (4, 3.0): 1.8, (8, 1.0): 1.7, (8, 3.0): 1.6, (16, 1.0): 1.6, (16, 3.0): 1.61}
    steps_df = pd.DataFrame([{"steps": n, "time_shift": sh, "track": "vocal", "song": "s0", "mel_l1": v}
                             for (n, sh), v in rows.items()])
    cfg_df = frame("cfg_scale", {1.0: {"vocal": [1.7]}, 3.0: {"vocal": [1.5]}}).assign(steps=8, time_shift=3.0)
    choice = choose_sampling(steps_df, cfg_df, steps_at_cfg_scale=1.5, metric="mel_l1", tolerance=0.0)
    assert (choice.steps, choice.time_shift, choice.cfg_scale) == (8, 3.0, 3.0)   # 8 @ 3 ties 16 @ 1: fewer steps
    assert choice.steps_scores == {4: 1.8, 8: 1.6, 16: 1.6}                        # each on its best grid
    record = choice.as_dict()
    assert record["time_shift"] == 3.0 and record["score_vs_steps_and_time_shift"]["8 steps, shift 3"] == 1.6
    assert len(record["score_vs_steps_and_time_shift"]) == 6
    with pytest.raises(ValueError, match="time shift"):
        choose_sampling(steps_df, cfg_df.assign(time_shift=1.0), steps_at_cfg_scale=1.5, tolerance=0.0)


class _NoisyDecoderCodec:
    """A mixture codec whose decode error shrinks with the Euler steps up to a knee at 8 and is
    smallest at guidance 3: the sweep must find both."""

    streams = {"mixture": ("mixture",)}
    sample_rate = 16000

    def __init__(self):
        self.calls: list[tuple[int, float]] = []

    def encode(self, mixture):
        return mixture  # the "tokens" are the signal itself

    def decode(self, ids, num_samples=None, steps=None, cfg_scale=None):
        import torch

        self.calls.append((steps, cfg_scale))
        error = 0.3 / min(steps, 8) + 0.05 * abs(cfg_scale - 3.0)
        noise = torch.randn(ids.shape, generator=torch.Generator().manual_seed(0))
        return {"mixture": ids + error * noise}


BENCH = {"steps_curve": [4, 8, 16], "cfg_scales": [1.0, 3.0], "n_songs": 4, "seconds": 0.5,
         "select_metric": "mel_l1", "tolerance": 0.0}


class _GridDecoderCodec(_NoisyDecoderCodec):
    """As above, but the shifted grid reaches the knee's quality at half the steps."""

    def decode(self, ids, num_samples=None, steps=None, cfg_scale=None, time_shift=None):
        import torch

        self.calls.append((steps, cfg_scale, time_shift))
        effective = steps * (2 if time_shift == 3.0 else 1)
        error = 0.3 / min(effective, 8) + 0.05 * abs(cfg_scale - 3.0)
        noise = torch.randn(ids.shape, generator=torch.Generator().manual_seed(0))
        return {"mixture": ids + error * noise}


def test_sweep_sampling_over_time_grids_buys_the_same_quality_in_fewer_steps(duosynth_root):
    from duotok.eval.sampling_choice import sweep_sampling

    codec = _GridDecoderCodec()
    steps_scores, cfg_scores, choice = sweep_sampling(codec, duosynth_root, {**BENCH, "time_shifts": [1.0, 3.0]}, 1.5)
    assert (choice.steps, choice.time_shift, choice.cfg_scale) == (4, 3.0, 3.0)
    n = steps_scores["song"].nunique()
    grid = [(s, 1.5, sh) for s in (4, 8, 16) for sh in (1.0, 3.0)] + [(4, 1.0, 3.0), (4, 3.0, 3.0)]
    assert codec.calls == [c for c in grid for _ in range(n)]
    assert set(cfg_scores["time_shift"]) == {3.0} and set(steps_scores["time_shift"]) == {1.0, 3.0}
    for bad in (0.0, True, "3"):      # a bool is not a grid (float(True) would silently be the uniform one)
        with pytest.raises(ValueError, match="time_shifts"):
            sweep_sampling(codec, duosynth_root, {**BENCH, "time_shifts": [1.0, bad]}, 1.5)


def test_sweep_sampling_chooses_the_knee_then_the_best_guidance_on_validation_songs_only(duosynth_root):
    import json

    from duotok.eval.sampling_choice import sweep_sampling

    codec = _NoisyDecoderCodec()
    steps_scores, cfg_scores, choice = sweep_sampling(codec, duosynth_root, BENCH, 1.5)
    assert choice.steps == 8 and choice.cfg_scale == 3.0        # 16 steps decode no better than 8 here
    # in order, once per excerpt; the guidance sweep runs at the chosen 8 steps
    n = steps_scores["song"].nunique()
    assert codec.calls == [c for c in [(4, 1.5), (8, 1.5), (16, 1.5), (8, 1.0), (8, 3.0)] for _ in range(n)]
    assert set(steps_scores["steps"]) == {4, 8, 16} and set(cfg_scores["steps"]) == {8}
    assert choice.steps_scores[4] > choice.steps_scores[8]
    manifest = json.loads((duosynth_root / "manifest.json").read_text())
    valid = {s["id"] for s in manifest["songs"] if s["split"] == SELECTION_SPLIT}
    assert set(steps_scores["song"]) == set(cfg_scores["song"]) == valid   # never a test or train song
