"""How long a pipeline stage took, on which machine, and whether other work shared its CPU — recorded by
the run itself, not typed in afterwards.

A stage command names its DVC stage (``duotok notebook run 00_corpus ... --stage corpus``,
``duotok tokens ... --stage tokens@duotok``). :func:`timed_stage` times it and, when it succeeds, writes
``reports/metrics/timing/<stage>.json`` atomically (a temp file, then a rename; a failed stage writes none).
That file is a DVC output of its stage (``cache: false``); the ``pipeline`` stage gathers them all into
``reports/metrics/pipeline.json`` (:mod:`duotok.reporting.pipeline`).

A record holds the stage, the profile, wall seconds (monotonic clock, from the runner's start to its last
output written; the second or two of Python start-up before it are not counted), start and end time
(UTC, ISO 8601), the machine (CPU model, logical and usable cores, native bf16 as
:mod:`duotok.train.precision` sees it, the GPU if torch sees one) and the CPU sharing:

**Other heavy work on the CPU is measured, not asserted.** ``/proc/stat`` counts the busy time of every
CPU this process may run on (user + nice + system + irq + softirq; not idle, iowait or steal) over the
stage; the stage's own process tree used ``getrusage(RUSAGE_SELF)`` + ``getrusage(RUSAGE_CHILDREN)`` of it
(the notebook's kernel and whatever it starts are children the runner waits for, so they count as own).
The difference is ``other_cpu_seconds``; ``other_cpu_fraction`` divides it by ``wall_seconds x cores``
(the machine's CPU capacity over the stage), and ``shared_cpu`` is ``other_cpu_fraction`` >
:data:`SHARED_CPU_THRESHOLD`. The threshold, 5 % of the machine (0.1 core on average on 2 cores), sits
above what an otherwise idle machine's daemons and the measurement's own slack add (clock-tick granularity;
the kernel's interrupt work for the stage counts as "other"), and is enough to slow a stage that uses every
core by a few percent. CPU time the hypervisor gave other guests is reported apart (``steal_cpu_seconds``).
Where ``/proc/stat`` or ``resource`` does not exist (macOS, Windows) these fields are null, never an error.
On a container whose CPU limit is a quota rather than a cpuset, ``/proc/stat`` shows the host's CPUs and the
fraction is the host's: read it with that in mind.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from duotok.io.files import write_json_atomic
from duotok.paths import project_root

FORMAT = "duotok-stage-timing"
VERSION = 1
#: Where each stage's record goes, relative to the project root: ``<TIMING_DIR>/<stage>.json``.
TIMING_DIR = "reports/metrics/timing"
#: ``shared_cpu`` is true above this fraction of the machine's CPU time used by other processes.
SHARED_CPU_THRESHOLD = 0.05
PROC_STAT = "/proc/stat"

# /proc/stat cpu line: user nice system idle iowait irq softirq steal guest guest_nice (guest time is
# already inside user / nice, so it is not added again)
_BUSY_FIELDS = (0, 1, 2, 5, 6)
_STEAL_FIELD = 7


def timing_path(stage: str, root: Path | None = None) -> Path:
    """``reports/metrics/timing/<stage>.json`` under the project root (``$DUOTOK_ROOT``)."""
    if not stage or "/" in stage or stage.startswith("."):
        raise ValueError(f"not a stage name: {stage!r}")
    return (root or project_root()) / TIMING_DIR / f"{stage}.json"


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU seconds of the machine (over ``n_cpus`` CPUs) since boot, from ``/proc/stat``."""

    busy_seconds: float
    steal_seconds: float
    n_cpus: int


def usable_cpus() -> set[int] | None:
    """The CPUs this process may run on (its affinity), or None where the OS does not say."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


def read_proc_stat(path: str | Path = PROC_STAT, cpus: Collection[int] | None = None) -> CpuTimes | None:
    """Busy and steal seconds from a ``/proc/stat``-format file, summed over ``cpus`` (the ``cpuN`` lines)
    or, when ``cpus`` is None or the file lacks one of them, over the whole machine (the ``cpu`` line).
    None if the file does not exist or cannot be parsed."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    total: list[int] | None = None
    per_cpu: dict[int, list[int]] = {}
    try:
        for line in text.splitlines():
            if not line.startswith("cpu"):
                continue
            name, *fields = line.split()
            values = [int(v) for v in fields] + [0] * max(0, 10 - len(fields))
            if name == "cpu":
                total = values
            elif name[3:].isdigit():
                per_cpu[int(name[3:])] = values
    except ValueError:
        return None
    if cpus and all(c in per_cpu for c in cpus):
        rows = [per_cpu[c] for c in cpus]
    elif total is not None:
        rows = [total]
        cpus = per_cpu.keys() if per_cpu else None
    else:
        return None
    n = len(cpus) if cpus else (os.cpu_count() or 1)
    hz = _clock_ticks()
    busy = sum(row[i] for row in rows for i in _BUSY_FIELDS)
    steal = sum(row[_STEAL_FIELD] for row in rows)
    return CpuTimes(busy / hz, steal / hz, n)


def own_cpu_seconds() -> float | None:
    """User + system CPU seconds of this process and of its children it has waited for; None without
    ``resource`` (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cpu_sharing(wall_seconds: float, n_cpus: int | None, machine_busy_seconds: float | None,
                own_seconds: float | None, threshold: float = SHARED_CPU_THRESHOLD) -> dict[str, Any]:
    """``other_cpu_seconds`` (the machine's busy CPU time less the stage's own, at least 0),
    ``other_cpu_fraction`` (of ``wall_seconds x n_cpus``) and ``shared_cpu`` (fraction > ``threshold``);
    all None where a measurement is missing."""
    if machine_busy_seconds is None or own_seconds is None or not n_cpus or wall_seconds <= 0:
        return {"other_cpu_seconds": None, "other_cpu_fraction": None, "shared_cpu": None}
    other = max(0.0, machine_busy_seconds - own_seconds)
    fraction = other / (wall_seconds * n_cpus)
    return {"other_cpu_seconds": round(other, 2), "other_cpu_fraction": round(fraction, 4),
            "shared_cpu": fraction > threshold}


def machine_info() -> dict[str, Any]:
    """The machine a stage ran on: CPU model, logical / usable cores, native bf16 (CPU), GPU (or None).
    A part that cannot be determined is None; this never raises."""
    cpus = usable_cpus()
    info: dict[str, Any] = {"cpu_model": None, "logical_cores": os.cpu_count(),
                            "usable_cores": len(cpus) if cpus else os.cpu_count(),
                            "system": f"{platform.system()} {platform.machine()}".strip(),
                            "native_bf16": None, "native_bf16_reason": None, "gpu": None}
    try:
        from duotok.train.precision import cpu_capability, cpuinfo_field

        info["cpu_model"] = (cpuinfo_field(("model name", "hardware", "cpu model"))
                             or platform.processor() or platform.machine() or None)
        capability = cpu_capability()
        info["native_bf16"], info["native_bf16_reason"] = capability.native_bf16, capability.reason
    except Exception as exc:  # a machine description must never fail a finished stage
        info["native_bf16_reason"] = f"unknown ({type(exc).__name__}: {exc})"
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                           "native_bf16": bool(torch.cuda.is_bf16_supported(including_emulation=False))}
    except Exception:  # no torch, or no driver: no GPU to report
        pass
    return info


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


@contextmanager
def timed_stage(stage: str | None, profile: str | None = None, *, path: str | Path | None = None,
                proc_stat: str | Path = PROC_STAT, cpus: Collection[int] | None = None,
                own_cpu: Callable[[], float | None] = own_cpu_seconds,
                clock: Callable[[], float] = time.monotonic, now: Callable[[], float] = time.time,
                machine: Callable[[], dict[str, Any]] = machine_info) -> Iterator[dict[str, Any] | None]:
    """Time the enclosed block as DVC stage ``stage`` and write its record to ``path`` (default
    :func:`timing_path`) when the block succeeds; yields the record (filled in on exit). ``stage`` None:
    time nothing, write nothing. The keyword arguments after ``path`` are for tests."""
    if stage is None:
        yield None
        return
    out = Path(path) if path is not None else timing_path(stage)
    cpus = usable_cpus() if cpus is None else cpus
    record: dict[str, Any] = {"format": FORMAT, "version": VERSION, "stage": stage, "profile": profile}
    start_cpu, start_own = read_proc_stat(proc_stat, cpus), own_cpu()
    start_wall, start_time = clock(), now()
    yield record
    wall = clock() - start_wall
    end_time = now()
    end_cpu, end_own = read_proc_stat(proc_stat, cpus), own_cpu()
    measured = start_cpu is not None and end_cpu is not None and start_cpu.n_cpus == end_cpu.n_cpus
    busy = end_cpu.busy_seconds - start_cpu.busy_seconds if measured else None
    own = end_own - start_own if start_own is not None and end_own is not None else None
    record.update({
        "wall_seconds": round(wall, 2), "start_utc": _utc(start_time), "end_utc": _utc(end_time),
        "own_cpu_seconds": None if own is None else round(own, 2),
        "machine_busy_cpu_seconds": None if busy is None else round(busy, 2),
        **cpu_sharing(wall, end_cpu.n_cpus if measured else None, busy, own),
        "shared_cpu_threshold": SHARED_CPU_THRESHOLD,
        "steal_cpu_seconds": round(end_cpu.steal_seconds - start_cpu.steal_seconds, 2) if measured else None,
        "cores_measured": end_cpu.n_cpus if measured else None,
        "machine": machine(),
    })
    write_json_atomic(out, record)
