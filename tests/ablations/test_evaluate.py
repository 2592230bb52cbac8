"""The ablation evaluation's bookkeeping: spreads over seeds, strict JSON, and the probe settings each
measurement takes from params.yaml (the end-to-end run is the smoke pipeline test)."""

from __future__ import annotations

import json

import pytest

from duotok.ablations.evaluate import json_safe, per_song_mean, probe_settings, variant_dir


def test_json_safe_turns_non_finite_numbers_into_null():
    obj = {"a": float("nan"), "b": [1.5, float("inf"), {"c": -float("inf")}], "d": "x", "e": 2}
    text = json.dumps(json_safe(obj), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [1.5, None, {"c": None}], "d": "x", "e": 2}


@pytest.mark.parametrize("block", ["probe", "leakage"])
def test_probe_settings_take_the_ablation_budget_on_top_of_the_probe_section(block):
    model, train = probe_settings(block, "smoke")
    assert model["channels"] == 16                       # probe.smoke.model
    assert train["steps"] == 4 and train["seeds"] == [0, 1]   # ablation.smoke.<block>
    assert train["lr"] == pytest.approx(1e-3)            # probe.base.train, untouched
    assert train["eval_every"] <= train["steps"]


def test_per_song_values_are_averaged_over_lm_seeds_on_the_songs_every_seed_scored():
    runs = [{"per_song": {"a": {"log_ppl_1024": 1.0, "bits_per_second": 10.0, "tokens": 5},
                          "b": {"log_ppl_1024": 2.0, "bits_per_second": 20.0, "tokens": 5}}},
            {"per_song": {"a": {"log_ppl_1024": 3.0, "bits_per_second": 30.0, "tokens": 5}}}]
    assert per_song_mean(runs, "per_song") == {"a": {"log_ppl_1024": 2.0, "bits_per_second": 20.0}}
    assert per_song_mean([], "per_song") == {}


def test_a_variant_s_folder_and_metrics_file_follow_its_training_seed():
    from duotok.ablations.variants import metrics_file

    assert variant_dir("noise_off", "smoke").parts[-2:] == ("ablations", "noise_off")
    assert variant_dir("noise_off", "smoke", 1).parts[-4:] == ("replicas", "seed1", "ablations", "noise_off")
    assert metrics_file("m", "noise_off", 1).as_posix() == "m/seed1/noise_off.json"
