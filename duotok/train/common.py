"""What the stage runners share: the mel config from ``params.yaml: audio``, the train/valid crop
datasets, and the ``result.json`` summary each stage writes next to its checkpoints."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from duotok.config import PROFILES, Params, as_params
from duotok.data import StemCropDataset
from duotok.io import write_json_atomic
from duotok.train.loop import TrainConfig, Trainer, TrainResult
from duotok.train.precision import PRECISIONS

MEL_KEYS = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max", "log_floor")


def mel_settings(params: Params | str | None) -> dict[str, Any]:
    audio = as_params(params).section("audio")
    return {k: audio[k] for k in MEL_KEYS}


def crop_datasets(root: Path, data_cfg: dict[str, Any], sample_rate: int,
                  seed: int) -> tuple[StemCropDataset, StemCropDataset]:
    """Random training crops and deterministic validation crops of the corpus at ``root``."""
    seg = float(data_cfg["segment_seconds"])
    train = StemCropDataset(root, "train", seg, sample_rate, crops_per_song=int(data_cfg["crops_per_song"]),
                            seed=seed, random=True)
    valid = StemCropDataset(root, "valid", seg, sample_rate, crops_per_song=1, seed=seed, random=False)
    return train, valid


def write_result(stage: str, params: Params, out: Path, trainer: Trainer, result: TrainResult,
                 model_config: Any, train_cfg: TrainConfig, **extra: Any) -> None:
    """``<out>/result.json``: what was trained (profile and any overrides), for how long, and the last
    metrics (main process)."""
    if not trainer.info.is_main:
        return
    write_json_atomic(out / "result.json", {
        "stage": stage, "profile": params.profile, "overrides": list(params.overrides), "steps": result.step, "seconds": result.seconds,
        "resumed_from": result.resumed_from, "skipped_steps": result.skipped_steps,
        "world_size": trainer.info.world_size, "precision": result.precision, "train": result.train, "valid": result.valid,
        "model": asdict(model_config), "train_config": asdict(train_cfg), **extra,
    })


def runner_parser(stage: str, description: str | None, init_from: str | None = None) -> argparse.ArgumentParser:
    """The options every stage runner takes (``duotok train STAGE`` and ``python -m duotok.train.STAGE``);
    ``init_from`` names the earlier stage whose checkpoint ``--init`` points at."""
    parser = argparse.ArgumentParser(prog=f"duotok train {stage}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES)
    if init_from:
        parser.add_argument("--init", help=f"{init_from} model folder (default: {stage}.data.init)")
    parser.add_argument("--out", help=f"output folder (default: {stage}.data.out_dir)")
    parser.add_argument("--data-dir", help=f"corpus folder (default: {stage}.data.root)")
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.add_argument("--device", choices=("cpu", "cuda"))
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="override train.precision (auto: bf16 only where the hardware computes it natively)")
    parser.add_argument("--no-resume", action="store_true", help="start from scratch even if <out>/last exists")
    return parser


def print_result(stage: str, result: TrainResult) -> None:
    print(f"{stage}: {result.step} steps in {result.seconds:.0f} s; train {result.train}; valid {result.valid}")
