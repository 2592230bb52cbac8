"""Two processes under torchrun (gloo on CPU): DDP keeps parameters identical across ranks with gradient
accumulation and bf16, and when a module gets no gradient on one rank or on every rank; each rank reads its
own shard of the data, and only rank 0 writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_scale_script.py"), str(root)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def load(root: Path, name: str, rank: int) -> dict:
    return torch.load(root / f"{name}_rank{rank}.pt", weights_only=True)


@pytest.mark.parametrize("name", ["whole", "accumulated", "bf16", "conditional"])
def test_parameters_stay_identical_across_ranks(ddp_runs, name):
    a, b = load(ddp_runs, name, 0), load(ddp_runs, name, 1)
    for key in a["params"]:
        assert torch.equal(a["params"][key], b["params"][key]), f"{name}: {key} differs between ranks"


def test_accumulation_under_ddp_trains_like_the_whole_batch(ddp_runs):
    whole, accumulated = load(ddp_runs, "whole", 0), load(ddp_runs, "accumulated", 0)
    for key in whole["params"]:
        torch.testing.assert_close(accumulated["params"][key], whole["params"][key], rtol=1e-5, atol=1e-6)


def test_a_module_no_loss_reaches_is_left_alone_and_a_sometimes_used_one_trains(ddp_runs):
    """The lyrics head on a batch without lyrics, the ``heads_none`` stage-3 upper encoder: DDP trains
    on, and a module unused on every rank is not moved (no gradient, so no AdamW step or weight decay),
    exactly as in a single process."""
    initial, final = load(ddp_runs, "conditional_init", 0), load(ddp_runs, "conditional", 0)["params"]
    for key in ("idle.weight", "idle.bias"):
        assert torch.equal(final[key], initial[key]), f"{key} moved without a gradient"
    for key in ("aux.weight", "lin.weight"):
        assert not torch.equal(final[key], initial[key]), f"{key} did not train"


def test_the_stage_3_ablation_without_heads_trains_under_ddp(ddp_runs):
    """``heads_none``: the quantizer trains, the upper encoder (no loss reaches it) stays where it was, and
    the ranks agree."""
    a, b = load(ddp_runs, "stage3", 0), load(ddp_runs, "stage3", 1)
    for key in a["params"]:
        assert torch.equal(a["params"][key], b["params"][key]), f"{key} differs between ranks"
    moved = {k for k in a["params"] if not torch.equal(a["params"][k], a["initial"][k])}
    assert any(k.startswith("quantizer.") for k in moved), "the quantizer did not train"
    assert not any(k.startswith("encoder.") for k in moved), f"frozen or loss-free encoder weights moved: {moved}"


def test_bf16_is_used_when_forced_and_still_learns(ddp_runs):
    bf16, fp32 = load(ddp_runs, "bf16", 0), load(ddp_runs, "accumulated", 0)
    assert bf16["precision"] == "bf16" and fp32["precision"] == "fp32"
    assert not torch.equal(bf16["params"]["lin.weight"], fp32["params"]["lin.weight"]), "autocast changed nothing"
    torch.testing.assert_close(bf16["params"]["lin.weight"], fp32["params"]["lin.weight"], rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name", ["whole", "accumulated"])
def test_each_rank_reads_its_own_shard(ddp_runs, name):
    seen = [load(ddp_runs, name, r)["seen"].tolist() for r in (0, 1)]
    per_epoch = 32                                    # 64 items over 2 processes
    for epoch in range(2):
        shards = [set(s[epoch * per_epoch:(epoch + 1) * per_epoch]) for s in seen]
        assert len(shards[0]) == len(shards[1]) == per_epoch
        assert not shards[0] & shards[1], f"epoch {epoch}: the ranks share items"
        assert shards[0] | shards[1] == set(range(64)), f"epoch {epoch}: items left out"


def test_only_rank_0_writes(ddp_runs):
    for name in ("whole", "accumulated", "bf16"):
        assert (ddp_runs / name / "train_log.csv").is_file()
        assert (ddp_runs / name / "model" / "model.safetensors").is_file()
        assert (ddp_runs / name / "last" / "training_state.pt").is_file()
        assert not (ddp_runs / f"{name}_rank1_must_not_exist").exists(), "rank 1 wrote into its output folder"
