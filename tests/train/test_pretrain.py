"""Stage 1 (BEST-RQ) on a tiny corpus: trains, checkpoints, resumes, and runs under torchrun (DDP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from duotok.models.bestrq import BestRQModel
from duotok.train.pretrain import build_config, run

SONGS = (("a", "train", 3.0), ("b", "train", 2.5), ("c", "train", 2.0), ("d", "train", 1.5),
         ("e", "valid", 2.0), ("f", "test", 2.0))


def test_pretrain_smoke_trains_and_saves(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    result = run("smoke", out_dir=tmp_path / "out", data_dir=root, steps=4)
    assert result.step == 4 and result.skipped_steps == 0
    assert torch.isfinite(torch.tensor(result.train["loss"]))
    assert 0.0 <= result.valid["accuracy"] <= 1.0
    summary = json.loads((tmp_path / "out" / "result.json").read_text())
    assert summary["world_size"] == 1
    model = BestRQModel.from_pretrained(tmp_path / "out" / "model")
    cfg, _, _ = build_config("smoke")
    assert model.config == cfg
    assert not torch.allclose(model.encoder.mel_std, torch.ones_like(model.encoder.mel_std)), \
        "global mel statistics were fitted before training"
    # the frozen target quantizer is saved and is the seeded one (targets stay stable across resumes)
    fresh = BestRQModel(cfg)
    assert torch.equal(model.quantizer.codebook, fresh.quantizer.codebook)
    # resuming continues from the last checkpoint
    again = run("smoke", out_dir=tmp_path / "out", data_dir=root, steps=6)
    assert again.resumed_from == 4 and again.step == 6


def test_pretrain_under_torchrun_with_two_processes(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "duotok.train.pretrain", "--profile", "smoke", "--data-dir", str(root),
           "--out", str(tmp_path / "ddp"), "--steps", "2", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()


def test_pretrain_stopped_and_resumed_equals_uninterrupted(tmp_path, make_duosynth):
    """6 steps straight vs 3 steps (checkpointed at the last step, mid-epoch: 8 crops in batches of 2) then
    resumed to 6: BEST-RQ's random masks and noise, the crops and the data order all continue exactly."""
    root = make_duosynth(tmp_path / "data", SONGS)
    run("smoke", out_dir=tmp_path / "straight", data_dir=root, steps=6, precision="fp32")
    run("smoke", out_dir=tmp_path / "resumed", data_dir=root, steps=3, precision="fp32")
    again = run("smoke", out_dir=tmp_path / "resumed", data_dir=root, steps=6, precision="fp32")
    assert again.resumed_from == 3 and again.step == 6
    a = BestRQModel.from_pretrained(tmp_path / "straight" / "model").state_dict()
    b = BestRQModel.from_pretrained(tmp_path / "resumed" / "model").state_dict()
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"{len(a) - len(differing)} of {len(a)} tensors equal; differing: {differing}"
