"""Run by tests/train/test_resume.py under ``torchrun --nproc_per_node=2``: an uninterrupted run and a
killed-then-resumed run of the same masked toy model; each rank saves its parameters and optimizer state."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from duotok.train.distributed import cleanup, init_distributed
from duotok.train.loop import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from test_resume import Killed, Line, MaskedToy, cfg, killed_after, loss_fn  # noqa: E402


def snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {f"param.{k}": v.detach().clone() for k, v in trainer.model.named_parameters()}
    for i, state in trainer.optimizer.state_dict()["state"].items():
        out.update({f"optim.{i}.{k}": v.clone() for k, v in state.items()})
    out["lr"] = torch.tensor(trainer.optimizer.param_groups[0]["lr"], dtype=torch.float64)
    return out


def main(root: Path) -> None:
    info = init_distributed("cpu")
    # 64 items over 2 processes in batches of 4: 8 batches per epoch; checkpoint at 5 (mid-epoch).
    settings = {"steps": 12, "batch_size": 4}
    torch.manual_seed(0)
    straight = Trainer(MaskedToy(), loss_fn, Line(), cfg(**settings), root / "straight", dist_info=info)
    straight.fit()
    torch.manual_seed(0)
    first = Trainer(MaskedToy(), killed_after(7), Line(), cfg(**settings, save_every=5), root / "resumed",
                    dist_info=info)
    try:
        first.fit()
        raise AssertionError("the first run was not killed")
    except Killed:
        pass
    torch.manual_seed(1)
    resumed = Trainer(MaskedToy(), loss_fn, Line(), cfg(**settings), root / "resumed", dist_info=info)
    result = resumed.fit()
    assert result.resumed_from == 5, result
    torch.save(snapshot(straight), root / f"straight_rank{info.rank}.pt")
    torch.save(snapshot(resumed), root / f"resumed_rank{info.rank}.pt")
    cleanup(info)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
