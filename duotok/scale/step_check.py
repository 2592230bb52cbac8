"""One real optimiser step of one inventory model, with its wall time and its process's peak memory.

    python -m duotok.scale.step_check pretrain --profile paper             # this process: fresh by construction
    python -m duotok.scale.step_check --all --profile paper --markdown     # each model in a forked child
    python -m duotok.scale.step_check --list --profile paper               # names and parameter counts

What a check does (:func:`optimizer_step`): the stage's loss on the model's example batch (batch 1,
about a second of audio or tokens) under the stage's precision setting, backward, the stage's
gradient clipping, one ``torch.optim.AdamW`` step at the stage's base learning rate (the warm-up's
first, much smaller rate is left out: the check is whether a step *works*, and a 1/32000 rate would
not move a LayerNorm gain of 1.0 in float32). It reports whether the loss is finite and which
parameter tensors changed: every tensor that received a non-zero gradient must have changed (two
float64 checksums per tensor, so no copy of the model is held).

Why peak memory is measured in a process of its own: ``ru_maxrss`` is a high-water mark of the whole
process, so it is only the model's if nothing bigger ran in that process before. :func:`check_many`
therefore runs every model in a child forked from a server that has imported the package but built
nothing (``multiprocessing``'s ``forkserver``, one child per model): the child's peak counts the
interpreter and its imports (``baseline_rss_mb``, the same for every child) plus everything the model,
its batch, gradients and optimiser state touched — what a fresh ``python -m`` process would show,
without paying the imports for every model. :func:`check_in_subprocess` runs the CLI in a truly fresh
interpreter, for a single model.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import json
import math
import multiprocessing
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from duotok.config import PROFILES, as_params
from duotok.scale.inventory import (
    EXAMPLE_SECONDS,
    OptimSettings,
    build_model,
    build_profile_models,
    count_parameters,
    model_specs,
)
from duotok.train.precision import resolve_precision

__all__ = ["StepReport", "check_in_subprocess", "check_many", "main", "markdown_table", "optimizer_step",
           "peak_rss_mb", "run_step_check", "start_forkserver"]

#: This module's import name (``__name__`` is ``"__main__"`` under ``python -m``).
MODULE = "duotok.scale.step_check"


@dataclass
class StepReport:
    """The outcome of one model's check. ``ok``: built, loss finite, at least one parameter tensor
    changed, and every tensor with a non-zero gradient changed. Memory in MiB (``ru_maxrss``);
    ``baseline_rss_mb`` is the process's peak before the model was built (interpreter and imports)."""

    name: str
    profile: str
    stage: str = ""
    total_params: int = 0
    trainable_params: int = 0
    loss: float = float("nan")
    grad_norm: float = float("nan")
    trainable_tensors: int = 0
    tensors_with_grad: int = 0
    changed_tensors: int = 0
    unchanged_with_grad: list[str] = field(default_factory=list)
    build_seconds: float = 0.0
    step_seconds: float = 0.0
    peak_rss_mb: float | None = None
    baseline_rss_mb: float | None = None
    precision: str = ""
    threads: int = 0
    error: str | None = None

    @property
    def loss_finite(self) -> bool:
        return math.isfinite(self.loss)

    @property
    def ok(self) -> bool:
        return (self.error is None and self.loss_finite and self.changed_tensors > 0
                and not self.unchanged_with_grad)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loss_finite": self.loss_finite, "ok": self.ok}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepReport:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MiB (Linux reports ``ru_maxrss`` in KiB)."""
    scale = 1.0 / (1024 * 1024) if sys.platform == "darwin" else 1.0 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _checksum(p: torch.Tensor) -> tuple[float, float]:
    """``(sum, Euclidean norm)`` accumulated in float64: a change of any element moves them (two
    figures, so a change cannot cancel out in both), read in one pass each without a copy of the
    tensor — a second copy of a 300 M-parameter model would inflate the very peak being measured."""
    x = p.detach()
    return float(x.sum(dtype=torch.float64)), float(torch.linalg.vector_norm(x, dtype=torch.float64))


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def optimizer_step(model: nn.Module, batch: Mapping[str, Any],
                   loss_fn: Callable[[nn.Module, Mapping[str, Any]], tuple[torch.Tensor, dict[str, float]]],
                   optim: OptimSettings, device: str | torch.device = "cpu") -> dict[str, Any]:
    """One training step as :class:`~duotok.train.loop.Trainer` takes it (train mode, the stage's
    precision, backward, clipping, AdamW), timed from the forward pass to the end of ``step()``.
    Returns ``loss``, ``grad_norm``, ``step_seconds``, ``precision`` and the parameter-change counts."""
    device = torch.device(device)
    model.to(device)
    batch = _to_device(batch, device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters")
    before = [_checksum(p) for _, p in named]
    optimizer = torch.optim.AdamW([p for _, p in named], lr=optim.lr, betas=optim.betas,
                                  weight_decay=optim.weight_decay)
    precision = resolve_precision(optim.precision, device)
    model.train()
    start = time.perf_counter()
    with precision.autocast(device.type):
        loss, _ = loss_fn(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip = optim.grad_clip if optim.grad_clip is not None else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_([p for _, p in named], clip)
    with_grad = [p.grad is not None and bool(p.grad.ne(0).any()) for _, p in named]
    optimizer.step()
    step_seconds = time.perf_counter() - start
    changed = [_checksum(p) != b for (_, p), b in zip(named, before, strict=True)]
    return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "step_seconds": step_seconds,
            "precision": precision.used, "trainable_tensors": len(named), "tensors_with_grad": sum(with_grad),
            "changed_tensors": sum(changed),
            "unchanged_with_grad": [n for (n, _), g, c in zip(named, with_grad, changed, strict=True) if g and not c]}


def run_step_check(name: str, profile: str = "paper", threads: int = 1, device: str = "cpu",
                   seconds: float = EXAMPLE_SECONDS) -> StepReport:
    """Build ``name`` of ``profile`` in THIS process, take one step, and report; an exception is
    caught into ``error`` (with its traceback) so one failing model does not hide the others. The
    peak memory is this process's: run it in a fresh one (the CLI, :func:`check_many`)."""
    if threads > 0:
        torch.set_num_threads(threads)
    report = StepReport(name, profile, threads=torch.get_num_threads(), baseline_rss_mb=peak_rss_mb())
    try:
        torch.manual_seed(0)   # as the stage runners seed before building: the same check gives the same loss
        start = time.perf_counter()
        entry = build_model(name, profile, seconds=seconds)
        report.build_seconds = time.perf_counter() - start
        report.stage = entry.spec.stage
        report.total_params, report.trainable_params = count_parameters(entry.model)
        result = optimizer_step(entry.model, entry.example_batch_fn(), entry.loss_fn, entry.spec.optim, device)
        for key, value in result.items():
            setattr(report, key, value)
    except Exception:
        report.error = traceback.format_exc(limit=8)
    report.peak_rss_mb = peak_rss_mb()
    return report


def _child(name: str, profile: str, threads: int, seconds: float) -> dict[str, Any]:
    """A forked child's task (module level, so the process pool can name it)."""
    return run_step_check(name, profile, threads, seconds=seconds).as_dict()


def _forkserver() -> multiprocessing.context.BaseContext:
    """The ``forkserver`` context, set to preload this module (by its import name, also when it runs
    as ``__main__`` under ``python -m``): the server imports torch, transformers and every stage once,
    and each child is forked from it with those imports done and nothing built."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([MODULE])
    return ctx


def start_forkserver() -> None:
    """Start the fork server now. Its imports take a while (tens of seconds on a busy 2-core machine);
    started early, they overlap whatever the caller does before its first :func:`check_many`."""
    from multiprocessing import forkserver

    _forkserver()
    forkserver.ensure_running()


def check_many(names: Iterable[str], profile: str = "paper", threads: int = 1, timeout: float | None = 600,
               seconds: float = EXAMPLE_SECONDS,
               on_report: Callable[[StepReport], None] | None = None) -> list[StepReport]:
    """:func:`run_step_check` of each model in its own child of a ``forkserver`` that preloaded this
    module (so each child starts with the imports done and nothing built), one at a time. A child
    that dies (out of memory) or overruns ``timeout`` gives a report with ``error`` set."""
    ctx = _forkserver()
    child = importlib.import_module(MODULE)._child   # a function the server's module has, by import name
    reports = []
    for name in names:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            future = pool.submit(child, name, profile, threads, seconds)
            try:
                report = StepReport.from_dict(future.result(timeout=timeout))
            except concurrent.futures.TimeoutError:
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.kill()
                report = StepReport(name, profile, error=f"timed out after {timeout} s")
            except Exception as exc:   # BrokenProcessPool: the child was killed (memory?)
                report = StepReport(name, profile, error=f"child process failed: {exc!r}")
        reports.append(report)
        if on_report is not None:
            on_report(report)
    return reports


def check_in_subprocess(name: str, profile: str = "paper", threads: int = 1, timeout: float | None = 600,
                        seconds: float = EXAMPLE_SECONDS) -> StepReport:
    """``python -m duotok.scale.step_check NAME --json`` in a fresh interpreter: the most literal
    "fresh process" measurement (it pays the imports each time)."""
    cmd = [sys.executable, "-m", MODULE, name, "--profile", profile, "--threads", str(threads),
           "--seconds", str(seconds), "--json"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return StepReport(name, profile, error=f"timed out after {timeout} s")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return StepReport(name, profile, error=f"exit {done.returncode}: {done.stderr[-2000:]}")
    return StepReport.from_dict(json.loads(lines[-1]))


# --------------------------------------------------------------------------- reporting


def _millions(n: int) -> str:
    return f"{n:,} ({n / 1e6:.1f} M)"


def markdown_table(reports: Sequence[StepReport], machine: str = "") -> str:
    """The README table: model, profile, parameters (trainable when fewer), one-step seconds, peak RSS."""
    rows = ["| model | profile | parameters | trainable | one-step s | peak RSS (GiB) | status |",
            "|---|---|---:|---:|---:|---:|---|"]
    for r in reports:
        status = "ok" if r.ok else (r.error.strip().splitlines()[-1][:80] if r.error else "check failed")
        trainable = "all" if r.trainable_params == r.total_params else _millions(r.trainable_params)
        rss = f"{r.peak_rss_mb / 1024:.2f}" if r.peak_rss_mb else "-"
        rows.append(f"| `{r.name}` | {r.profile} | {_millions(r.total_params)} | {trainable} | "
                    f"{r.step_seconds:.2f} | {rss} | {status} |")
    if machine:
        rows.append(f"\n{machine}")
    return "\n".join(rows)


def _list(profile: str) -> None:
    for entry in build_profile_models(profile, device="meta"):
        total, trainable = count_parameters(entry.model)
        print(f"{entry.name:48s} {entry.spec.stage:36s} {total:>13,d} {trainable:>13,d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duotok.scale.step_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="inventory names (see --list)")
    parser.add_argument("--profile", choices=PROFILES, default="paper")
    parser.add_argument("--all", action="store_true", help="every model of the profile")
    parser.add_argument("--list", action="store_true", help="list the models with parameter counts and exit")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--seconds", type=float, default=EXAMPLE_SECONDS, help="length of the example input")
    parser.add_argument("--timeout", type=float, default=600.0, help="per model, when forked")
    parser.add_argument("--json", action="store_true", help="one JSON report per line on stdout")
    parser.add_argument("--markdown", action="store_true", help="a markdown table at the end")
    parser.add_argument("--out", help="write every report to this JSON file")
    args = parser.parse_args(argv)
    if args.list:
        _list(args.profile)
        return 0
    names = [s.name for s in model_specs(as_params(args.profile), args.seconds)] if args.all else args.names
    if not names:
        parser.error("name a model, or pass --all / --list")

    def show(report: StepReport) -> None:
        if args.json:
            print(json.dumps(report.as_dict()), flush=True)
        else:
            state = "ok" if report.ok else "FAILED"
            print(f"{report.name}: {state} loss={report.loss:.4g} params={report.total_params:,} "
                  f"step={report.step_seconds:.2f}s build={report.build_seconds:.2f}s "
                  f"peak={report.peak_rss_mb or 0:.0f} MiB", flush=True)
            if report.error:
                print(report.error, file=sys.stderr, flush=True)

    if len(names) == 1 and not args.all:
        reports = [run_step_check(names[0], args.profile, args.threads, seconds=args.seconds)]
        show(reports[0])
    else:
        reports = check_many(names, args.profile, args.threads, args.timeout, args.seconds, on_report=show)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump([r.as_dict() for r in reports], fh, indent=1)
    if args.markdown:
        print(markdown_table(reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
