"""dvc.yaml's ablation stages list exactly the variants of params.yaml, each in the stage group its
dependencies require (a variant that needs the reference's output must run after it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from duotok.ablations import load_variants
from duotok.config import load_params

ROOT = Path(__file__).resolve().parents[1]


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_ablation_stages_cover_the_variants():
    variants = load_variants("default", load_params(ROOT / "params.yaml"))
    stages = _stages()
    independent = list(stages["ablation"]["foreach"])
    after_reference = list(stages["ablation_from_reference"]["foreach"])
    reference = [v.name for v in variants.values() if v.family == "reference"]
    assert "variant reference" in stages["ablation_reference"]["cmd"] and reference == ["reference"]
    assert sorted(independent + after_reference + reference) == sorted(variants)
    assert sorted(after_reference) == sorted(v.name for v in variants.values() if v.uses_reference)
    # what those variants read of the reference: its stage-2 model (tests/test_dvc_model_deps.py: not the run folder)
    assert "models/ablations/reference/finetune/model" in stages["ablation_from_reference"]["do"]["deps"]


def test_ablation_report_reads_every_variant():
    variants = load_variants("default", load_params(ROOT / "params.yaml"))
    deps = _stages()["ablations"]["deps"]
    assert {f"reports/metrics/ablations/{name}.json" for name in variants} <= set(deps)
