"""What the stage runners share: the mel config from ``params.yaml: audio``, the train/valid crop
datasets, and the ``result.json`` summary each stage writes next to its checkpoints."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from duotok.config import stage_params
from duotok.data import StemCropDataset
from duotok.io import write_json_atomic
from duotok.train.loop import TrainConfig, Trainer, TrainResult

MEL_KEYS = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max", "log_floor")


def mel_settings(profile: str | None) -> dict[str, Any]:
    audio = stage_params("audio", profile)
    return {k: audio[k] for k in MEL_KEYS}


def crop_datasets(root: Path, data_cfg: dict[str, Any], sample_rate: int,
                  seed: int) -> tuple[StemCropDataset, StemCropDataset]:
    """Random training crops and deterministic validation crops of the corpus at ``root``."""
    seg = float(data_cfg["segment_seconds"])
    train = StemCropDataset(root, "train", seg, sample_rate, crops_per_song=int(data_cfg["crops_per_song"]),
                            seed=seed, random=True)
    valid = StemCropDataset(root, "valid", seg, sample_rate, crops_per_song=1, seed=seed, random=False)
    return train, valid


def write_result(stage: str, profile: str | None, out: Path, trainer: Trainer, result: TrainResult,
                 model_config: Any, train_cfg: TrainConfig, **extra: Any) -> None:
    """``<out>/result.json``: what was trained, for how long, and the last metrics (main process)."""
    if not trainer.info.is_main:
        return
    write_json_atomic(out / "result.json", {
        "stage": stage, "profile": profile, "steps": result.step, "seconds": result.seconds,
        "resumed_from": result.resumed_from, "skipped_steps": result.skipped_steps,
        "world_size": trainer.info.world_size, "train": result.train, "valid": result.valid,
        "model": asdict(model_config), "train_config": asdict(train_cfg), **extra,
    })
