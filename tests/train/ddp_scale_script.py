"""Run by tests/train/test_distributed.py under ``torchrun --nproc_per_node=2`` (gloo): gradient
accumulation, a forced precision, and modules that get no gradient under DDP. Each rank writes what the
test checks to ``<root>/<name>_rank<r>.pt``; the trainer itself writes only to rank 0's output folder (rank 1 is given
a folder of its own that must never be created)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from duotok.models.dualtrack import DualHeadsConfig, DualTrackConfig, DualTrackModel
from duotok.models.encoder import EncoderConfig
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


class StemPairs(torch.utils.data.Dataset):
    """Random vocal / accompaniment pairs of 0.5 s for a tiny stage-3 model."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"vocals": torch.randn(8000, generator=g) * 0.1, "accompaniment": torch.randn(8000, generator=g) * 0.1,
                "length": torch.tensor(8000), "index": torch.tensor(i)}


def stage3_without_heads(root: Path, info) -> None:
    """The ``heads_none`` stage-3 ablation at toy size: no loss reaches the upper encoder."""
    torch.manual_seed(0)
    model = DualTrackModel(DualTrackConfig(encoder=EncoderConfig(dim=32, n_lower=1, n_upper=1, n_heads=2),
                                           bottleneck_dim=8, codebook_sizes=(64, 32),
                                           heads=DualHeadsConfig(lyrics=False, mel=False, chroma=False)))
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    out = root / "stage3" if info.rank == 0 else root / f"stage3_rank{info.rank}_must_not_exist"
    trainer = Trainer(model, lambda m, b: m(b["vocals"], b["accompaniment"], b["length"]), StemPairs(),
                      cfg(steps=3, batch_size=2, eval_every=1000, save_every=1000, lr=1e-2), out, dist_info=info)
    trainer.fit()
    torch.save({"initial": initial, "params": {k: v.detach().clone() for k, v in model.named_parameters()}},
               root / f"stage3_rank{info.rank}.pt")


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
    stage3_without_heads(root, info)
    cleanup(info)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
