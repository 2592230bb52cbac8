"""A toy stage runner for tests/train/test_launch.py, importable by name in the processes torchrun starts
(the test puts this folder on their PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from duotok.config import Params, as_params
from duotok.train.launch import launchable


@launchable
def run(params: Params | str | None = None, out_dir: str | Path | None = None, scale: float = 1.0) -> dict[str, Any]:
    """Report where it ran: the world it saw and the value of an argument passed through the launch."""
    import torch.distributed as dist

    from duotok.train.distributed import init_distributed

    params = as_params(params)
    info = init_distributed("cpu")
    value = torch.tensor([float(info.rank + 1)])
    if info.distributed:
        dist.all_reduce(value)
    if info.is_main and out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "written_by").write_text(str(info.rank))
    return {"world_size": info.world_size, "rank": info.rank, "rank_sum": float(value) * scale,
            "profile": params.profile, "overrides": [dict(o) for o in params.overrides],
            "pid": os.getpid()}
