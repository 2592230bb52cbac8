"""Run by tests/train/test_distributed.py under ``torchrun --nproc_per_node=2`` (gloo): gradient
accumulation and a forced precision under DDP. Each rank writes what the test checks to
``<root>/<name>_rank<r>.pt``; the trainer itself writes only to rank 0's output folder (rank 1 is given
a folder of its own that must never be created)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from duotok.train.distributed import cleanup, init_distributed
from duotok.train.loop import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from test_grad_accum import Indexed  # noqa: E402
from test_loop import Toy, cfg, loss_fn  # noqa: E402


def run(root: Path, name: str, info, **settings) -> None:
    seen: list[int] = []

    def recording(model, batch):
        if model.training:
            seen.extend(batch["index"].tolist())
        return loss_fn(model, batch)

    torch.manual_seed(0)
    out = root / name if info.rank == 0 else root / f"{name}_rank{info.rank}_must_not_exist"
    trainer = Trainer(Toy(), recording, Indexed(), cfg(steps=16, eval_every=1000, save_every=8, **settings), out,
                      dist_info=info)
    result = trainer.fit()
    params = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    torch.save({"params": params, "seen": torch.tensor(seen), "precision": result.precision["used"],
                "batches_per_epoch": 64 // 2 // settings["batch_size"]}, root / f"{name}_rank{info.rank}.pt")


def main(root: Path) -> None:
    info = init_distributed("cpu")
    run(root, "whole", info, batch_size=8, precision="fp32")
    run(root, "accumulated", info, batch_size=4, grad_accum=2, precision="fp32")
    run(root, "bf16", info, batch_size=4, grad_accum=2, precision="bf16")
    cleanup(info)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
