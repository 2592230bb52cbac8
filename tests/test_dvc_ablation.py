"""dvc.yaml's ablation stages list exactly the variants of params.yaml, each in the stage group its
dependencies require (a variant that needs the reference's output must run after it), once for training
seed 0 and once per extra training seed (``replicas.seeds``): the same groups again, each reading its own
seed's reference."""

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


def test_every_extra_training_seed_repeats_the_three_groups():
    params = load_params(ROOT / "params.yaml")
    seeds = list(params["replicas"]["base"]["seeds"])
    stages = _stages()
    assert list(stages["ablation_replica_reference"]["foreach"]) == seeds
    for replica, main in (("ablation_replica", "ablation"), ("ablation_replica_from_reference",
                                                              "ablation_from_reference")):
        matrix = stages[replica]["matrix"]
        assert list(matrix) == ["seed", "variant"], "stage names read <seed>-<variant> (timing records, docs)"
        assert matrix["seed"] == seeds and matrix["variant"] == list(stages[main]["foreach"]), replica
        assert "-p train_seed ${item.seed}" in stages[replica]["cmd"], replica
    assert "-p train_seed ${item}" in stages["ablation_replica_reference"]["do"]["cmd"]
    deps = stages["ablation_replica_from_reference"]["deps"]
    assert "models/replicas/seed${item.seed}/ablations/reference/finetune/model" in deps, "its own seed's reference"
    assert not any(d.startswith("models/ablations/") for d in deps), "never seed 0's reference"


def test_ablation_report_reads_every_training_seed_of_every_variant():
    params = load_params(ROOT / "params.yaml")
    variants = load_variants("default", params)
    report = _stages()["ablations"]
    assert {f"reports/metrics/ablations/seed{s}/{name}.json" for s in params["replicas"]["base"]["seeds"]
            for name in variants} <= set(report["deps"])
    assert "replicas.base.seeds" in report["params"]
