"""dvc.yaml's separation stages list exactly the systems and variants of params.yaml, the evaluation reads
every trained model, and the report appends the section the evaluation writes."""

from __future__ import annotations

from pathlib import Path

import yaml

from duotok.config import Params
from duotok.train.separation import SYSTEMS, load_separation_variants

ROOT = Path(__file__).resolve().parents[1]


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _variants() -> list[str]:
    return list(load_separation_variants(Params.load("default", ROOT / "params.yaml")))


def test_separator_stages_cover_the_systems_and_their_params_blocks():
    separator = _stages()["separator"]
    assert set(separator["foreach"]) == set(SYSTEMS)
    section = Params.load("default", ROOT / "params.yaml").section("separation")
    assert all(block in section for block in separator["foreach"].values())
    assert "separation.base.${item}" in separator["do"]["params"]
    assert "--stage separator@${key}" in separator["do"]["cmd"]


def test_separator_variant_stages_cover_the_variants():
    stage = _stages()["separator_variant"]
    assert list(stage["foreach"]) == _variants()
    deps = stage["do"]["deps"]
    assert "models/separation/generative/stem_tokens.pt" in deps, "the variants borrow the main model's token cache"
    assert "models/pretrain/model" in deps, "frozen_ssl reads stage 1"
    assert "separation.base.variants.${item}" in stage["do"]["params"]


def test_the_evaluation_reads_every_model_and_the_report_its_section():
    stages = _stages()
    deps = stages["separation"]["deps"]
    expected = {"models/finetune/model", "models/separation/openunmix", "models/separation/generative",
                *(f"models/separation/variants/{v}" for v in _variants())}
    assert expected <= set(deps)
    assert {"reports/metrics/separation.json"} == {next(iter(m)) for m in stages["separation"]["metrics"]}
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in stages["separation"]["outs"]}
    assert "reports/separation.md" in outs
    assert not any("separation" in str(d) for d in stages["report"]["deps"]), \
        "the report links the separation page; it must not wait for (or re-run) the separation benchmark"
