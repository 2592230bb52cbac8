"""The one training loop every stage uses.

What it takes care of, so stage runners only define "model + loss of a batch":

* **scale** — runs unchanged as one process or under ``torchrun`` (DDP; gloo on CPU, NCCL on GPU);
  each process sees its own shard of the data (``DistributedSampler``); metrics are averaged;
* **batch size beyond memory** — ``train.grad_accum`` micro-batches of ``batch_size`` per optimiser
  step (gradients summed over them, DDP's all-reduce only on the last), so the effective batch is
  ``batch_size × grad_accum × processes``; with ``grad_accum: 1`` the step is exactly the plain one;
* **numerics** — bf16 autocast where the hardware computes it natively (``train.precision: auto``,
  :mod:`duotok.train.precision`; float32 elsewhere, since emulated bf16 is 10-20x slower), AdamW
  with linear warm-up then cosine decay, gradient clipping, and a NaN guard that skips a non-finite
  step and stops with a clear error after several in a row (SimVQ is known to NaN without warm-up and clipping);
* **resumability** — ``<out>/last/`` holds ``config.json`` + ``model.safetensors`` (the model's
  ``save_pretrained``) and ``training_state.pt`` (optimizer, scheduler, step, data position, RNG;
  loadable with ``weights_only=True``); a rerun with the same ``<out>`` continues from there, and a
  run killed and resumed trains exactly like an uninterrupted one (bit for bit on CPU; see below);
* **records** — ``train_log.csv`` / ``valid_log.csv`` (one row per logged step; rows past the resumed
  step are dropped so a crash never duplicates them) and ``<out>/model/`` with the final weights;
* **progress** — a tqdm bar when interactive, a log line every ``log_every`` steps otherwise
  (papermill and CI logs stay readable).

Exact resume
------------
``training_state.pt`` records the epoch, how many batches of it were consumed, and — for every
process, gathered to the main one — the RNG states training draws from (torch CPU, CUDA when
initialised, NumPy and Python ``random``: masking and noise inside models use the global torch RNG;
the crop datasets draw from ``(seed, epoch, index)``-seeded generators of their own) plus the
not-yet-logged metric window. A resume rebuilds that epoch's sampler (seeded by ``seed + epoch``, or
``DistributedSampler(seed).set_epoch(epoch)``), skips the consumed batches by index (no item is
loaded and discarded), and restores each process's own RNG states, so every later batch, mask and
noise draw is the uninterrupted run's. Around that: validation runs under a forked RNG (it never
shifts the training draws), the DataLoader draws its worker base seed from a generator of its own (not
the global one), and the next step's learning rate is recomputed from the current ``train.steps``
(which may grow). Resuming under another number of processes cannot continue the shards exactly: it
starts the next epoch with seeds derived from ``(seed, rank, step)`` and says so; so do checkpoints
written before the data position was recorded.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler
from tqdm.auto import tqdm

from duotok.errors import CheckpointError
from duotok.io.checkpoint import (
    capture_rng_state,
    config_with_defaults,
    load_training_state,
    restore_rng_state,
    save_training_state,
)
from duotok.train.distributed import DistInfo, all_reduce_mean, barrier, init_distributed
from duotok.train.param_groups import hold_parameters, parameter_groups
from duotok.train.precision import check_setting, resolve_precision

LossFn = Callable[[nn.Module, Mapping[str, Any]], tuple[torch.Tensor, dict[str, float]]]

MAX_CONSECUTIVE_BAD_STEPS = 5
#: Settings a resumed run must share with the checkpoint (``steps`` may grow: train longer).
RESUME_MUST_MATCH = ("batch_size", "grad_accum", "lr", "lr_multipliers", "holds", "weight_decay", "betas",
                     "warmup_steps", "min_lr_ratio", "seed")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings shared by every stage (``params.yaml: <stage>.train``)."""

    steps: int = 1000
    batch_size: int = 16       # per process and micro-batch
    grad_accum: int = 1        # micro-batches per optimiser step (effective batch = batch_size x grad_accum x processes)
    lr: float = 5e-4
    # parameter-name prefix → multiple of lr, one AdamW group each (duotok.train.param_groups); {} = one group
    lr_multipliers: dict[str, float] = field(default_factory=dict)
    # parameter-name prefix → the step from which those parameters train (duotok.train.param_groups.hold_parameters)
    holds: dict[str, int] = field(default_factory=dict)
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    log_every: int = 10
    eval_every: int = 200
    save_every: int = 200
    seed: int = 0
    num_workers: int = 0
    precision: str = "auto"    # auto | bf16 | fp32 (duotok.train.precision): bf16 only where native
    threads: int = 0           # torch intra-op threads per process; 0 = torch's default
    max_eval_batches: int = 50

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        if "bf16" in data:
            raise ValueError("train.bf16 was replaced by train.precision: auto | bf16 | fp32 (auto = bf16 only "
                             "where the hardware computes it natively)")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown train settings {sorted(unknown)}; known: {sorted(known)}")
        # Each value is checked against the field's annotation: `steps: "10"` names train.steps, int expected.
        cfg = config_with_defaults(cls, dict(data), "train")
        check_setting(cfg.precision)
        if cfg.grad_accum < 1:
            raise ValueError(f"train.grad_accum must be >= 1 (micro-batches per optimiser step), got {cfg.grad_accum}")
        return cfg


def lr_lambda(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the base LR: linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class CsvLog:
    """Append-only CSV of metric rows whose columns may grow; truncated to a step on resume."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                self.rows = list(csv.DictReader(fh))

    def truncate_after(self, step: int) -> None:
        self.rows = [r for r in self.rows if int(float(r["step"])) <= step]
        self._write()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._write()

    def _write(self) -> None:
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)


@dataclass
class TrainResult:
    step: int
    train: dict[str, float] = field(default_factory=dict)
    valid: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_from: int | None = None
    skipped_steps: int = 0
    precision: dict[str, str] = field(default_factory=dict)   # Precision.as_dict(): setting, used, device, reason


class _SkipSampler(Sampler[int]):
    """The indices of ``sampler`` after its first ``start``: a mid-epoch resume skips the consumed
    batches by index, without loading (and discarding) their items."""

    def __init__(self, sampler: Sampler[int], start: int):
        super().__init__()
        self.sampler = sampler
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.start, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.start)  # type: ignore[arg-type]


def _derived_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (tuple hashes of ints are the same in every process)."""
    return hash(tuple(int(p) for p in parts)) & (2**63 - 1)


class Trainer:
    """Trains ``model`` (an ``nn.Module`` with ``save_pretrained``/``from_pretrained``) by
    minimising ``loss_fn(model, batch) -> (loss, metrics)`` over ``train_data``."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_data: Dataset,
        cfg: TrainConfig,
        out_dir: str | Path,
        valid_data: Dataset | None = None,
        collate_fn: Callable | None = None,
        device: str | None = None,
        dist_info: DistInfo | None = None,
    ):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.info = dist_info or init_distributed(device)
        self.precision = resolve_precision(cfg.precision, self.info.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed + self.info.rank)
        self.model = model.to(self.info.device)
        self.loss_fn = loss_fn
        self.train_data = train_data
        self.valid_data = valid_data
        self.collate_fn = collate_fn
        groups = parameter_groups(self.model, cfg.lr, cfg.lr_multipliers)   # one group when there are none
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        hold_parameters(self.model, cfg.holds, lambda: self.step)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_lambda(s, cfg))
        self.ddp_model: nn.Module = self.model
        if self.info.distributed:
            # find_unused_parameters: a head whose target a batch lacks (the lyrics head on a batch of
            # instrumental crops) gets no gradient on that rank, and a variant may never use a module
            # (the ``heads_none`` ablation leaves stage 3's upper encoder without a loss). Plain DDP
            # refuses both; with the flag a locally unused parameter joins the all-reduce with a zero
            # gradient, and one unused on every rank keeps ``grad = None``, so AdamW skips it exactly as
            # a single process does. The cost is one walk of the autograd graph per step.
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.info.device.index] if self.info.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0        # batches of ``epoch`` consumed so far (saved, skipped on resume)
        self._window: dict[str, float] = {}   # metric sums since the last logged step
        self._window_n = 0

    # ------------------------------------------------------------------ data

    def _sampler(self, epoch: int) -> Sampler[int]:
        """The order of ``epoch``: a pure function of (seed, epoch[, rank, world size])."""
        data = self.train_data
        if self.info.distributed:
            sampler = DistributedSampler(data, num_replicas=self.info.world_size, rank=self.info.rank,
                                         shuffle=True, seed=self.cfg.seed, drop_last=True)
            sampler.set_epoch(epoch)
            return sampler
        return RandomSampler(data, generator=torch.Generator().manual_seed(self.cfg.seed + epoch))

    def _loader(self, epoch: int, sampler: Sampler[int] | None = None, skip: int = 0) -> DataLoader:
        """``epoch``'s batches after its first ``skip`` ones."""
        data = self.train_data
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        sampler = sampler if sampler is not None else self._sampler(epoch)
        if skip:
            sampler = _SkipSampler(sampler, skip * self.cfg.batch_size)
        # Its own generator: a DataLoader otherwise draws the workers' base seed from the global RNG
        # each time it is iterated, which would make the model's draws depend on where an epoch began.
        generator = torch.Generator().manual_seed(_derived_seed(self.cfg.seed, self.info.rank, epoch))
        return DataLoader(data, batch_size=self.cfg.batch_size, sampler=sampler, drop_last=True,
                          num_workers=self.cfg.num_workers, collate_fn=self.collate_fn,
                          persistent_workers=False, generator=generator)

    def _batches(self) -> Iterator[Mapping[str, Any]]:
        """Batches forever, epoch after epoch, keeping ``epoch``/``batch_in_epoch`` current (after a
        resume they start mid-epoch)."""
        while True:
            sampler = self._sampler(self.epoch)
            per_epoch = len(sampler) // self.cfg.batch_size  # type: ignore[arg-type]
            if per_epoch == 0:
                raise ValueError(
                    f"the training set has {len(self.train_data)} items, fewer than one batch of "
                    f"{self.cfg.batch_size} per process: lower train.batch_size or add data"
                )
            if self.batch_in_epoch < per_epoch:
                for batch in self._loader(self.epoch, sampler, skip=self.batch_in_epoch):
                    self.batch_in_epoch += 1
                    yield batch
            self.epoch += 1
            self.batch_in_epoch = 0

    def _to_device(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.info.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _autocast(self) -> torch.autocast:
        return self.precision.autocast(self.info.device.type)

    # ------------------------------------------------------------------ checkpoints

    @property
    def last_dir(self) -> Path:
        return self.out_dir / "last"

    def _process_state(self) -> dict[str, Any]:
        """What differs between processes and an exact resume needs: RNG states and the metric window."""
        return {"rng": capture_rng_state(), "log_window": dict(self._window), "log_window_n": self._window_n}

    def save(self, directory: Path | None = None) -> None:
        """Weights + training state, written by the main process with every process's RNG states
        (gathered; all processes must call this)."""
        directory = directory or self.last_dir
        mine = self._process_state()
        if self.info.distributed:
            per_rank: list[Any] | None = [None] * self.info.world_size if self.info.is_main else None
            dist.gather_object(mine, per_rank, dst=0)
        else:
            per_rank = [mine]
        if self.info.is_main:
            self.model.save_pretrained(directory)
            extra = {"epoch": self.epoch, "batches_in_epoch": self.batch_in_epoch,
                     "world_size": self.info.world_size, "per_rank": per_rank,
                     "train_config": _plain(asdict(self.cfg))}
            save_training_state(directory / "training_state.pt", step=self.step, optimizer=self.optimizer,
                                scheduler=self.scheduler, extra=extra)
        barrier(self.info)

    def try_resume(self) -> int | None:
        """Continue from ``<out>/last`` if it exists. Returns the step resumed from, or None."""
        state = self.last_dir / "training_state.pt"
        if not state.is_file():
            return None
        loaded = type(self.model).from_pretrained(self.last_dir)
        if getattr(loaded, "config", None) != getattr(self.model, "config", None):
            raise CheckpointError(self.last_dir, "holds a run of a different model configuration; use another "
                                                 "output folder or start over (--no-resume)")
        self.model.load_state_dict(loaded.state_dict())
        self.model.train()
        info = load_training_state(state, self.optimizer, self.scheduler, restore_rng=False)
        extra = info["extra"]
        saved = dict(extra.get("train_config", {}))
        current = _plain(asdict(self.cfg))
        changed = sorted(k for k in RESUME_MUST_MATCH if k in saved and saved[k] != current[k])
        if changed:
            raise CheckpointError(self.last_dir, f"was trained with other {changed} than now; use another output "
                                                 "folder or start over (--no-resume)")
        self.step = int(info["step"])
        self._reset_lr()
        per_rank = extra.get("per_rank")
        exact = (isinstance(per_rank, list) and "batches_in_epoch" in extra
                 and extra.get("world_size") == self.info.world_size == len(per_rank))
        if exact:
            mine = per_rank[self.info.rank]
            try:
                restore_rng_state(mine["rng"])
                self._window = {str(k): float(v) for k, v in mine["log_window"].items()}
                self._window_n = int(mine["log_window_n"])
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise CheckpointError(state, f"malformed RNG state of process {self.info.rank} ({exc!r})") from exc
            self.epoch = int(extra["epoch"])
            self.batch_in_epoch = int(extra["batches_in_epoch"])
        else:
            # Written by another number of processes (the shards differ) or before the data position was
            # recorded: continue with a fresh epoch and per-process seeds derived from the step.
            self.epoch = int(extra.get("epoch", 0)) + 1
            self.batch_in_epoch = 0
            torch.manual_seed(_derived_seed(self.cfg.seed, self.info.rank, self.step))
            if self.info.is_main:
                print(f"[{self.out_dir.name}] {self.last_dir} was written by "
                      f"{extra.get('world_size', 'an unknown number of')} process(es) without a matching data "
                      f"position for {self.info.world_size}: resuming at step {self.step} with a fresh epoch, "
                      "not exactly as an uninterrupted run", flush=True)
        return self.step

    def _reset_lr(self) -> None:
        """The next step's learning rate under the *current* ``train.steps`` (the saved optimizer holds
        the one computed under the checkpoint's, which differs when a resumed run trains longer)."""
        lrs = [base * lr_lambda(self.scheduler.last_epoch, self.cfg) for base in self.scheduler.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.scheduler._last_lr = lrs  # what get_last_lr() reports

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean validation metrics. Runs under a forked RNG: whatever validation draws (masks, noise, a
        DataLoader's seed), the training draws after it are the same as without it."""
        if self.valid_data is None:
            return {}
        devices = [self.info.device] if self.info.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=self.info.device.type):
            return self._evaluate()

    def _evaluate(self) -> dict[str, float]:
        self.model.eval()
        loader = DataLoader(self.valid_data, batch_size=self.cfg.batch_size, shuffle=False,
                            collate_fn=self.collate_fn, num_workers=0)
        sums: dict[str, float] = {}
        n = 0
        for i, batch in enumerate(loader):
            if i >= self.cfg.max_eval_batches:
                break
            with self._autocast():
                loss, metrics = self.loss_fn(self.model, self._to_device(batch))
            for k, v in {"loss": float(loss), **metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
        self.model.train()
        return all_reduce_mean({k: v / max(1, n) for k, v in sums.items()}, self.info)

    # ------------------------------------------------------------------ the loop

    def _accumulate(self, batches: Iterator[Mapping[str, Any]]) -> tuple[float | None, dict[str, float]]:
        """Forward and backward ``grad_accum`` micro-batches, leaving the gradient of their *mean* loss
        in ``.grad``. Returns (mean loss, mean metrics), or (None, {}) when a micro-batch's loss is not
        finite on any process: the whole step is then skipped everywhere. Every micro-batch of the step
        is drawn either way, so the data position never depends on where a bad one fell.

        Under DDP every micro-batch but the last runs in ``no_sync`` (gradients are all-reduced once per
        step), and every process runs every backward even after a non-finite loss, because a process
        that skipped the synchronising backward would leave the others waiting; whether to step is then
        agreed by an all-reduce. With ``grad_accum == 1`` on one process this is the plain step,
        operation for operation (no division by 1, the same zero_grad → forward → backward order)."""
        n = self.cfg.grad_accum
        distributed = self.info.distributed
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        sums: dict[str, float] = {}
        finite = True
        for i in range(n):
            batch = self._to_device(next(batches))
            if not finite and not distributed:
                continue                       # the step is lost already: only keep the data position
            sync = self.ddp_model.no_sync() if distributed and i < n - 1 else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    loss, metrics = self.loss_fn(self.ddp_model, batch)
                ok = bool(torch.isfinite(loss))
                finite = finite and ok
                if not ok and not distributed:
                    continue
                (loss if n == 1 else loss / n).backward()
            total += float(loss.detach())
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        if distributed:
            flag = torch.tensor([1.0 if finite else 0.0], device=self.info.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = bool(flag.item() > 0)
        if not finite:
            return None, {}
        return total / n, {k: v / n for k, v in sums.items()}

    def fit(self, resume: bool = True) -> TrainResult:
        cfg, info = self.cfg, self.info
        resumed = self.try_resume() if resume else None
        train_log = CsvLog(self.out_dir / "train_log.csv") if info.is_main else None
        valid_log = CsvLog(self.out_dir / "valid_log.csv") if info.is_main else None
        if info.is_main:
            start = resumed or 0
            train_log.truncate_after(start)
            valid_log.truncate_after(start)
        self.model.train()
        interactive = sys.stderr.isatty() and info.is_main
        if info.is_main:
            print(f"[{self.out_dir.name}] {self.precision.describe()}", flush=True)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"training {self.out_dir.name}", disable=not interactive)
        t0 = time.time()
        last_train: dict[str, float] = {}
        last_valid: dict[str, float] = {}
        bad_in_a_row = skipped = 0
        batches = self._batches()
        while self.step < cfg.steps:
            loss, metrics = self._accumulate(batches)
            if loss is None:
                bad_in_a_row += 1
                skipped += 1
                self.optimizer.zero_grad(set_to_none=True)
                if bad_in_a_row >= MAX_CONSECUTIVE_BAD_STEPS:
                    raise FloatingPointError(
                        f"{self.out_dir}: loss was not finite for {bad_in_a_row} steps in a row at step "
                        f"{self.step}; lower train.lr, raise train.warmup_steps or check the data"
                    )
                continue
            bad_in_a_row = 0
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            bar.update()
            for k, v in {"loss": loss, "grad_norm": float(grad_norm), **metrics}.items():
                self._window[k] = self._window.get(k, 0.0) + float(v)
            self._window_n += 1
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                last_train = all_reduce_mean({k: v / self._window_n for k, v in self._window.items()}, info)
                self._window, self._window_n = {}, 0
                if info.is_main:
                    row = {"step": self.step, "lr": self.scheduler.get_last_lr()[0], **last_train,
                           "seconds": round(time.time() - t0, 2)}
                    train_log.append(row)
                    if not interactive:
                        shown = " ".join(f"{k}={v:.4g}" for k, v in last_train.items())
                        print(f"[{self.out_dir.name}] step {self.step}/{cfg.steps} {shown}", flush=True)
                    bar.set_postfix(loss=f"{last_train.get('loss', float('nan')):.3f}")
            if self.valid_data is not None and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                last_valid = self.evaluate()
                if info.is_main:
                    valid_log.append({"step": self.step, **last_valid})
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                self.save()
        bar.close()
        if info.is_main:
            final = self.out_dir / "model"
            tmp = self.out_dir / ".model.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            self.model.save_pretrained(tmp)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        barrier(info)
        return TrainResult(self.step, last_train, last_valid, round(time.time() - t0, 2), resumed, skipped,
                           self.precision.as_dict())


def _plain(obj: Any) -> Any:
    """Tuples → lists so the training state stays loadable with ``weights_only=True``."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
