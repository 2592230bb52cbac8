"""Stage 3 runner: dual-codebook SimVQ with hard routing, on ground-truth stems, from stage 2.

    duotok train quantize [--profile P] [--init models/finetune/model] [--out DIR] [--steps N]
    torchrun --nproc_per_node=2 -m duotok.train.quantize --profile smoke

Reads ``params.yaml: audio``, ``pretrain.model`` (encoder sizes), ``finetune.model.bottleneck_dim``
and ``quantize`` (codebooks / heads / data / train). Warm-up and gradient clipping come from the
shared loop (SimVQ is known to NaN without them). Re-running with the same output folder resumes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from duotok.config import stage_params
from duotok.data.targets import MultiTaskCollate
from duotok.errors import CheckpointError
from duotok.io.checkpoint import config_from_dict
from duotok.models.dualtrack import DualTrackConfig, DualTrackModel
from duotok.models.multitask import MultiTaskModel
from duotok.paths import resolve
from duotok.text import CharVocab
from duotok.train.common import crop_datasets, mel_settings, print_result, runner_parser, write_result
from duotok.train.loop import TrainConfig, Trainer, TrainResult
from duotok.train.precision import check_setting


def build_config(profile: str | None = None) -> tuple[DualTrackConfig, TrainConfig, dict[str, Any]]:
    mel = mel_settings(profile)
    encoder = {"n_mels": mel["n_mels"], **stage_params("pretrain", profile)["model"]}
    bottleneck = stage_params("finetune", profile)["model"]["bottleneck_dim"]
    p = stage_params("quantize", profile)
    model = config_from_dict(DualTrackConfig, {"mel": mel, "encoder": encoder, "bottleneck_dim": bottleneck,
                                               "vocab_size": len(CharVocab()), **p["model"]})
    return model, TrainConfig.from_dict(p["train"]), p["data"]


def quantize_loss(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """Ground-truth stems: the vocal stem and the accompaniment (drums + bass + other)."""
    return model(batch["stems"][:, 0], batch["accompaniment"], batch["length"], batch["chroma_vocals"],
                 batch["chroma_accompaniment"], batch["lyrics"], batch["lyrics_lengths"], batch["has_lyrics"])


def run(profile: str | None = None, out_dir: str | Path | None = None, data_dir: str | Path | None = None,
        init: str | Path | None = None, steps: int | None = None, resume: bool = True,
        device: str | None = None,
        precision: str | None = None) -> TrainResult:
    model_cfg, train_cfg, data_cfg = build_config(profile)
    if steps is not None:
        train_cfg.steps = steps
    if precision is not None:
        train_cfg.precision = check_setting(precision)
    out = resolve(out_dir or data_cfg["out_dir"])
    root = resolve(data_dir or data_cfg["root"])
    init_dir = resolve(init or data_cfg["init"])
    if not (init_dir / "config.json").is_file():
        raise CheckpointError(init_dir, "no stage-2 checkpoint here: run `duotok train finetune` first "
                                        "or point --init at one")
    train, valid = crop_datasets(root, data_cfg, model_cfg.mel.sample_rate, train_cfg.seed)
    torch.manual_seed(train_cfg.seed)
    model = DualTrackModel.from_finetune(MultiTaskModel.from_pretrained(init_dir), model_cfg)
    collate = MultiTaskCollate(CharVocab(), model_cfg.mel.sample_rate, model_cfg.mel.hop_length, per_track=True)
    trainer = Trainer(model, quantize_loss, train, train_cfg, out, valid_data=valid, collate_fn=collate,
                      device=device)
    result = trainer.fit(resume=resume)
    write_result("quantize", profile, out, trainer, result, model_cfg, train_cfg, init=str(init or data_cfg["init"]),
                 bits_per_second=model.quantizer.bits_per_second(), fingerprints=model.quantizer.codebook_fingerprints())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = runner_parser("quantize", __doc__, "stage-2")
    args = parser.parse_args(argv)
    result = run(args.profile, args.out, args.data_dir, args.init, args.steps, resume=not args.no_resume,
                 device=args.device,
                 precision=args.precision)
    print_result("quantize", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
