"""Stage 1 runner: BEST-RQ pre-training of the encoder on the corpus's mixtures.

    duotok train pretrain [--profile P] [--out DIR] [--steps N]
    torchrun --nproc_per_node=2 -m duotok.train.pretrain --profile smoke     # DDP, gloo on CPU

Reads ``params.yaml: audio`` and ``pretrain`` (model / bestrq / data / train). Re-running with the
same output folder resumes from ``<out>/last``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from duotok.config import Params, as_params
from duotok.data import StemCropDataset, collate_stems
from duotok.data.datasets.crops import ItemCropDataset, mixture_crop_datasets
from duotok.data.submix import SubmixCollate
from duotok.errors import ConfigError
from duotok.io.checkpoint import config_from_dict
from duotok.models.bestrq import BestRQConfig, BestRQModel
from duotok.models.encoder import mel_statistics
from duotok.paths import resolve
from duotok.train.common import crop_datasets, mel_settings, print_result, runner_parser, write_result
from duotok.train.launch import launchable
from duotok.train.loop import TrainConfig, Trainer, TrainResult
from duotok.train.precision import check_setting


def build_config(params: Params | str | None = None) -> tuple[BestRQConfig, TrainConfig, dict[str, Any]]:
    """(model config, train config, data settings) from the resolved params (or a profile name)."""
    params = as_params(params)
    mel = mel_settings(params)
    p = params.section("pretrain")
    model = config_from_dict(BestRQConfig, {"mel": mel, "encoder": {"n_mels": mel["n_mels"], **p["model"]},
                                            **p["bestrq"]})
    return model, TrainConfig.from_dict(p["train"]), p["data"]


def pretrain_loss(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one batch: the model's own forward (DDP-visible)."""
    return model(batch["mixture"], batch["length"])


@torch.no_grad()
def fit_normalization(model: BestRQModel, data: StemCropDataset, max_items: int) -> None:
    """Global per-band mel mean/std over up to ``max_items`` crops (BEST-RQ normalises globally)."""
    mels = []
    for i in range(min(max_items, len(data))):
        item = data[i]
        n = int(item["length"])
        mels.append(model.logmel(item["mixture"][:n][None]))
    mean, std = mel_statistics(mels)
    model.encoder.set_normalization(mean, std)


@launchable
def run(params: Params | str | None = None, out_dir: str | Path | None = None, data_dir: str | Path | None = None,
        steps: int | None = None, resume: bool = True, device: str | None = None,
        precision: str | None = None) -> TrainResult:
    params = as_params(params)
    model_cfg, train_cfg, data_cfg = build_config(params)
    if steps is not None:
        train_cfg.steps = steps
    if precision is not None:
        train_cfg.precision = check_setting(precision)
    out = resolve(out_dir or data_cfg["out_dir"])
    root = resolve(data_dir or data_cfg["root"])
    sr = model_cfg.mel.sample_rate
    mixtures = data_cfg.get("mixtures")
    if mixtures:
        # Mixture-only real music (MTG-Jamendo, a folder, ...): BEST-RQ needs no stems, submixes do.
        if float(data_cfg["submix_prob"]) > 0:
            raise ConfigError("pretrain.data.submix_prob > 0 needs stems, but pretrain.data.mixtures trains on "
                              "mixture-only data: set submix_prob to 0")
        train, valid = mixture_crop_datasets(mixtures, float(data_cfg["segment_seconds"]), sr, train_cfg.seed,
                                             int(data_cfg["crops_per_song"]))
        stats_data = ItemCropDataset(train.items, float(data_cfg["segment_seconds"]), sr, seed=train_cfg.seed,
                                     random=False)
    else:
        train, valid = crop_datasets(root, data_cfg, sr, train_cfg.seed)
        stats_data = StemCropDataset(root, "train", float(data_cfg["segment_seconds"]), sr, crops_per_song=1,
                                     seed=train_cfg.seed, random=False)
    torch.manual_seed(train_cfg.seed)
    model = BestRQModel(model_cfg)
    if not (out / "last" / "training_state.pt").is_file() or not resume:
        fit_normalization(model, stats_data, int(data_cfg["normalization_items"]))
    collate = SubmixCollate(collate_stems, float(data_cfg["submix_prob"]), train_cfg.seed)
    trainer = Trainer(model, pretrain_loss, train, train_cfg, out, valid_data=valid, collate_fn=collate,
                      device=device)
    result = trainer.fit(resume=resume)
    write_result("pretrain", params, out, trainer, result, model_cfg, train_cfg)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = runner_parser("pretrain", __doc__)
    args = parser.parse_args(argv)
    result = run(args.profile, args.out, args.data_dir, args.steps, resume=not args.no_resume, device=args.device,
                 precision=args.precision)
    print_result("pretrain", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
