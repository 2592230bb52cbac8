"""Training ablation variants end to end on a tiny corpus (smoke profile, one step per stage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from duotok.ablations import train as ablation_train
from duotok.config import as_params, load_params, stage_params
from duotok.errors import CheckpointError, ConfigError
from duotok.models.bestrq import BestRQModel
from duotok.models.dualtrack import DualTrackModel
from duotok.models.multitask import MultiTaskModel
from duotok.paths import project_root
from duotok.tokenizer.model import DuoTok
from duotok.train import pretrain

SONGS = (("a", "train", 2.0), ("b", "train", 1.5), ("c", "valid", 1.0), ("d", "test", 1.0))


@pytest.fixture
def env(tmp_path, monkeypatch, make_duosynth) -> dict[str, Path]:
    """A corpus, an untrained stage-1 checkpoint and a params.yaml (the project's, with one training
    step per stage and ``ablation.pretrain`` pointing at that checkpoint) under ``$DUOTOK_ROOT``."""
    params = load_params(project_root() / "params.yaml")
    data = make_duosynth(tmp_path / "data", SONGS)
    torch.manual_seed(0)
    BestRQModel(pretrain.build_config("smoke")[0]).save_pretrained(tmp_path / "pretrain")
    params["profile"] = "smoke"
    params["ablation"]["base"]["pretrain"] = str(tmp_path / "pretrain")
    one_step = {"steps": 1, "warmup_steps": 1, "eval_every": 1, "save_every": 1, "log_every": 1,
                "batch_size": 2, "max_eval_batches": 1}
    short = {"train": one_step, "data": {"segment_seconds": 1.0}}
    params["ablation"]["smoke"]["budget"] = {"finetune": short, "quantize": short}
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("DUOTOK_ROOT", str(root))
    return {"data": data, "out": tmp_path / "ablations", "root": root}


def train(env: dict[str, Path], name: str, **kwargs) -> dict:
    return ablation_train.train_variant(name, "smoke", out_dir=env["out"], data_dir=env["data"], device="cpu",
                                        **kwargs)


def test_reference_trains_both_stages_and_a_tokenizer(env):
    summary = train(env, "reference")
    out = env["out"] / "reference"
    for part in ("finetune/model", "quantize/model", "tokenizer"):
        assert (out / part / "model.safetensors").is_file(), part
    assert json.loads((out / "result.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["variant"]["name"] == "reference" and summary["retrains_stage2"]
    assert summary["stage2_dir"] == summary["separator_dir"] == str(out / "finetune" / "model")
    assert summary["stage2"]["steps"] == 1 and summary["stage3"]["steps"] == 1
    assert summary["stage2"]["init"] == load_params()["ablation"]["base"]["pretrain"]
    assert summary["overrides"]["finetune"]["train"]["steps"] == 1
    assert summary["bits_per_second"] == pytest.approx(2 * 25 * 6)     # smoke: 2 x 64 codes at 25 Hz
    tok = DuoTok.from_pretrained(out / "tokenizer")
    assert tok.fingerprints() == summary["fingerprints"] and not summary["shared_codebook"]
    assert tok.config.chunk_seconds == 1.0, "chunks are the stage-3 training crops"
    v_ids, a_ids = tok.encode(torch.randn(16000) * 0.1)
    assert v_ids.shape == a_ids.shape == (25,)
    # Re-running resumes from the checkpoints instead of training again.
    again = train(env, "reference")
    assert again["stage2"]["resumed_from"] == 1 and again["stage3"]["resumed_from"] == 1


def test_routing_variants_reuse_the_reference_stage2(env, capsys):
    train(env, "reference")
    reference_stage2 = env["out"] / "reference" / "finetune" / "model"
    assert ablation_train.main(["--variant", "routing_shared", "--profile", "smoke", "--out", str(env["out"]),
                                "--data-dir", str(env["data"]), "--device", "cpu"]) == 0
    assert "ablation routing_shared" in capsys.readouterr().out
    out = env["out"] / "routing_shared"
    assert not (out / "finetune").exists()
    summary = json.loads((out / "result.json").read_text())
    assert summary["stage2_dir"] == str(reference_stage2) and not summary["retrains_stage2"]
    assert summary["stage3"]["routing"] == "shared" and summary["shared_codebook"]
    model = DualTrackModel.from_pretrained(out / "quantize" / "model")
    vocal, accomp = (b.state_dict() for b in model.quantizer.branches)
    assert all(torch.equal(vocal[k], accomp[k]) for k in vocal), "checkpoint holds two equal branches"
    prints = DuoTok.from_pretrained(out / "tokenizer").fingerprints()
    assert prints["vocal"] == prints["accompaniment"] == summary["fingerprints"]["vocal"]
    assert summary["bits_per_second"] == pytest.approx(2 * 25 * 6), "same bits per track as the reference"

    separated = train(env, "routing_separated")
    assert not (env["out"] / "routing_separated" / "finetune").exists()
    assert separated["stage3"]["routing"] == "separated"
    assert separated["stage3"]["separator"] == str(reference_stage2)
    assert not separated["shared_codebook"]


def test_routing_variant_without_the_reference_is_a_clear_error(env):
    with pytest.raises(CheckpointError, match=r"train the reference first.*--variant reference"):
        train(env, "routing_shared")
    assert not (env["out"] / "routing_shared" / "quantize").exists()


def test_heads_variant_switches_the_head_off_in_both_stages(env):
    summary = train(env, "heads_no_chroma")
    out = env["out"] / "heads_no_chroma"
    stage2 = MultiTaskModel.read_config(out / "finetune" / "model")
    stage3 = DualTrackModel.read_config(out / "quantize" / "model")
    assert not stage2.heads.chroma and stage2.heads.mask and stage2.heads.mel
    assert not stage3.heads.chroma and stage3.heads.mel
    assert summary["stage2"]["model"]["heads"]["chroma"] is False
    assert summary["stage3"]["model"]["heads"]["chroma"] is False
    assert summary["separator_dir"] == summary["stage2_dir"], "its own stage 2 still has the mask head"
    # The overrides are gone once the variant is trained.
    assert stage_params("finetune", "smoke")["model"]["heads"]["chroma"] is True


def test_noise_variant_changes_the_stage2_noise(env):
    summary = train(env, "noise_prob25")
    config = MultiTaskModel.read_config(env["out"] / "noise_prob25" / "finetune" / "model")
    assert config.noise.prob == 0.25 and config.noise.mode == "replace" and config.noise.std == 1.0
    assert summary["stage2"]["model"]["noise"]["prob"] == 0.25
    assert summary["overrides"]["finetune"]["model"] == {"noise": {"prob": 0.25}}


def test_variant_without_mask_head_borrows_the_reference_separator(env):
    with pytest.raises(CheckpointError, match="borrows the reference's stage-2 separator"):
        train(env, "heads_no_mask")
    assert not (env["out"] / "heads_no_mask").exists(), "refused before training anything"
    train(env, "reference")
    summary = train(env, "heads_no_mask")
    assert summary["separator_dir"] == str(env["out"] / "reference" / "finetune" / "model")
    assert summary["stage2_dir"] == str(env["out"] / "heads_no_mask" / "finetune" / "model")
    assert not MultiTaskModel.read_config(summary["stage2_dir"]).heads.mask
    assert (env["out"] / "heads_no_mask" / "tokenizer" / "config.json").is_file()


def test_a_training_seed_retrains_stages_2_and_3_beside_the_table2_replicas(env):
    """Training seed S: the same variant, its two stages seeded S, under
    ``<replicas.out_dir>/seed<S>/ablations``; a routing variant of seed S reads seed S's reference, never
    seed 0's, and seed 0 stays where it was."""
    seed0 = train(env, "reference")
    # No out_dir: the folders come from params (replicas.out_dir under $DUOTOK_ROOT).
    summary = ablation_train.train_variant("reference", "smoke", data_dir=env["data"], device="cpu", train_seed=1)
    root = env["root"] / "models" / "replicas" / "seed1" / "ablations"
    assert ablation_train.variants_root(as_params("smoke"), 1) == root
    assert summary["train_seed"] == 1 and seed0["train_seed"] == 0
    assert summary["stage2"]["train_config"]["seed"] == summary["stage3"]["train_config"]["seed"] == 1
    assert seed0["stage2"]["train_config"]["seed"] == seed0["stage3"]["train_config"]["seed"] == 0
    assert summary["stage2"]["init"] == seed0["stage2"]["init"], "the same stage 1 for every training seed"
    assert summary["fingerprints"] != seed0["fingerprints"], "another training, other codebooks"
    shared = ablation_train.train_variant("routing_shared", "smoke", data_dir=env["data"], device="cpu",
                                          train_seed=1)
    assert shared["stage2_dir"] == str(root / "reference" / "finetune" / "model")
    with pytest.raises(CheckpointError, match="train the reference first"):
        ablation_train.train_variant("routing_shared", "smoke", data_dir=env["data"], device="cpu", train_seed=2)
    with pytest.raises(ConfigError, match="training seed"):
        ablation_train.variants_root(as_params("smoke"), -1)
    assert ablation_train.seed_overrides(3) == {"finetune": {"train": {"seed": 3}}, "quantize": {"train": {"seed": 3}}}


def _torchrun(env: dict[str, Path], variant: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "duotok.ablations.train", "--variant", variant, "--profile", "smoke",
           "--out", str(env["out"]), "--data-dir", str(env["data"]), "--device", "cpu"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_variants_train_under_torchrun_with_two_processes(env):
    """DDP's risks here: heads switched off (no parameter may go unused in a step) and the tied
    codebook of ``routing_shared`` (one parameter reached through both branches)."""
    for variant in ("reference", "heads_none", "routing_shared"):
        proc = _torchrun(env, variant)
        assert proc.returncode == 0, f"{variant}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        summary = json.loads((env["out"] / variant / "result.json").read_text())
        assert summary["stage3"]["world_size"] == 2, variant
        assert (env["out"] / variant / "tokenizer" / "model.safetensors").is_file(), variant
