"""The ablation evaluation's bookkeeping: spreads over seeds, strict JSON, and the probe settings each
measurement takes from params.yaml (the end-to-end run is the smoke pipeline test)."""

from __future__ import annotations

import json

import pytest

from duotok.ablations.evaluate import json_safe, probe_settings


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
