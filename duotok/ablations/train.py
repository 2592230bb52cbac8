"""Train one ablation variant end to end: stage 2 (if it has its own), stage 3, and its tokenizer.

    python -m duotok.ablations.train --variant noise_off [--profile P] [--out DIR] [--data-dir DIR]
    torchrun --nproc_per_node=2 -m duotok.ablations.train --variant reference --profile smoke

Writes ``<ablation.out_dir>/<variant>/``: ``finetune/`` (only variants with their own stage 2),
``quantize/``, ``tokenizer/`` and ``result.json``. Every variant starts from ``ablation.pretrain`` with
``ablation.budget`` and its own overrides applied to the finetune / quantize sections; variants with
no stage-2 overrides (the routing family) reuse the reference's stage 2, so train the reference
first (also for a variant without a mask head: its tokenizer borrows the reference's separator).
Re-running with the same output folder resumes each stage from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from duotok.ablations.routing import separated_stems_loss, tie_codebooks
from duotok.ablations.variants import Variant, load_variants, overrides_for
from duotok.config import PROFILES, load_params, param_overrides, stage_params
from duotok.data.targets import MultiTaskCollate
from duotok.errors import CheckpointError, ConfigError
from duotok.io import write_json_atomic
from duotok.models.dualtrack import DualTrackModel
from duotok.models.multitask import MultiTaskConfig, MultiTaskModel
from duotok.paths import resolve
from duotok.text import CharVocab
from duotok.tokenizer.model import DuoTok
from duotok.train import finetune, quantize
from duotok.train.common import crop_datasets, write_result
from duotok.train.distributed import barrier, init_distributed
from duotok.train.loop import LossFn, Trainer, TrainResult

MODEL_DIR = "model"


def run_quantize(profile: str | None, out_dir: Path, data_dir: str | Path | None, init: Path,
                 resume: bool = True, device: str | None = None,
                 model_hook: Callable[[DualTrackModel], DualTrackModel] | None = None,
                 loss_fn: LossFn = quantize.quantize_loss, **extra: Any) -> TrainResult:
    """``quantize.run`` with a hook on the built model and a replaceable loss (the shared and separated
    routings). It exists because ``duotok/train/quantize.py`` is a hashed dependency of the main DVC
    pipeline: giving it these parameters would retrain stages 3-4 there. Only the two seams differ."""
    model_cfg, train_cfg, data_cfg = quantize.build_config(profile)
    root = resolve(data_dir or data_cfg["root"])
    train, valid = crop_datasets(root, data_cfg, model_cfg.mel.sample_rate, train_cfg.seed)
    torch.manual_seed(train_cfg.seed)
    model = DualTrackModel.from_finetune(MultiTaskModel.from_pretrained(init), model_cfg)
    if model_hook is not None:
        model = model_hook(model)
    mel = model_cfg.mel
    collate = MultiTaskCollate(CharVocab(), mel.sample_rate, mel.hop_length, per_track=True)
    trainer = Trainer(model, loss_fn, train, train_cfg, out_dir, valid_data=valid, collate_fn=collate,
                      device=device)
    result = trainer.fit(resume=resume)
    write_result("quantize", profile, out_dir, trainer, result, model_cfg, train_cfg, init=str(init),
                 bits_per_second=model.quantizer.bits_per_second(),
                 fingerprints=model.quantizer.codebook_fingerprints(), **extra)
    return result


def _train_stage3(variant: Variant, profile: str | None, out_dir: Path, data_dir: str | Path | None,
                  stage2: Path, resume: bool, device: str | None) -> TrainResult:
    """Stage 3 of ``variant`` from the stage-2 checkpoint ``stage2`` (param overrides already active)."""
    if variant.routing == "dual":
        return quantize.run(profile, out_dir, data_dir, init=stage2, resume=resume, device=device)
    if variant.routing == "shared":
        return run_quantize(profile, out_dir, data_dir, stage2, resume, device, model_hook=tie_codebooks,
                            routing="shared")
    if variant.routing == "separated":
        loss = separated_stems_loss(MultiTaskModel.from_pretrained(stage2))
        return run_quantize(profile, out_dir, data_dir, stage2, resume, device, loss_fn=loss,
                            routing="separated", separator=str(stage2))
    raise ConfigError(f"variant {variant.name!r}: unknown routing {variant.routing!r}")


def _reference_stage2(root: Path, reference: str, variant: str, profile: str | None) -> Path:
    """The reference's stage-2 model, checked to exist and to be what this variant's config would train."""
    stage2 = root / reference / "finetune" / MODEL_DIR
    if not (stage2 / "config.json").is_file():
        raise CheckpointError(stage2, f"variant {variant!r} reuses the reference's stage 2, which is not "
                                      f"trained yet: train the reference first (`python -m "
                                      f"duotok.ablations.train --variant {reference}` or "
                                      f"`dvc repro ablation@{reference}`)")
    expected = finetune.build_config(profile)[0]
    if MultiTaskModel.read_config(stage2) != expected:
        raise CheckpointError(stage2, f"the reference's stage 2 was trained with another model configuration "
                                      f"than variant {variant!r} expects (another profile or budget?); "
                                      "retrain the reference")
    return stage2


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def train_variant(name: str, profile: str | None = None, out_dir: str | Path | None = None,
                  data_dir: str | Path | None = None, device: str | None = None, resume: bool = True,
                  ) -> dict[str, Any]:
    """Train variant ``name`` into ``<out_dir or ablation.out_dir>/<name>/`` and return its result.json."""
    params = load_params()
    variants = load_variants(profile, params)
    if name not in variants:
        raise ConfigError(f"params.yaml: no ablation variant {name!r}; known: {', '.join(variants)}")
    variant = variants[name]
    cfg = stage_params("ablation", profile, params)
    reference = str(cfg["reference"])
    root = resolve(out_dir or cfg["out_dir"])
    out = root / name
    overrides = overrides_for(variant, profile, params)
    with param_overrides(overrides):
        if variant.retrains_stage2:
            stage2 = out / "finetune" / MODEL_DIR
            # Checked before any training: a missing separator should not cost a whole variant's run.
            separator = _separator(root, reference, name, stage2, finetune.build_config(profile)[0])
            pretrain = resolve(cfg["pretrain"])
            finetune.run(profile, out / "finetune", data_dir, init=pretrain, resume=resume, device=device)
        else:
            stage2 = _reference_stage2(root, reference, name, profile)
            separator = _separator(root, reference, name, stage2, MultiTaskModel.read_config(stage2))
        _train_stage3(variant, profile, out / "quantize", data_dir, stage2, resume, device)
        chunk_seconds = float(stage_params("quantize", profile)["data"]["segment_seconds"])
    info = init_distributed(device)
    summary: dict[str, Any] = {"variant": variant.to_dict(), "profile": profile}
    if info.is_main:
        summary = _finish(variant, out, stage2, separator, overrides, profile, chunk_seconds)
    barrier(info)
    return summary


def _separator(root: Path, reference: str, variant: str, stage2: Path,
               stage2_config: MultiTaskConfig) -> Path:
    """The stage-2 model the variant's tokenizer separates mixtures with: its own if it has a mask head,
    else the reference's. The tokenizer needs a separator only to encode mixtures; the ablation
    evaluation tokenizes the true stems, so borrowing one changes none of the variant's results."""
    if stage2_config.heads.mask:
        return stage2
    separator = root / reference / "finetune" / MODEL_DIR
    if not (separator / "config.json").is_file():
        raise CheckpointError(separator, f"variant {variant!r} has no mask head, so its tokenizer borrows "
                                         "the reference's stage-2 separator, which is not trained yet: train "
                                         "the reference first")
    return separator


def _finish(variant: Variant, out: Path, stage2: Path, separator: Path, overrides: dict[str, Any],
            profile: str | None, chunk_seconds: float) -> dict[str, Any]:
    """The tokenizer and result.json (main process)."""
    tokenizer = DuoTok.from_stages(separator, out / "quantize" / MODEL_DIR, chunk_seconds=chunk_seconds)
    tokenizer.save_pretrained(out / "tokenizer")
    fingerprints = tokenizer.fingerprints()
    summary = {
        "variant": variant.to_dict(),
        "profile": profile,
        "retrains_stage2": variant.retrains_stage2,
        "overrides": overrides,
        "stage2_dir": str(stage2),
        "separator_dir": str(separator),
        "stage2": _read_json(stage2.parent / "result.json"),
        "stage3": _read_json(out / "quantize" / "result.json"),
        "bits_per_second": tokenizer.quantizer.quantizer.bits_per_second(tokenizer.frame_rate),
        "fingerprints": fingerprints,
        "shared_codebook": len(set(fingerprints.values())) == 1,
    }
    write_json_atomic(out / "result.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duotok.ablations.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, help="a name under params.yaml: ablation.variants")
    parser.add_argument("--profile", choices=PROFILES)
    parser.add_argument("--out", help="folder holding one folder per variant (default: ablation.out_dir)")
    parser.add_argument("--data-dir", help="corpus folder (default: finetune.data.root / quantize.data.root)")
    parser.add_argument("--device", choices=("cpu", "cuda"))
    parser.add_argument("--no-resume", action="store_true",
                        help="start every stage over even if <out>/last exists")
    args = parser.parse_args(argv)
    summary = train_variant(args.variant, args.profile, args.out, args.data_dir, args.device,
                            resume=not args.no_resume)
    if "stage3" in summary:
        stage3 = summary["stage3"] or {}
        print(f"ablation {args.variant}: stage 2 from {summary['stage2_dir']}; stage 3 "
              f"{stage3.get('steps')} steps, valid {stage3.get('valid')}; "
              f"{summary['bits_per_second']:.0f} bit/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
