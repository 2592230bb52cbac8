"""Stage 4b runner: the token-conditioned latent diffusion decoder, and the complete codec.

    duotok train decoder [--profile P] [--tokenizer models/duotok] [--autoencoder DIR] [--out DIR] [--steps N]
    torchrun --nproc_per_node=2 -m duotok.train.decoder --profile smoke

Reads ``params.yaml: decoder`` (model / sampling / data / train). The frozen stage-3 tokenizer turns
the ground-truth vocal and accompaniment stems of every song into tokens → quantized embeddings (the
condition), the frozen autoencoder turns the same stems into latents (the target); both are computed
once up front (:mod:`duotok.data.latents`). The DiT then learns, by flow matching, to generate a
track's latents from its tokens. At the end the tokenizer, the autoencoder and the DiT are bundled
into one :class:`DuoTok` that encodes *and* decodes (``decoder.data.codec_dir``), with
``decoder.sampling`` as its starting sampling settings; the stage's notebook then chooses the settings
on validation songs (:mod:`duotok.eval.sampling_choice`) and writes them into the codec with
:func:`write_codec_sampling`. Re-running with the same output folder resumes."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from duotok.config import Params, as_params
from duotok.data import collate_stems
from duotok.data.latents import TokenLatentDataset, extract_features, latent_stats
from duotok.errors import CheckpointError
from duotok.io.checkpoint import CONFIG_NAME, config_from_dict, config_with_defaults
from duotok.io.files import write_json_atomic
from duotok.models.autoencoder import WaveAutoencoder
from duotok.models.dit import DiTConfig, LatentDiT, check_time_shift
from duotok.paths import resolve
from duotok.tokenizer.decoder import TokenDecoder
from duotok.tokenizer.model import DuoTok
from duotok.train.common import print_result, runner_parser, write_result
from duotok.train.launch import launchable
from duotok.train.loop import TrainConfig, Trainer, TrainResult
from duotok.train.precision import check_setting


def frame_mask(batch: dict[str, Any]) -> torch.Tensor:
    """``(B, L)`` validity of latent frames from the items' valid token counts."""
    frames = batch["latents"].shape[1]
    per_token = frames // batch["cond"].shape[1]
    lengths = torch.as_tensor(batch["length"], device=batch["latents"].device)
    return torch.arange(frames, device=lengths.device)[None, :] < (lengths * per_token)[:, None]


def decoder_loss(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow-matching loss through ``forward`` (DDP-safe). Validation draws its times and noise from a
    fixed seed, so the validation curve measures the model, not the luck of the draw."""
    generator = None
    if not model.training:
        generator = torch.Generator(device=batch["latents"].device).manual_seed(0)
    return model(latents=batch["latents"], cond=batch["cond"], track=batch["track"], mask=frame_mask(batch),
                 generator=generator)


def build_dit_config(params: Params | str | None, tokenizer: DuoTok, autoencoder: WaveAutoencoder) -> DiTConfig:
    """The DiT's sizes from params; its interfaces from the two frozen models it sits between."""
    per_token = tokenizer.samples_per_token
    if per_token % autoencoder.samples_per_latent:
        raise ValueError(f"tokens cover {per_token} samples, not a whole number of autoencoder frames "
                         f"({autoencoder.samples_per_latent} samples)")
    p = as_params(params).section("decoder")["model"]
    return config_with_defaults(DiTConfig, {**p, "latent_dim": autoencoder.config.latent_dim,
                                            "cond_dim": tokenizer.config.quantizer.encoder.dim,
                                            "cond_upsample": per_token // autoencoder.samples_per_latent},
                                "decoder.model")


def _load(cls: type, directory: Path, what: str, stage: str) -> Any:
    if not (directory / "config.json").is_file():
        raise CheckpointError(directory, f"no {what} here: run `duotok train {stage}` first or point at one")
    return cls.from_pretrained(directory).eval()


def write_codec_sampling(codec_dir: str | Path, steps: int, cfg_scale: float, seed: int | None = None,
                         time_shift: float | None = None, precision: str | None = None) -> Path:
    """Set the sampling settings a complete codec decodes with by default (``config.json`` →
    ``decoder.steps`` / ``cfg_scale`` / ``seed`` / ``time_shift`` / ``precision``; ``None`` keeps the
    saved value). Weights are
    untouched. The new config is validated first and written atomically (a temp file beside it, then
    a rename), so a crash leaves the old or the new file, never half of one. Returns the config path."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(cfg_scale, bool) or not isinstance(cfg_scale, (int, float)) or not (
            math.isfinite(cfg_scale) and cfg_scale >= 0):
        raise ValueError(f"cfg_scale must be a finite number >= 0, got {cfg_scale!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if time_shift is not None:
        check_time_shift(time_shift)
    if precision is not None:
        check_setting(precision, "precision")
    directory = Path(codec_dir)
    DuoTok.read_config(directory)  # a readable DuoTok checkpoint, or a CheckpointError naming it
    path = directory / CONFIG_NAME
    header = json.loads(path.read_text(encoding="utf-8"))
    decoder_cfg = header["config"].get("decoder")
    if not isinstance(decoder_cfg, dict):
        raise CheckpointError(path, "this DuoTok has no decoder (a stage-3 tokenizer): no sampling settings to set")
    decoder_cfg.update(steps=int(steps), cfg_scale=float(cfg_scale))
    if seed is not None:
        decoder_cfg["seed"] = int(seed)
    if time_shift is not None:
        decoder_cfg["time_shift"] = float(time_shift)
    if precision is not None:
        decoder_cfg["precision"] = precision
    try:
        config_from_dict(DuoTok.config_class, header["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(path, str(exc)) from exc
    return write_json_atomic(path, header)


def sampling_settings(sampling: dict[str, Any]) -> dict[str, Any]:
    """``decoder.sampling`` → :meth:`TokenDecoder.from_parts` keywords (``time_shift`` 1 and ``precision``
    fp32 where the profile does not name them: a config from before the options decodes as it did)."""
    return {"steps": int(sampling["steps"]), "cfg_scale": float(sampling["cfg_scale"]),
            "seed": int(sampling["seed"]), "time_shift": float(sampling.get("time_shift", 1.0)),
            "precision": check_setting(str(sampling.get("precision", "fp32")), "decoder.sampling.precision")}


@launchable
def run(params: Params | str | None = None, out_dir: str | Path | None = None, data_dir: str | Path | None = None,
        tokenizer_dir: str | Path | None = None, autoencoder_dir: str | Path | None = None,
        codec_dir: str | Path | None = None, steps: int | None = None, resume: bool = True,
        device: str | None = None,
        precision: str | None = None) -> TrainResult:
    params = as_params(params)
    p = params.section("decoder")
    data_cfg = p["data"]
    train_cfg = TrainConfig.from_dict(p["train"])
    if steps is not None:
        train_cfg.steps = steps
    if precision is not None:
        train_cfg.precision = check_setting(precision)
    out = resolve(out_dir or data_cfg["out_dir"])
    root = resolve(data_dir or data_cfg["root"])
    tokenizer = _load(DuoTok, resolve(tokenizer_dir or data_cfg["tokenizer"]), "tokenizer", "quantize")
    autoencoder = _load(WaveAutoencoder, resolve(autoencoder_dir or data_cfg["autoencoder"]), "autoencoder",
                        "autoencoder")
    if autoencoder.config.sample_rate != tokenizer.sample_rate:
        raise ValueError(f"autoencoder is at {autoencoder.config.sample_rate} Hz, tokenizer at "
                         f"{tokenizer.sample_rate} Hz")
    model_cfg = build_dit_config(params, tokenizer, autoencoder)
    train_features = extract_features(tokenizer, autoencoder, root, "train")
    valid_features = extract_features(tokenizer, autoencoder, root, "valid")
    segment = tokenizer.samples_per_chunk // tokenizer.samples_per_token
    train = TokenLatentDataset(train_features, segment, int(data_cfg["crops_per_song"]), seed=train_cfg.seed)
    valid = TokenLatentDataset(valid_features, segment, 1, seed=train_cfg.seed, random=False)
    torch.manual_seed(train_cfg.seed)
    model = LatentDiT(model_cfg)
    model.set_latent_stats(*latent_stats(train_features))
    trainer = Trainer(model, decoder_loss, train, train_cfg, out, valid_data=valid, collate_fn=collate_stems,
                      device=device)
    result = trainer.fit(resume=resume)
    if trainer.info.is_main:
        sampling = p["sampling"]
        decoder = TokenDecoder.from_parts(autoencoder, trainer.model.cpu(), **sampling_settings(sampling))
        tokenizer.with_decoder(decoder).save_pretrained(resolve(codec_dir or data_cfg["codec_dir"]))
    write_result("decoder", params, out, trainer, result, model_cfg, train_cfg,
                 parameters=sum(q.numel() for q in model.parameters()), train_tracks=len(train_features),
                 fingerprints=tokenizer.fingerprints())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = runner_parser("decoder", __doc__)
    parser.add_argument("--tokenizer", help="stage-3 tokenizer folder (default: decoder.data.tokenizer)")
    parser.add_argument("--autoencoder", help="autoencoder model folder (default: decoder.data.autoencoder)")
    parser.add_argument("--codec", help="where to write the complete codec (default: decoder.data.codec_dir)")
    args = parser.parse_args(argv)
    result = run(args.profile, args.out, args.data_dir, args.tokenizer, args.autoencoder, args.codec, args.steps,
                 resume=not args.no_resume, device=args.device,
                 precision=args.precision)
    print_result("decoder", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
