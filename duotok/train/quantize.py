"""Stage 3 runner: dual-codebook SimVQ with hard routing, on ground-truth stems, from stage 2.

    duotok train quantize [--profile P] [--init models/finetune/model] [--out DIR] [--steps N] [--tokenizer DIR]
    torchrun --nproc_per_node=2 -m duotok.train.quantize --profile smoke

After training it bundles the stage-2 separator and the stage-3 quantizer into the ``DuoTok``
tokenizer that ``duotok encode`` and ``duotok train decoder`` load: into ``--tokenizer DIR`` if given,
else ``<out>/tokenizer`` when ``--out`` is given, else ``quantize.data.tokenizer_dir`` (models/duotok).

Reads ``params.yaml: audio``, ``pretrain.model`` (encoder sizes), ``finetune.model.bottleneck_dim``
and ``quantize`` (codebooks / heads / data / train). Warm-up and gradient clipping come from the
shared loop (SimVQ is known to NaN without them). Re-running with the same output folder resumes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from duotok.config import Params, as_params
from duotok.data.targets import MultiTaskCollate
from duotok.errors import CheckpointError
from duotok.io.checkpoint import config_from_dict
from duotok.models.dualtrack import DualTrackConfig, DualTrackModel, stack_tracks
from duotok.models.multitask import MultiTaskModel
from duotok.paths import resolve
from duotok.text import CharVocab
from duotok.train.common import crop_datasets, mel_settings, print_result, runner_parser, write_result
from duotok.train.launch import launchable
from duotok.train.loop import LossFn, TrainConfig, Trainer, TrainResult
from duotok.train.precision import check_setting


def build_config(params: Params | str | None = None) -> tuple[DualTrackConfig, TrainConfig, dict[str, Any]]:
    params = as_params(params)
    mel = mel_settings(params)
    encoder = {"n_mels": mel["n_mels"], **params.section("pretrain")["model"]}
    stage2 = params.section("finetune")["model"]
    p = params.section("quantize")
    model = config_from_dict(DualTrackConfig, {"mel": mel, "encoder": encoder,
                                               "bottleneck_dim": stage2["bottleneck_dim"],
                                               "bottleneck_norm": stage2["bottleneck_norm"],
                                               "lyrics_context": stage2["lyrics_context"],
                                               "vocab_size": len(CharVocab()), **p["model"]})
    return model, TrainConfig.from_dict(p["train"]), p["data"]


def quantize_loss(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """Ground-truth stems: the vocal stem and the accompaniment (drums + bass + other)."""
    return model(batch["stems"][:, 0], batch["accompaniment"], batch["length"], batch["chroma_vocals"],
                 batch["chroma_accompaniment"], batch["lyrics"], batch["lyrics_lengths"], batch["has_lyrics"])


@launchable
def run(params: Params | str | None = None, out_dir: str | Path | None = None, data_dir: str | Path | None = None,
        init: str | Path | None = None, steps: int | None = None, resume: bool = True,
        device: str | None = None, precision: str | None = None, tokenizer_dir: str | Path | None = None,
        separator: str | Path | None = None, model_hook: Callable[[DualTrackModel], DualTrackModel] | None = None,
        loss_fn: LossFn = quantize_loss, **extra: Any) -> TrainResult:
    """Train stage 3 from the stage-2 checkpoint ``init`` and bundle the tokenizer.

    The seams the routing ablations use: ``model_hook`` edits the built model (a tied codebook),
    ``loss_fn`` replaces the loss (stage 3 on separated stems), ``separator`` is the stage-2 checkpoint the
    tokenizer separates mixtures with (default: ``init``), and ``extra`` lands in result.json."""
    params = as_params(params)
    model_cfg, train_cfg, data_cfg = build_config(params)
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
    if model_hook is not None:
        model = model_hook(model)
    collate = MultiTaskCollate(CharVocab(), model_cfg.mel.sample_rate, model_cfg.mel.hop_length, per_track=True)
    if model_cfg.codebook_init == "data" and not (resume and (out / "last" / "training_state.pt").is_file()):
        fitted = init_codebooks_from_crops(model, train, collate, int(data_cfg["init_items"]), train_cfg.seed)
        print(f"[{out.name}] codebooks started from the data: {fitted} frames", flush=True)
    trainer = Trainer(model, loss_fn, train, train_cfg, out, valid_data=valid, collate_fn=collate,
                      device=device)
    result = trainer.fit(resume=resume)
    tokenizer = resolve(tokenizer_dir) if tokenizer_dir else (out / "tokenizer" if out_dir
                                                               else resolve(data_cfg["tokenizer_dir"]))
    separator_dir = resolve(separator) if separator else init_dir
    if trainer.info.is_main:
        bundle_tokenizer(separator_dir, out / "model", tokenizer, float(data_cfg["segment_seconds"]))
    write_result("quantize", params, out, trainer, result, model_cfg, train_cfg, init=str(init or data_cfg["init"]),
                 bits_per_second=model.quantizer.bits_per_second(), fingerprints=model.quantizer.codebook_fingerprints(),
                 tokenizer=str(tokenizer), separator=str(separator_dir), **extra)
    return result


def init_codebooks_from_crops(model: DualTrackModel, data: Any, collate: Any, items: int, seed: int) -> dict[str, int]:
    """``codebook_init: data``: fit each branch's codebook to ``items`` seeded training crops (both tracks)."""
    if items < 1:
        raise ValueError(f"quantize.data.init_items must be >= 1, got {items}")
    g = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(data), generator=g)[: min(items, len(data))].tolist()
    batch = collate([data[i] for i in picks])
    audio, route, lengths = stack_tracks(batch["stems"][:, 0], batch["accompaniment"], batch["length"])
    return model.init_codebooks(audio, route, lengths)


def bundle_tokenizer(stage2_dir: Path, stage3_dir: Path, tokenizer_dir: Path, chunk_seconds: float) -> Path:
    """Stage 2 (the separator) + stage 3 (the quantizer) as one ``DuoTok`` checkpoint in ``tokenizer_dir``
    (chunks of the training crops' length, which is what the quantizer saw)."""
    from duotok.tokenizer import DuoTok

    DuoTok.from_stages(stage2_dir, stage3_dir, chunk_seconds=chunk_seconds).save_pretrained(tokenizer_dir)
    return tokenizer_dir


def main(argv: list[str] | None = None) -> int:
    parser = runner_parser("quantize", __doc__, "stage-2")
    parser.add_argument("--tokenizer", help="where to bundle the DuoTok tokenizer (default: <out>/tokenizer with "
                                            "--out, else quantize.data.tokenizer_dir)")
    args = parser.parse_args(argv)
    result = run(args.profile, args.out, args.data_dir, args.init, args.steps, resume=not args.no_resume,
                 device=args.device, precision=args.precision, tokenizer_dir=args.tokenizer)
    print_result("quantize", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
