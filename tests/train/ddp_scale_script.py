"""Run by tests/train/test_distributed.py under ``torchrun --nproc_per_node=2`` (gloo): gradient
accumulation, a forced precision, and modules that get no gradient under DDP. Each rank writes what the
test checks to ``<root>/<name>_rank<r>.pt``; the trainer itself writes only to rank 0's output folder (rank 1 is given
a folder of its own that must never be created)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from duotok.train.distributed import cleanup, init_distributed
from duotok.train.loop import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from test_grad_accum import Indexed  # noqa: E402
from test_loop import Toy, cfg, loss_fn  # noqa: E402


class Conditional(Toy):
    """Toy with a head that only some batches use (the lyrics head on a batch without lyrics) and a
    module no loss ever reaches (stage 3's upper encoder in the ``heads_none`` ablation)."""

    def __init__(self):
        super().__init__()
        self.aux = nn.Linear(self.config.dim, 1)
        self.idle = nn.Linear(self.config.dim, 1)

    def forward(self, x, y, index):
        loss, metrics = super().forward(x, y)
        if int(index.sum()) % 2 == 0:      # differs between the ranks' batches, step by step
            loss = loss + 0.1 * self.aux(x).pow(2).mean()
        return loss, metrics


def run(root: Path, name: str, info, model: nn.Module | None = None, **settings) -> None:
    seen: list[int] = []

    def recording(model, batch):
        if model.training:
            seen.extend(batch["index"].tolist())
        if isinstance(getattr(model, "module", model), Conditional):
            return model(batch["x"], batch["y"], batch["index"])
        return loss_fn(model, batch)

    torch.manual_seed(0)
    out = root / name if info.rank == 0 else root / f"{name}_rank{info.rank}_must_not_exist"
    trainer = Trainer(model or Toy(), recording, Indexed(), cfg(steps=16, eval_every=1000, save_every=8, **settings),
                      out, dist_info=info)
    result = trainer.fit()
    params = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    torch.save({"params": params, "seen": torch.tensor(seen), "precision": result.precision["used"],
                "batches_per_epoch": 64 // 2 // settings["batch_size"]}, root / f"{name}_rank{info.rank}.pt")


def main(root: Path) -> None:
    info = init_distributed("cpu")
    run(root, "whole", info, batch_size=8, precision="fp32")
    run(root, "accumulated", info, batch_size=4, grad_accum=2, precision="fp32")
    run(root, "bf16", info, batch_size=4, grad_accum=2, precision="bf16")
    torch.manual_seed(0)
    conditional = Conditional()
    initial = {k: v.detach().clone() for k, v in conditional.named_parameters()}
    torch.save(initial, root / f"conditional_init_rank{info.rank}.pt")
    run(root, "conditional", info, model=conditional, batch_size=4, grad_accum=2, precision="fp32")
    cleanup(info)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
