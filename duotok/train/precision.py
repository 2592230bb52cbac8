"""Which floating-point precision a training stage runs in: ``auto | bf16 | fp32`` (``train.precision``).

Why a setting and not a fixed ``bf16: true``: bfloat16 autocast halves the step time on a CPU that
computes it natively (AVX512-BF16 or AMX on x86, the BF16 extension on Arm) but is *emulated* on one that
does not — a plain AVX2 laptop or server — where the same step is 10-20x **slower** than float32
(measured: 0.90 s -> 15.9 s on an AVX2 EPYC). ``auto`` therefore asks the hardware at run time:

* CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)`` (Ampere and newer);
* CPU, x86: the ``avx512_bf16`` or ``amx_bf16`` flag **and** oneDNN allowed to use it. Autocast's bf16
  matmuls and convolutions run in oneDNN, whose documented ``ONEDNN_MAX_CPU_ISA`` caps the instructions
  it may use; capped below ``AVX512_CORE_BF16`` it emulates bf16 again. That is also how to reproduce an
  AVX2 machine on a newer one. Measured on an AVX512-BF16 EPYC (stage-1 default step, 2 threads): fp32
  0.73 s, bf16 0.35 s; with ``ONEDNN_MAX_CPU_ISA=AVX2`` bf16 16.2 s; with ``AVX512_CORE`` (AVX-512
  without BF16) bf16 0.84 s, still slower than fp32. ``ATEN_CPU_CAPABILITY=avx2`` alone left bf16 at
  0.35 s, so it is not part of the check;
* CPU, Arm: the ``bf16`` feature (Linux ``/proc/cpuinfo``, macOS ``hw.optional.arm.FEAT_BF16``).

Anything else runs in float32. ``bf16`` and ``fp32`` force the choice (``bf16`` on a machine without
native support still runs, with a warning: results are valid, only slow). Every stage records the
:class:`Precision` it ran in (the log line and its metrics JSON), because a timing or a loss curve means
little without it. Numerically sensitive parts (spectra, quantizer distances, losses) switch autocast off
themselves, so either precision gives comparable losses.
"""

from __future__ import annotations

import os
import platform
import subprocess
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp32")

#: oneDNN ISA names at or above which it has bf16 instructions (``ONEDNN_MAX_CPU_ISA`` caps it).
_ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX",
                     "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16", "AVX10_2_512",
                     "AVX10_2_512_AMX_2", "ALL")


@dataclass(frozen=True)
class Capability:
    """Whether ``device`` computes bfloat16 natively, and the evidence in words."""

    native_bf16: bool
    reason: str


@dataclass(frozen=True)
class Precision:
    """The precision a run actually uses: ``setting`` as configured, ``used`` = ``bf16`` | ``fp32``."""

    setting: str
    used: str
    device: str
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The ``torch.autocast`` dtype, or None for plain float32."""
        return torch.bfloat16 if self.used == "bf16" else None

    def autocast(self, device_type: str | None = None) -> torch.autocast:
        """A ``torch.autocast`` context for this precision (disabled for float32)."""
        return torch.autocast(device_type=device_type or self.device, dtype=torch.bfloat16,
                              enabled=self.used == "bf16")

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def describe(self) -> str:
        """One line for logs: ``precision fp32 (auto: ...)``."""
        how = "forced" if self.setting != "auto" else "auto"
        return f"precision {self.used} ({how}: {self.reason})"


def check_setting(setting: str, what: str = "train.precision") -> str:
    """``setting`` if it is one of :data:`PRECISIONS`, else a ValueError that names the key (``what``)."""
    if setting not in PRECISIONS:
        raise ValueError(f"{what} must be one of {PRECISIONS}, got {setting!r}")
    return setting


def cpuinfo_field(names: tuple[str, ...], cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The value of the first line of ``cpuinfo`` whose key is one of ``names`` (case-insensitive);
    ``None`` without such a line or file (macOS, Windows)."""
    path = Path(cpuinfo)
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in names:
            return value.strip()
    return None


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags the OS reports (x86 ``flags``, Arm ``Features``); empty where unknown.

    macOS has no /proc/cpuinfo: there the Arm BF16 feature comes from ``sysctl``."""
    if Path(cpuinfo).is_file():
        return frozenset((cpuinfo_field(("flags", "features"), cpuinfo) or "").split())
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True,
                                 timeout=5, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return frozenset()
        return frozenset({"bf16"}) if out == "1" else frozenset()
    return frozenset()


def cpu_capability(flags: frozenset[str] | None = None, env: Mapping[str, str] | None = None,
                   machine: str | None = None) -> Capability:
    """Native bf16 on this CPU? ``flags``/``env``/``machine`` default to the real ones (tests pass fakes)."""
    flags = cpu_flags() if flags is None else flags
    env = os.environ if env is None else env
    machine = (machine or platform.machine()).lower()
    if machine in ("arm64", "aarch64"):
        if "bf16" in flags:
            return Capability(True, "Arm CPU with the BF16 extension")
        return Capability(False, "Arm CPU without the BF16 extension: bf16 would be emulated")
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if not native:
        has = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
        return Capability(False, f"x86 CPU with {has} but no AVX512-BF16/AMX: bf16 would be emulated "
                                 "(about 10-20x slower than float32)")
    isa = (env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if isa and isa not in _ONEDNN_BF16_ISAS:
        return Capability(False, f"CPU has {'/'.join(native)} but ONEDNN_MAX_CPU_ISA={isa} keeps oneDNN below "
                                 "AVX512_CORE_BF16: bf16 would be emulated")
    return Capability(True, f"x86 CPU with {'/'.join(native)}")


def cuda_capability(device: torch.device) -> Capability:
    """Native bf16 on a CUDA device (compute capability 8.0+), not counting emulation."""
    name = torch.cuda.get_device_name(device)
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return Capability(True, f"CUDA device {name} computes bf16")
    return Capability(False, f"CUDA device {name} has no native bf16")


def device_capability(device: torch.device | str) -> Capability:
    device = torch.device(device)
    if device.type == "cuda":
        return cuda_capability(device)
    if device.type == "cpu":
        return cpu_capability()
    return Capability(False, f"no bf16 capability check for device type {device.type!r}")


def resolve_precision(setting: str, device: torch.device | str,
                      capability: Capability | None = None) -> Precision:
    """The precision a stage runs in on ``device`` for ``train.precision = setting``.

    ``capability`` defaults to :func:`device_capability` (tests pass one in)."""
    check_setting(setting)
    device = torch.device(device)
    if setting == "fp32":
        return Precision(setting, "fp32", device.type, "float32 as configured")
    cap = capability if capability is not None else device_capability(device)
    if setting == "bf16":
        if not cap.native_bf16:
            warnings.warn(f"train.precision is bf16 but {cap.reason}; set it to auto or fp32 for float32 speed",
                          RuntimeWarning, stacklevel=2)
        return Precision(setting, "bf16", device.type, cap.reason)
    return Precision(setting, "bf16" if cap.native_bf16 else "fp32", device.type, cap.reason)
