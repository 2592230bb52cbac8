"""train.precision: the hardware check behind ``auto``, what each setting resolves to, and the Trainer
actually running (and recording) the resolved precision."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from duotok.io.checkpoint import PretrainedMixin
from duotok.train import precision as precision_mod
from duotok.train.loop import TrainConfig, Trainer
from duotok.train.precision import (
    Capability,
    cpu_capability,
    cpu_flags,
    resolve_precision,
)

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
NATIVE = Capability(True, "fake CPU with AVX512-BF16")
EMULATED = Capability(False, "fake CPU with AVX2 only")


# --------------------------------------------------------------------------- the capability check


def test_cpu_flags_reads_x86_flags_and_arm_features(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Fake\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(x86) == {"fpu", "avx2", "avx512_bf16"}
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 sve\n")
    assert "bf16" in cpu_flags(arm)
    empty = tmp_path / "empty"
    empty.write_text("processor\t: 0\n")
    assert cpu_flags(empty) == frozenset()


@pytest.mark.parametrize("flags, env, machine, native", [
    (AVX2, {}, "x86_64", False),                                   # the AMD EPYC: emulated
    (AVX512, {}, "x86_64", False),                                 # AVX-512 without its BF16 extension
    (AVX512 | {"avx512_bf16"}, {}, "x86_64", True),
    (AVX512 | {"amx_bf16"}, {}, "x86_64", True),                   # Sapphire Rapids and newer
    (AVX512 | {"avx512_bf16"}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "x86_64", False),
    (AVX512 | {"avx512_bf16"}, {"ONEDNN_MAX_CPU_ISA": "avx512_core_amx"}, "x86_64", True),
    (AVX512 | {"avx512_bf16"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "x86_64", False),  # measured 1.2x slower
    (AVX512 | {"avx512_bf16"}, {"DNNL_MAX_CPU_ISA": "AVX2"}, "x86_64", False),
    (AVX512 | {"avx512_bf16"}, {"ATEN_CPU_CAPABILITY": "avx2"}, "x86_64", True),  # oneDNN still has bf16
    (frozenset({"fp", "asimd", "bf16"}), {}, "aarch64", True),
    (frozenset({"fp", "asimd"}), {}, "arm64", False),
])
def test_cpu_capability(flags, env, machine, native):
    cap = cpu_capability(flags, env, machine)
    assert cap.native_bf16 is native
    assert cap.reason  # always says why


# --------------------------------------------------------------------------- resolving a setting


def test_auto_picks_fp32_without_native_bf16_and_bf16_with_it():
    assert resolve_precision("auto", "cpu", EMULATED).used == "fp32"
    assert resolve_precision("auto", "cpu", NATIVE).used == "bf16"
    chosen = resolve_precision("auto", "cpu", EMULATED)
    assert chosen.autocast_dtype is None and "AVX2" in chosen.describe() and "auto" in chosen.describe()


def test_forced_settings_win_and_bf16_without_hardware_warns():
    assert resolve_precision("fp32", "cpu", NATIVE).used == "fp32"
    with pytest.warns(RuntimeWarning, match="emulated|AVX2"):
        forced = resolve_precision("bf16", "cpu", EMULATED)
    assert forced.used == "bf16" and forced.autocast_dtype == torch.bfloat16


def test_auto_asks_the_real_hardware_when_no_capability_is_given(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_capability", lambda: EMULATED)
    assert resolve_precision("auto", "cpu").used == "fp32"
    monkeypatch.setattr(precision_mod, "cpu_capability", lambda: NATIVE)
    assert resolve_precision("auto", "cpu").used == "bf16"


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="train.precision"):
        resolve_precision("fp16", "cpu", NATIVE)
    with pytest.raises(ValueError, match="train.precision"):
        TrainConfig.from_dict({"precision": "half"})
    with pytest.raises(ValueError, match="replaced by train.precision"):
        TrainConfig.from_dict({"bf16": True})
    assert TrainConfig.from_dict({}).precision == "auto"
    assert precision_mod.check_setting("bf16", "decoder.sampling.precision") == "bf16"
    with pytest.raises(ValueError, match=r"^decoder\.sampling\.precision must be one of"):
        precision_mod.check_setting("fp16", "decoder.sampling.precision")


# --------------------------------------------------------------------------- the Trainer runs what it resolved


@dataclass
class ProbeConfig:
    dim: int = 4


class Probe(nn.Module, PretrainedMixin):
    """A linear model that records the dtype its matmul ran in (bf16 under autocast, else float32)."""

    config_class = ProbeConfig

    def __init__(self, config: ProbeConfig | None = None):
        super().__init__()
        self.config = config or ProbeConfig()
        self.lin = nn.Linear(4, 1)
        self.seen: set[torch.dtype] = set()

    def forward(self, x, y):
        out = self.lin(x).squeeze(-1)
        self.seen.add(out.dtype)
        return (out.float() - y).pow(2).mean(), {}


class Pairs(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        x = torch.full((4,), float(i) / 16)
        return {"x": x, "y": x.sum()}


def _fit(tmp_path, setting, capability, monkeypatch):
    monkeypatch.setattr(precision_mod, "device_capability", lambda device: capability)
    model = Probe()
    cfg = TrainConfig(steps=3, batch_size=4, warmup_steps=1, log_every=1, save_every=3, eval_every=3,
                      precision=setting)
    trainer = Trainer(model, lambda m, b: m(b["x"], b["y"]), Pairs(), cfg, tmp_path / setting, device="cpu")
    return model, trainer.fit()


@pytest.mark.parametrize("capability, expected, dtype", [(EMULATED, "fp32", torch.float32),
                                                         (NATIVE, "bf16", torch.bfloat16)])
def test_trainer_runs_and_records_what_auto_resolved(tmp_path, monkeypatch, capsys, capability, expected, dtype):
    model, result = _fit(tmp_path, "auto", capability, monkeypatch)
    assert model.seen == {dtype}
    assert result.precision == {"setting": "auto", "used": expected, "device": "cpu", "reason": capability.reason}
    assert f"precision {expected} (auto: {capability.reason})" in capsys.readouterr().out


def test_smoke_stage_under_both_settings_gives_finite_comparable_losses(tmp_path, make_duosynth):
    """Stage 1 on the smoke profile, forced to each precision: same seed, same data, losses within a few %."""
    from duotok.train.pretrain import run

    songs = (("a", "train", 3.0), ("b", "train", 2.5), ("c", "valid", 2.0))
    root = make_duosynth(tmp_path / "data", songs)
    losses = {}
    for setting in ("fp32", "bf16"):
        with warnings.catch_warnings():  # forcing bf16 on a CPU without it warns; CI machines differ
            warnings.simplefilter("ignore", RuntimeWarning)
            result = run("smoke", out_dir=tmp_path / setting, data_dir=root, steps=3, precision=setting)
        summary = json.loads((tmp_path / setting / "result.json").read_text())
        assert summary["precision"]["used"] == setting and summary["precision"]["setting"] == setting
        assert result.skipped_steps == 0
        losses[setting] = (result.train["loss"], result.valid["loss"])
    for fp32, bf16 in zip(losses["fp32"], losses["bf16"], strict=True):
        assert torch.isfinite(torch.tensor([fp32, bf16])).all()
        assert abs(bf16 - fp32) / fp32 < 0.05, losses


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_auto_follows_the_device_and_the_trainer_runs_there(tmp_path):
    """On a GPU, ``auto`` is bf16 exactly where the device computes it (Ampere and newer)."""
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    chosen = resolve_precision("auto", "cuda")
    assert chosen.used == ("bf16" if native else "fp32") and chosen.device == "cuda"
    model = Probe()
    cfg = TrainConfig(steps=2, batch_size=4, warmup_steps=1, log_every=1, save_every=2, eval_every=2)
    result = Trainer(model, lambda m, b: m(b["x"], b["y"]), Pairs(), cfg, tmp_path, device="cuda").fit()
    assert result.precision["used"] == chosen.used
    assert model.seen == {torch.bfloat16 if native else torch.float32}
