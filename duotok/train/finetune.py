"""Stage 2 runner: multi-task fine-tuning with bottleneck noise, initialised from stage 1.

    duotok train finetune [--profile P] [--init models/pretrain/model] [--out DIR] [--steps N]
    torchrun --nproc_per_node=2 -m duotok.train.finetune --profile smoke

Reads ``params.yaml: audio`` and ``finetune`` (model / noise / heads / data / train). Without a
stage-1 checkpoint (``--init`` or ``finetune.data.init``) it refuses, unless ``--from-scratch`` (an
ablation: no SSL pre-training). Re-running with the same output folder resumes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from duotok.config import Params, as_params
from duotok.data import SOURCES
from duotok.data.submix import SubmixCollate
from duotok.data.targets import MultiTaskCollate
from duotok.errors import CheckpointError
from duotok.io.checkpoint import config_from_dict
from duotok.models.bestrq import BestRQModel
from duotok.models.multitask import MultiTaskConfig, MultiTaskModel
from duotok.models.noise import follow_training_step
from duotok.paths import resolve
from duotok.text import CharVocab
from duotok.train.common import crop_datasets, mel_settings, print_result, runner_parser, write_result
from duotok.train.launch import launchable
from duotok.train.loop import TrainConfig, Trainer, TrainResult
from duotok.train.precision import check_setting

BATCH_KEYS = ("mixture", "length", "stems", "chroma", "lyrics", "lyrics_lengths", "has_lyrics")


def build_config(params: Params | str | None = None) -> tuple[MultiTaskConfig, TrainConfig, dict[str, Any]]:
    """(model config, train config, data settings). The encoder sizes are stage 1's (``pretrain.model``)."""
    params = as_params(params)
    mel = mel_settings(params)
    encoder = {"n_mels": mel["n_mels"], **params.section("pretrain")["model"]}
    p = params.section("finetune")
    model = config_from_dict(MultiTaskConfig, {"mel": mel, "encoder": encoder, "vocab_size": len(CharVocab()),
                                               "n_sources": len(SOURCES),
                                               **p["model"]})
    return model, TrainConfig.from_dict(p["train"]), p["data"]


def finetune_loss(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    return model(**{k: batch[k] for k in BATCH_KEYS})


@launchable
def run(params: Params | str | None = None, out_dir: str | Path | None = None, data_dir: str | Path | None = None,
        init: str | Path | None = None, steps: int | None = None, resume: bool = True,
        from_scratch: bool = False, device: str | None = None,
        precision: str | None = None) -> TrainResult:
    params = as_params(params)
    model_cfg, train_cfg, data_cfg = build_config(params)
    if steps is not None:
        train_cfg.steps = steps
    if precision is not None:
        train_cfg.precision = check_setting(precision)
    out = resolve(out_dir or data_cfg["out_dir"])
    root = resolve(data_dir or data_cfg["root"])
    train, valid = crop_datasets(root, data_cfg, model_cfg.mel.sample_rate, train_cfg.seed)
    torch.manual_seed(train_cfg.seed)
    if from_scratch:
        model = MultiTaskModel(model_cfg)
    else:
        init_dir = resolve(init or data_cfg["init"])
        if not (init_dir / "config.json").is_file():
            raise CheckpointError(init_dir, "no stage-1 checkpoint here: run `duotok train pretrain` first, "
                                            "point --init at one, or pass --from-scratch")
        model = MultiTaskModel.from_pretrain(BestRQModel.from_pretrained(init_dir), model_cfg)
    collate = SubmixCollate(MultiTaskCollate(CharVocab(), model_cfg.mel.sample_rate, model_cfg.mel.hop_length),
                            float(data_cfg["submix_prob"]), train_cfg.seed)
    trainer = Trainer(model, finetune_loss, train, train_cfg, out, valid_data=valid, collate_fn=collate,
                      device=device)
    follow_training_step(model.noise, lambda: trainer.step)
    result = trainer.fit(resume=resume)
    write_result("finetune", params, out, trainer, result, model_cfg, train_cfg,
                 init=None if from_scratch else str(init or data_cfg["init"]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = runner_parser("finetune", __doc__, "stage-1")
    parser.add_argument("--from-scratch", action="store_true", help="no stage-1 initialisation (ablation)")
    args = parser.parse_args(argv)
    result = run(args.profile, args.out, args.data_dir, args.init, args.steps, resume=not args.no_resume,
                 from_scratch=args.from_scratch, device=args.device,
                 precision=args.precision)
    print_result("finetune", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
