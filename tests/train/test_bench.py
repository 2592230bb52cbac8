"""``duotok bench train``: times both precisions on a stage's real model and says what ``auto`` picks."""

from __future__ import annotations

import json

import pytest

from duotok.cli import main
from duotok.train import precision as precision_mod
from duotok.train.bench import bench_train, format_report
from duotok.train.precision import Capability


@pytest.mark.parametrize("stage", ["pretrain", "lm"])
def test_bench_times_both_precisions_and_reports_auto(stage):
    cap = Capability(False, "fake CPU with AVX2 only")
    result = bench_train(stage, "smoke", steps=2, warmup=1, batch_size=1, capability=cap)
    assert set(result["timings"]) == {"fp32", "bf16"}
    for t in result["timings"].values():
        assert 0 < t["min_seconds"] <= t["median_seconds"] <= t["max_seconds"] and t["steps"] == 2
    assert result["auto"] == "fp32" and result["native_bf16"] is False
    assert result["bf16_speedup"] == pytest.approx(result["timings"]["fp32"]["median_seconds"]
                                                   / result["timings"]["bf16"]["median_seconds"])
    text = format_report(result)
    assert "auto -> fp32: fake CPU with AVX2 only" in text and stage in text


def test_bench_refuses_what_it_cannot_time():
    with pytest.raises(ValueError, match="stage"):
        bench_train("separator", "smoke")
    with pytest.raises(ValueError, match="fp32 and bf16"):
        bench_train("pretrain", "smoke", precisions=("auto",))
    with pytest.raises(ValueError, match="steps"):
        bench_train("pretrain", "smoke", steps=0)


def test_cli_bench_train_prints_the_choice_and_json(monkeypatch, capsys):
    monkeypatch.setattr(precision_mod, "cpu_capability", lambda: Capability(True, "fake CPU with AMX"))
    assert main(["bench", "train", "--profile", "smoke", "--steps", "1", "--warmup", "0",
                 "--batch-size", "1", "--precisions", "fp32"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "auto -> bf16: fake CPU with AMX" in out[-2]
    record = json.loads(out[-1])
    assert record["auto"] == "bf16" and list(record["timings"]) == ["fp32"] and "bf16_speedup" not in record
