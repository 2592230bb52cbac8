"""Stage 4a runner: the audio autoencoder that the diffusion decoder renders through.

    duotok train autoencoder [--profile P] [--out DIR] [--steps N]
    torchrun --nproc_per_node=2 -m duotok.train.autoencoder --profile smoke

Reads ``params.yaml: audio`` (sample rate) and ``autoencoder`` (model / data / train). Every training
item is a crop of one song; it contributes each of ``autoencoder.data.tracks`` (vocals, the
accompaniment = drums + bass + other, the mixture) as a separate signal, because the decoder renders
vocal and accompaniment tracks and the evaluation also scores mixtures. Re-running with the same
output folder resumes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from duotok.config import Params, as_params
from duotok.data import collate_stems
from duotok.data.stems import SOURCES
from duotok.io.checkpoint import config_with_defaults
from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder
from duotok.paths import resolve
from duotok.train.common import crop_datasets, print_result, runner_parser, write_result
from duotok.train.launch import launchable
from duotok.train.loop import TrainConfig, Trainer, TrainResult
from duotok.train.precision import check_setting

#: The signals a crop can contribute: a stem, the accompaniment (drums + bass + other) or the mixture.
TRACK_CHOICES = ("mixture", "accompaniment", *SOURCES)


def build_config(params: Params | str | None = None) -> tuple[AutoencoderConfig, TrainConfig, dict[str, Any]]:
    params = as_params(params)
    p = params.section("autoencoder")
    sample_rate = params.section("audio")["sample_rate"]
    model = config_with_defaults(AutoencoderConfig, {"sample_rate": sample_rate, **p["model"]}, "autoencoder.model")
    unknown = set(p["data"]["tracks"]) - set(TRACK_CHOICES)
    if unknown:
        raise ValueError(f"autoencoder.data.tracks: unknown {sorted(unknown)}; choose from {TRACK_CHOICES}")
    return model, TrainConfig.from_dict(p["train"]), p["data"]


def track_signals(batch: dict[str, Any], tracks: tuple[str, ...] | list[str]) -> torch.Tensor:
    """``(B, T)`` per requested track, stacked track-major into ``(len(tracks) * B, T)``."""
    out = []
    for name in tracks:
        if name == "mixture":
            out.append(batch["mixture"])
        elif name == "accompaniment":
            out.append(batch["accompaniment"])
        else:
            out.append(batch["stems"][:, SOURCES.index(name)])
    return torch.cat(out)


def make_loss(tracks: tuple[str, ...] | list[str]):
    """The loss of a crop batch: every track of every item, padded samples excluded."""
    tracks = tuple(tracks)

    def autoencoder_loss(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        audio = track_signals(batch, tracks)
        lengths = torch.as_tensor(batch["length"]).repeat(len(tracks)).to(audio.device)
        return model(audio, lengths)

    return autoencoder_loss


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
    train, valid = crop_datasets(root, data_cfg, model_cfg.sample_rate, train_cfg.seed)
    torch.manual_seed(train_cfg.seed)
    model = WaveAutoencoder(model_cfg)
    trainer = Trainer(model, make_loss(data_cfg["tracks"]), train, train_cfg, out, valid_data=valid,
                      collate_fn=collate_stems, device=device)
    result = trainer.fit(resume=resume)
    n_params = sum(p.numel() for p in model.parameters())
    write_result("autoencoder", params, out, trainer, result, model_cfg, train_cfg, parameters=n_params,
                 latent_rate=model.latent_rate)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = runner_parser("autoencoder", __doc__)
    args = parser.parse_args(argv)
    result = run(args.profile, args.out, args.data_dir, args.steps, resume=not args.no_resume, device=args.device,
                 precision=args.precision)
    print_result("autoencoder", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
