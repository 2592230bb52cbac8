"""``duotok bench train``: the step time of a training stage's model, per precision, on this machine.

Why: ``train.precision: auto`` picks bf16 only where the hardware computes it natively, because emulated
bf16 (an AVX2-only CPU) is an order of magnitude slower than float32. This benchmark shows a user what
``auto`` chose here and why, next to the measured seconds per step of each precision — the evidence a
README timing or a "my run is slow" report needs.

What a step is: one forward + backward + gradient clipping + AdamW update of the stage's model at the
profile's size and batch (random inputs; the cost does not depend on the values), timed after warm-up
steps, on one process. Stages: ``pretrain`` (the BEST-RQ encoder, stages 1-3's backbone) and ``lm`` (the
token LM of the evaluation, the longest-running training of the pipeline).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from duotok.config import stage_params
from duotok.train.loop import TrainConfig
from duotok.train.precision import Capability, Precision, cpuinfo_field, device_capability, resolve_precision

BENCH_STAGES = ("pretrain", "lm")


@dataclass
class Workload:
    """A model, one batch and its loss: what a training step of a stage costs."""

    model: nn.Module
    batch: dict[str, Any]
    loss: Callable[[nn.Module, Mapping[str, Any]], torch.Tensor]
    describe: str
    train_cfg: TrainConfig


def pretrain_workload(profile: str, batch_size: int | None = None, seed: int = 0) -> Workload:
    """Stage 1's BEST-RQ model at ``profile``'s size on ``segment_seconds`` crops of noise."""
    from duotok.models.bestrq import BestRQModel
    from duotok.train.pretrain import build_config

    model_cfg, train_cfg, data_cfg = build_config(profile)
    batch = int(batch_size or train_cfg.batch_size)
    samples = int(round(float(data_cfg["segment_seconds"]) * model_cfg.mel.sample_rate))
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = BestRQModel(model_cfg)
    mixture = 0.1 * torch.randn(batch, samples, generator=g)
    enc = model_cfg.encoder
    return Workload(model, {"mixture": mixture, "length": torch.full((batch,), samples)},
                    lambda m, b: m(b["mixture"], b["length"])[0],
                    f"pretrain: BEST-RQ encoder d{enc.dim} x {enc.n_lower}+{enc.n_upper} blocks, batch {batch} x "
                    f"{data_cfg['segment_seconds']:g} s", train_cfg)


def lm_workload(profile: str, batch_size: int | None = None, seed: int = 0) -> Workload:
    """The evaluation's token LM at ``profile``'s size on ``crop_seconds`` of two 1024-entry codebooks at 25 Hz
    (Duo-Tok's layout in the default profile)."""
    from duotok.eval.lm import lm_loss
    from duotok.eval.token_lm import TokenLM, TokenLMConfig

    p = stage_params("lm", profile)
    train_cfg = TrainConfig.from_dict(p["train"])
    batch = int(batch_size or train_cfg.batch_size)
    frames = max(2, int(round(float(p["crop_seconds"]) * 25.0)))
    sizes = (1024, 1024)
    torch.manual_seed(seed)
    model = TokenLM(TokenLMConfig(codebook_sizes=sizes, max_positions=max(4096, 2 * frames + 8), **p["model"]))
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, sizes[0], (batch, len(sizes), frames), generator=g)
    m = p["model"]
    return Workload(model, {"ids": ids, "lengths": torch.full((batch,), frames), "score_from": 0},
                    lambda mod, b: lm_loss(mod, b)[0],
                    f"lm: token LM d{m['dim']} x {m['n_layers']} layers, batch {batch} x {frames} frames", train_cfg)


WORKLOADS: dict[str, Callable[..., Workload]] = {"pretrain": pretrain_workload, "lm": lm_workload}


def time_steps(workload: Workload, precision: Precision, steps: int, warmup: int,
               device: torch.device) -> list[float]:
    """Seconds of each of ``steps`` timed training steps after ``warmup`` untimed ones."""
    model = workload.model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    cfg = workload.train_cfg
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in workload.batch.items()}
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with precision.autocast(device.type):
            loss = workload.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"non-finite loss in the {precision.used} benchmark step {i}")
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def bench_train(stage: str = "pretrain", profile: str = "default", precisions: Sequence[str] = ("fp32", "bf16"),
                steps: int = 5, warmup: int = 2, batch_size: int | None = None, device: str = "cpu",
                capability: Capability | None = None) -> dict[str, Any]:
    """Median seconds per training step of ``stage``'s model for each of ``precisions`` (``fp32``/``bf16``,
    both measured whatever the hardware), and what ``auto`` resolves to here and why.

    Each precision starts from the same seeded model and batch, so the timings compare like with like."""
    if stage not in WORKLOADS:
        raise ValueError(f"unknown stage {stage!r}; benchmarks exist for {BENCH_STAGES}")
    if steps < 1 or warmup < 0:
        raise ValueError("need steps >= 1 and warmup >= 0")
    for p in precisions:
        if p not in ("fp32", "bf16"):
            raise ValueError(f"precisions to time are fp32 and bf16, not {p!r}")
    dev = torch.device(device)
    cap = capability if capability is not None else device_capability(dev)
    auto = resolve_precision("auto", dev, cap)
    results: dict[str, dict[str, float]] = {}
    described = ""
    for name in precisions:
        workload = WORKLOADS[stage](profile, batch_size)
        described = workload.describe
        forced = Precision(name, name, dev.type, cap.reason)
        times = time_steps(workload, forced, steps, warmup, dev)
        results[name] = {"median_seconds": float(np.median(times)), "min_seconds": float(min(times)),
                         "max_seconds": float(max(times)), "steps": len(times)}
    out: dict[str, Any] = {
        "stage": stage, "profile": profile, "workload": described, "device": dev.type,
        "device_name": device_name(dev), "threads": torch.get_num_threads(), "native_bf16": cap.native_bf16,
        "capability": cap.reason, "auto": auto.used, "timings": results,
    }
    if "fp32" in results and "bf16" in results:
        out["bf16_speedup"] = results["fp32"]["median_seconds"] / results["bf16"]["median_seconds"]
    return out


def device_name(device: torch.device) -> str:
    """The processor's model name (CPU from /proc/cpuinfo where there is one), for quoting timings."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpuinfo_field(("model name",)) or platform.processor() or platform.machine()


def format_report(result: Mapping[str, Any]) -> str:
    """Human-readable lines: the workload, each precision's step time, and auto's choice with its reason."""
    lines = [f"{result['workload']} on {result['device_name']} ({result['device']}, {result['threads']} "
             f"thread(s))"]
    for name, t in result["timings"].items():
        lines.append(f"  {name:5s} {t['median_seconds']:.3f} s/step (median of {t['steps']}; "
                     f"{t['min_seconds']:.3f}-{t['max_seconds']:.3f})")
    if "bf16_speedup" in result:
        x = result["bf16_speedup"]
        lines.append(f"  bf16 is {x:.2f}x the speed of fp32" if x >= 1 else
                     f"  bf16 is {1 / x:.1f}x SLOWER than fp32")
    lines.append(f"  auto -> {result['auto']}: {result['capability']}")
    return "\n".join(lines)
