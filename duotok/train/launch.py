"""Launch a training stage on several processes or nodes through ``torchrun``, from ``params.yaml``.

Why it is a decorator on the stage runners and not a change to the DVC commands: a stage's notebook
calls ``pretrain.run(profile, ...)`` in-process (so it can plot what it trained), and the same call must
train on one CPU process, on 8 GPUs of one node, or on several nodes, with nothing in the notebook or
``dvc.yaml`` changing but ``params.yaml: launch``. So :func:`launchable` wraps a runner: with one
process (the default) it is the plain call; asked for more, it writes the call (module, function,
arguments, the resolved :class:`~duotok.config.Params`) to a payload file, runs
``torchrun ... -m duotok.train.launch <payload>`` and waits; every process unpickles the call and
runs it under DDP (:mod:`duotok.train.loop`: each rank its own data shard, rank 0 alone writes), and
rank 0 pickles the runner's return value back for the caller. Inside a process torchrun started
(``LOCAL_RANK`` set) the wrapper never launches again, so ``torchrun -m duotok.train.pretrain`` by
hand keeps working as before.

Several nodes (``launch.nnodes > 1``): the stage's process is one node; every other node runs the
command :func:`torchrun_command` prints (the same payload path, so the project folder must be on a
filesystem all nodes share, as it is on a SLURM cluster). The README gives an ``srun`` recipe.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from duotok.config import Params, as_params
from duotok.errors import ConfigError
from duotok.paths import project_root

SECTION = "launch"
RESULT_FILE = "result.pkl"
CALL_FILE = "call.pkl"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class LaunchConfig:
    """``params.yaml: launch`` — how many processes train a stage, and where they meet."""

    nproc_per_node: int = 1          # processes per node: the node's GPUs, or 1-2 on a CPU
    nnodes: int = 1                  # nodes; > 1 needs a filesystem shared by all of them
    rdzv_backend: str = "c10d"
    rdzv_endpoint: str = "localhost:29400"   # host:port of node 0 when nnodes > 1
    rdzv_id: str = "duotok"
    payload_dir: str = ".launch"     # where the call is written (relative to the project; shared by all nodes)

    @classmethod
    def from_params(cls, params: Params) -> LaunchConfig:
        """The launch section of ``params`` (all defaults when params.yaml has none)."""
        data = params.section(SECTION) if SECTION in params.raw else {}
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LaunchConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"params.yaml launch: unknown settings {sorted(unknown)}; "
                              f"known: {sorted(cls.__dataclass_fields__)}")
        cfg = cls(**dict(data))
        for name in ("nproc_per_node", "nnodes"):
            value = getattr(cfg, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"params.yaml launch.{name} must be an integer >= 1, got {value!r}")
        if cfg.nnodes > 1 and cfg.rdzv_endpoint.split(":")[0] in ("localhost", "127.0.0.1"):
            raise ConfigError("params.yaml launch.rdzv_endpoint must name node 0's host (host:port) when "
                              f"launch.nnodes is {cfg.nnodes}; localhost is not reachable from the other nodes")
        return cfg

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def under_torchrun() -> bool:
    """True inside a process torchrun started (it sets ``LOCAL_RANK``)."""
    return "LOCAL_RANK" in os.environ


def torchrun_command(cfg: LaunchConfig, payload: Path) -> list[str]:
    """The ``torchrun`` command every node runs for one launched call."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={cfg.nproc_per_node}"]
    if cfg.nnodes == 1:
        cmd.append("--standalone")    # a private rendezvous on a free port: two stages never collide
    else:
        cmd += [f"--nnodes={cfg.nnodes}", f"--rdzv-backend={cfg.rdzv_backend}",
                f"--rdzv-endpoint={cfg.rdzv_endpoint}", f"--rdzv-id={cfg.rdzv_id}"]
    return [*cmd, "-m", "duotok.train.launch", str(payload)]


def _params_argument(fn: Callable[..., Any]) -> str:
    if "params" not in inspect.signature(fn).parameters:
        raise TypeError(f"{fn.__qualname__} has no 'params' argument: launchable() needs it to read launch")
    return "params"


def launchable(fn: F) -> F:
    """Make a stage runner launch itself under torchrun when ``params.yaml: launch`` asks for more
    than one process (see the module docstring). With one process the call is untouched."""
    name = _params_argument(fn)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        params = as_params(bound.arguments.get(name))
        bound.arguments[name] = params
        cfg = LaunchConfig.from_params(params)
        if cfg.world_size == 1 or under_torchrun():
            return fn(*bound.args, **bound.kwargs)
        return run_launched(fn.__module__, fn.__name__, bound.args, bound.kwargs, cfg)

    wrapper.__wrapped_runner__ = fn  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def run_launched(module: str, function: str, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                 cfg: LaunchConfig) -> Any:
    """Run ``module.function(*args, **kwargs)`` on ``cfg.world_size`` processes and return rank 0's result."""
    base = Path(cfg.payload_dir)
    base = base if base.is_absolute() else project_root() / base
    base.mkdir(parents=True, exist_ok=True)
    payload = Path(tempfile.mkdtemp(prefix=f"{function}-{uuid.uuid4().hex[:8]}-", dir=base))
    try:
        with open(payload / CALL_FILE, "wb") as fh:
            pickle.dump({"module": module, "function": function, "args": tuple(args), "kwargs": dict(kwargs)}, fh)
        cmd = torchrun_command(cfg, payload)
        shown = shlex.join(cmd)
        print(f"[launch] {module}.{function} on {cfg.nnodes} node(s) x {cfg.nproc_per_node} process(es): {shown}",
              flush=True)
        if cfg.nnodes > 1:
            print(f"[launch] waiting for the other {cfg.nnodes - 1} node(s): run the same command on each", flush=True)
        proc = subprocess.run(cmd, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{module}.{function} failed under torchrun (exit {proc.returncode}): {shown}; "
                               "its processes' output is above")
        result_file = payload / RESULT_FILE
        if not result_file.is_file():
            raise RuntimeError(f"{module}.{function} ran under torchrun but rank 0 left no {result_file}")
        with open(result_file, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 — written by our own rank 0 a moment ago
    finally:
        shutil.rmtree(payload, ignore_errors=True)


def worker(payload: Path) -> int:
    """One torchrun process: run the pickled call; rank 0 pickles its return value next to it."""
    with open(payload / CALL_FILE, "rb") as fh:
        call = pickle.load(fh)  # noqa: S301 — written by the launching process of this project
    fn = getattr(importlib.import_module(call["module"]), call["function"])
    result = fn(*call["args"], **call["kwargs"])
    if int(os.environ.get("RANK", "0")) == 0:
        tmp = payload / f".{RESULT_FILE}.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh)
        tmp.replace(payload / RESULT_FILE)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m duotok.train.launch PAYLOAD_DIR  (written by duotok.train.launch)")
    sys.exit(worker(Path(sys.argv[1])))
