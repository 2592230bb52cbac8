"""A stage that loads a trained model depends on the model's folder (``<run>/model``, a bundle, a token
file), not on the whole training-run folder it sits in.

Why: a run folder also holds the trainer's records (``train_log.csv``, ``result.json``, ``last/``), and
those carry wall-clock seconds. Re-running a stage on another machine (every session here starts without
the DVC cache) reproduces the weights byte for byte (stage 1's ``model/`` hashed the same on a fresh
machine on 2026-12-01) but never the seconds, so a dependency on the run folder would mark every
downstream stage changed, and results recorded in different sessions could never agree in ``dvc.lock``.
Only a stage that *reports* a run's records depends on the run folder, and says so below.
"""

from __future__ import annotations

import fnmatch
import itertools
from pathlib import Path

import yaml

from duotok.reporting.pipeline import load_dvc, pipeline_stages

ROOT = Path(__file__).resolve().parents[1]

# Outputs of one stage read whole by another, byte-deterministic because no clock goes into them:
# the DuoTok bundles (save_pretrained: config.json + model.safetensors) and the token folders.
BUNDLES = ("models/duotok", "models/codec", "models/replicas/seed*/tokens")
# (stage, run folder): stages that read a run's records (steps, seconds) into what they report.
READS_RECORDS = {
    ("separation", "models/separation/*"),   # the table's training steps and seconds (systems.training_info)
}


def _expanded() -> dict[str, dict]:
    """Every stage of dvc.yaml under the name DVC gives it (``name@key`` for a ``foreach`` item,
    ``name@v1-v2`` for a ``matrix`` combination, as the
    timing collector expands them: :func:`~duotok.reporting.pipeline.pipeline_stages`), its body with
    ``${key}`` / ``${item}`` filled in."""
    dvc = load_dvc(ROOT)
    out: dict[str, dict] = {}
    for full in pipeline_stages(dvc):
        name, _, key = full.partition("@")
        stage = dvc["stages"][name]
        if not key:
            out[name] = stage
            continue
        if "matrix" in stage:   # name@v1-v2: the axes' values in the order written (pipeline_stages)
            combos = {"-".join(map(str, c)): c for c in itertools.product(*stage["matrix"].values())}
            text = yaml.safe_dump({k: v for k, v in stage.items() if k != "matrix"})
            for axis, value in zip(stage["matrix"], combos[key], strict=True):
                text = text.replace(f"${{item.{axis}}}", str(value))
            out[full] = yaml.safe_load(text)
            continue
        items = stage["foreach"]
        item = items[key] if isinstance(items, dict) else key
        text = yaml.safe_dump(stage["do"]).replace("${key}", key).replace("${item}", str(item))
        out[full] = yaml.safe_load(text)
    return out


def _paths(entries) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def _run_folders(stages: dict[str, dict]) -> set[str]:
    """Every directory under models/ that a stage writes whole, except the clock-free bundles."""
    outs = {p for s in stages.values() for p in _paths(s.get("outs")) if p.startswith("models/")}
    return {p for p in outs if not p.endswith(".pt") and not any(fnmatch.fnmatch(p, b) for b in BUNDLES)}


def test_run_folders_are_found():
    runs = _run_folders(_expanded())
    assert {"models/pretrain", "models/finetune", "models/autoencoder", "models/baselines/rvq"} <= runs
    assert "models/codec" not in runs and "models/tokens/rvq.pt" not in runs


def test_no_stage_depends_on_a_whole_training_run_folder():
    stages = _expanded()
    runs = _run_folders(stages)
    offending = []
    for name, stage in stages.items():
        base = name.split("@")[0]
        for dep in _paths(stage.get("deps")):
            if dep in runs and not any(base == s and fnmatch.fnmatch(dep, p) for s, p in READS_RECORDS):
                offending.append(f"{name}: {dep}")
    assert not offending, ("depend on the model folder (<run>/model), not the run folder, whose logs carry "
                           "wall-clock seconds: " + "; ".join(offending))


def test_model_dependencies_are_inside_some_stage_output():
    """A narrowed path (``models/pretrain/model``) must still lie inside what a stage writes, or DVC
    would not know which stage makes it."""
    stages = _expanded()
    outs = {p for s in stages.values() for p in _paths(s.get("outs")) if p.startswith("models/")}
    missing = [f"{name}: {dep}" for name, stage in stages.items() for dep in _paths(stage.get("deps"))
               if dep.startswith("models/") and not any(dep == o or dep.startswith(o + "/") for o in outs)]
    assert not missing, missing
