"""Training the Table-2 baselines (``params.yaml: baselines``; DVC stage ``baseline@<codec>``).

    duotok train baselines --codec rvq|mixture_vq|mucodec|kmeans [--profile P] [--out DIR]

* ``rvq`` — :class:`~duotok.codecs.rvq.RVQCodecModel`: the stage-4 autoencoder with a residual
  VQ bottleneck, warm-started from ``models/autoencoder``, trained on mixture crops with the
  autoencoder's losses. It decodes by itself.
* ``mixture_vq`` / ``mucodec`` / ``kmeans`` — :class:`~duotok.codecs.feature_tokenizer.FeatureTokenizer`:
  codebooks fitted to a frozen encoder's features of the train split, then a token decoder trained
  by **the same recipe and budget as Duo-Tok's** (``params.yaml: decoder``: DiT size, steps, batch,
  sampling) on the same autoencoder's latents.

Every codec lands in ``<out>/<codec>/model`` (``config.json`` + ``model.safetensors``) with a
``result.json`` next to it. Re-running resumes the DiT/RVQ training from ``last/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from duotok.codecs.base import Codec, stream_ids
from duotok.codecs.feature_tokenizer import FeatureTokenizer, FeatureTokenizerConfig
from duotok.codecs.rvq import RVQCodecModel, RVQConfig
from duotok.config import PROFILES, Params, as_params
from duotok.data import collate_stems
from duotok.data.latents import TokenLatentDataset, TrackFeatures, latent_stats, stem_tracks
from duotok.data.stems import discover_songs, load_song
from duotok.errors import DatasetError
from duotok.eval.sampling_choice import SamplingChoice, sweep_sampling
from duotok.io.checkpoint import config_with_defaults
from duotok.io.files import write_json_atomic
from duotok.models.autoencoder import WaveAutoencoder
from duotok.models.bestrq import BestRQModel
from duotok.models.dit import DiTConfig, LatentDiT
from duotok.models.multitask import MultiTaskModel
from duotok.paths import resolve
from duotok.quantization.simvq import usage_statistics
from duotok.tokenizer.decoder import TokenDecoder
from duotok.train.autoencoder import make_loss
from duotok.train.common import crop_datasets, mel_settings
from duotok.train.decoder import _load, decoder_loss, sampling_settings
from duotok.train.loop import TrainConfig, Trainer

TOKEN_BASELINES = ("rvq", "mixture_vq", "mucodec", "kmeans")
FEATURE_BASELINES = ("mixture_vq", "mucodec", "kmeans")


# --------------------------------------------------------------------------- the acoustic RVQ codec


def train_rvq(params: Params, out: Path, root: Path, resume: bool = True, device: str | None = None,
              steps: int | None = None) -> tuple[RVQCodecModel, dict[str, Any]]:
    p = params.section("baselines")
    cfg = p["rvq"]
    train_cfg = TrainConfig.from_dict(cfg["train"])
    if steps is not None:
        train_cfg.steps = steps
    autoencoder = _load(WaveAutoencoder, resolve(p["data"]["autoencoder"]), "autoencoder", "autoencoder")
    rvq = config_with_defaults(RVQConfig, cfg["model"], "baselines.rvq.model")
    torch.manual_seed(train_cfg.seed)
    model = RVQCodecModel.from_autoencoder(autoencoder, rvq, float(cfg["commit_weight"]))
    train, valid = crop_datasets(root, cfg["data"], model.sample_rate, train_cfg.seed)
    trainer = Trainer(model, make_loss(("mixture",)), train, train_cfg, out / "train", valid_data=valid,
                      collate_fn=collate_stems, device=device)
    result = trainer.fit(resume=resume)
    codec = trainer.model.cpu().eval()
    return codec, {"steps": result.step, "seconds": result.seconds, "precision": result.precision,
                   "train": result.train, "valid": result.valid}


# --------------------------------------------------------------------------- frozen-feature tokenizers


def feature_config(codec: str, params: Params) -> tuple[FeatureTokenizerConfig, str]:
    """The tokenizer's config and which stage's encoder it freezes (``"pretrain"`` or ``"finetune"``)."""
    p = params.section("baselines")
    spec = dict(p["tokenizers"][codec])
    source = spec.pop("features_from")
    encoder = {"n_mels": mel_settings(params)["n_mels"], **params.section("pretrain")["model"]}
    bottleneck = params.section("finetune")["model"]["bottleneck_dim"] if "bottleneck" in spec["layers"] else None
    cfg = config_with_defaults(FeatureTokenizerConfig, {
        "mel": mel_settings(params), "encoder": encoder, "bottleneck_dim": bottleneck,
        "codebook_size": int(p["codebook_size"]), **spec}, f"baselines.tokenizers.{codec}")
    return cfg, source


def frozen_tokenizer(cfg: FeatureTokenizerConfig, source: str, params: Params) -> FeatureTokenizer:
    p = params.section("baselines")["data"]
    if source == "pretrain":
        stage1 = _load(BestRQModel, resolve(p["pretrain"]), "stage-1 encoder", "pretrain")
        return FeatureTokenizer.from_encoder(cfg, stage1.encoder)
    if source == "finetune":
        stage2 = _load(MultiTaskModel, resolve(p["finetune"]), "stage-2 model", "finetune")
        return FeatureTokenizer.from_encoder(cfg, stage2.encoder, stage2.proj_in)
    raise ValueError(f"features_from must be 'pretrain' or 'finetune', got {source!r}")


def stream_audio(song: dict[str, Any]) -> dict[str, np.ndarray]:
    vocal, accompaniment = stem_tracks(song["stems"])
    return {"vocal": vocal, "accompaniment": accompaniment, "mixture": song["mixture"]}


def collect_features(tokenizer: FeatureTokenizer, root: Path, split: str, max_frames: int, seed: int,
                     normalize: bool = False) -> list[torch.Tensor]:
    """Per stream, ``(N ≤ max_frames, D)`` features of every song of ``split`` (oracle stems for stem
    streams), uniformly subsampled with a seeded permutation when there are more."""
    records = [r for r in discover_songs(root) if r.split == split]
    if not records:
        raise DatasetError(root, f"no songs in split {split!r}")
    per_stream: list[list[torch.Tensor]] = [[] for _ in tokenizer.config.streams]
    for record in tqdm(records, desc=f"{tokenizer.name} features ({split})", mininterval=5,
                       disable=not sys.stderr.isatty()):
        audio = stream_audio(load_song(record, tokenizer.sample_rate))
        for i, stream in enumerate(tokenizer.config.streams):
            per_stream[i].append(tokenizer.stream_features(torch.from_numpy(audio[stream]), i, normalize=normalize))
    out = []
    generator = torch.Generator().manual_seed(seed)
    for chunks in per_stream:
        x = torch.cat(chunks)
        if x.shape[0] > max_frames:
            x = x[torch.randperm(x.shape[0], generator=generator)[:max_frames]]
        out.append(x)
    return out


def fit_simvq(quantizer: torch.nn.Module, features: torch.Tensor, steps: int, batch_frames: int, lr: float,
              seed: int) -> list[dict[str, float]]:
    """Adam on the SimVQ's projection over random frame batches of fixed, normalised features."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in quantizer.parameters() if p.requires_grad], lr=lr)
    log = []
    quantizer.train()
    for step in tqdm(range(steps), desc="SimVQ fit", mininterval=5, disable=not sys.stderr.isatty()):
        batch = features[torch.randint(features.shape[0], (batch_frames,), generator=generator)]
        result = quantizer(batch[None])
        optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        optimizer.step()
        if step % max(1, steps // 20) == 0 or step == steps - 1:
            log.append({"step": step, "loss": float(result.loss.detach()), **{k: float(v) for k, v in result.metrics.items()}})
    quantizer.eval()
    return log


def fit_kmeans(quantizer: torch.nn.Module, features: torch.Tensor, iters: int, batch_frames: int, seed: int) -> None:
    from sklearn.cluster import MiniBatchKMeans

    size = quantizer.centroids.shape[0]
    if features.shape[0] < size:
        raise DatasetError("<features>", f"{features.shape[0]} frames cannot fit {size} k-means centroids")
    km = MiniBatchKMeans(n_clusters=size, batch_size=batch_frames, max_iter=iters, n_init=1, random_state=seed)
    km.fit(features.numpy())
    quantizer.centroids.copy_(torch.from_numpy(km.cluster_centers_).float())


def code_usage(tokenizer: FeatureTokenizer, features: list[torch.Tensor]) -> dict[str, dict[str, float]]:
    """Usage (fraction of codes used) and code perplexity per stream on held-out features."""
    out = {}
    for i, stream in enumerate(tokenizer.config.streams):
        codes = tokenizer.quantize(i, features[i])
        perplexity, usage = usage_statistics(torch.bincount(codes, minlength=tokenizer.config.codebook_size))
        out[stream] = {"usage": float(usage), "perplexity": float(perplexity)}
    return out


def train_feature_tokenizer(codec: str, params: Params, root: Path) -> tuple[FeatureTokenizer, dict[str, Any]]:
    p = params.section("baselines")
    fit = p["fit"]
    cfg, source = feature_config(codec, params)
    # Seeded like every other stage runner: the SimVQ projections are drawn when the tokenizer is built, and the
    # global RNG's state here depends on what ran before (smoke PPL@1024 of one codebook: 776-1288 unseeded).
    torch.manual_seed(int(fit["seed"]))
    tokenizer = frozen_tokenizer(cfg, source, params)
    t0 = time.time()
    raw = collect_features(tokenizer, root, "train", int(fit["max_frames"]), int(fit["seed"]))
    for i, x in enumerate(raw):
        tokenizer.set_feature_stats(i, x.mean(dim=0), x.std(dim=0))
    feats = [tokenizer.normalized(i, x) for i, x in enumerate(raw)]
    logs = []
    for i, q in enumerate(tokenizer.quantizers):
        if cfg.quantizer == "simvq":
            logs.append(fit_simvq(q, feats[i], int(fit["simvq_steps"]), int(fit["batch_frames"]), float(fit["lr"]),
                                  int(fit["seed"]) + i))
        else:
            fit_kmeans(q, feats[i], int(fit["kmeans_iters"]), int(fit["batch_frames"]), int(fit["seed"]) + i)
    valid = collect_features(tokenizer, root, "valid", int(fit["max_frames"]), int(fit["seed"]), normalize=True)
    return tokenizer, {"features_from": source, "fit_seconds": time.time() - t0, "fit_log": logs,
                       "train_frames": [int(x.shape[0]) for x in feats], "valid_usage": code_usage(tokenizer, valid)}


# --------------------------------------------------------------------------- token decoders (stage-4 recipe)


@torch.no_grad()
def codec_track_features(codec: Codec, autoencoder: WaveAutoencoder, root: Path, split: str,
                         samples_per_token: int) -> list[TrackFeatures]:
    """(token embeddings, autoencoder latents) per stream of every song: oracle stems for stem streams,
    as Duo-Tok's decoder is trained (:mod:`duotok.data.latents`)."""
    if samples_per_token % autoencoder.samples_per_latent:
        raise ValueError(f"a token covers {samples_per_token} samples, not a whole number of autoencoder frames")
    out = []
    records = [r for r in discover_songs(root) if r.split == split]
    for record in tqdm(records, desc=f"{codec.name} decoder features ({split})", mininterval=5,
                       disable=not sys.stderr.isatty()):
        audio = stream_audio(load_song(record, codec.sample_rate))
        ids = codec.encode_stems(torch.from_numpy(audio["vocal"]), torch.from_numpy(audio["accompaniment"]))
        for track, stream in enumerate(codec.streams):
            cond = codec.embed_stream(stream_ids(codec, ids, stream), stream).float()
            n_tok = cond.shape[0]
            padded = torch.zeros(n_tok * samples_per_token)
            x = torch.from_numpy(audio[stream])[: n_tok * samples_per_token]
            padded[: x.numel()] = x
            latents = autoencoder.encode(padded[None])[0].transpose(0, 1).contiguous().float()
            out.append(TrackFeatures(record.id, track % 2, cond, latents))
    return out


def train_token_decoder(codec: FeatureTokenizer, params: Params, out: Path, root: Path, resume: bool = True,
                        device: str | None = None) -> tuple[TokenDecoder, dict[str, Any]]:
    """Duo-Tok's decoder recipe (``params.yaml: decoder``) on this codec's embeddings: equal budget."""
    d = params.section("decoder")
    autoencoder = _load(WaveAutoencoder, resolve(params.section("baselines")["data"]["autoencoder"]),
                        "autoencoder", "autoencoder")
    train_cfg = TrainConfig.from_dict(d["train"])
    per_token = codec.samples_per_token
    dit_cfg = config_with_defaults(DiTConfig, {**d["model"], "latent_dim": autoencoder.config.latent_dim,
                                               "cond_dim": int(codec.embed_stream(torch.zeros(1, dtype=torch.long),
                                                                                  next(iter(codec.streams))).shape[-1]),
                                               "cond_upsample": per_token // autoencoder.samples_per_latent},
                                   "decoder.model")
    train_features = codec_track_features(codec, autoencoder, root, "train", per_token)
    valid_features = codec_track_features(codec, autoencoder, root, "valid", per_token)
    segment = codec.samples_per_chunk // per_token
    train = TokenLatentDataset(train_features, segment, int(d["data"]["crops_per_song"]), seed=train_cfg.seed)
    valid = TokenLatentDataset(valid_features, segment, 1, seed=train_cfg.seed, random=False)
    torch.manual_seed(train_cfg.seed)
    dit = LatentDiT(dit_cfg)
    dit.set_latent_stats(*latent_stats(train_features))
    trainer = Trainer(dit, decoder_loss, train, train_cfg, out / "decoder", valid_data=valid,
                      collate_fn=collate_stems, device=device)
    result = trainer.fit(resume=resume)
    decoder = TokenDecoder.from_parts(autoencoder, trainer.model.cpu(), **sampling_settings(d["sampling"]))
    choice = choose_decoder_sampling(codec.with_decoder(decoder.eval()), params, root)
    return decoder, {"decoder_steps": result.step, "decoder_seconds": result.seconds,
                     "decoder_precision": result.precision, "decoder_train": result.train,
                     "decoder_valid": result.valid, "sampling_choice": choice.as_dict()}


def choose_decoder_sampling(codec: FeatureTokenizer, params: Params, root: Path) -> SamplingChoice:
    """Stage 4b's validation sweeps (``decoder.bench``, :func:`~duotok.eval.sampling_choice.sweep_sampling`)
    on this baseline's decoder, and the choice set as its default: every decoder of Table 2 gets its
    Euler steps, time grid and guidance scale the same way, on validation songs, never from a hand-set
    value (the sampling precision is ``decoder.sampling.precision``, as for Duo-Tok's)."""
    d = params.section("decoder")
    *_, choice = sweep_sampling(codec, root, d["bench"], float(d["sampling"]["cfg_scale"]))
    cfg = codec.decoder.config
    cfg.steps, cfg.cfg_scale, cfg.time_shift = choice.steps, choice.cfg_scale, choice.time_shift
    return choice


# --------------------------------------------------------------------------- entry point


def run(codec: str, params: Params | str | None = None, out_dir: str | Path | None = None,
        data_dir: str | Path | None = None, resume: bool = True, device: str | None = None,
        steps: int | None = None) -> Path:
    """Train one baseline; returns the folder of its final model."""
    if codec not in TOKEN_BASELINES:
        raise ValueError(f"unknown baseline {codec!r}; trainable baselines are {TOKEN_BASELINES} (opus needs none)")
    params = as_params(params)
    p = params.section("baselines")
    out = resolve(out_dir or p["data"]["out_dir"]) / codec
    root = resolve(data_dir or p["data"]["root"])
    t0 = time.time()
    if codec == "rvq":
        model, info = train_rvq(params, out, root, resume, device, steps)
    else:
        model, info = train_feature_tokenizer(codec, params, root)
        decoder, dec_info = train_token_decoder(model, params, out, root, resume, device)
        model = model.with_decoder(decoder)
        info.update(dec_info)
    model.save_pretrained(out / "model")
    write_json_atomic(out / "result.json", {
        "codec": codec, "name": model.name, "profile": params.profile, "seconds": time.time() - t0,
        "frame_rate": model.frame_rate, "codebook_sizes": list(model.codebook_sizes),
        "streams": {k: list(v) for k, v in model.streams.items()}, "fingerprint": model.fingerprint(), **info})
    return out / "model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="duotok train baselines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", required=True, choices=TOKEN_BASELINES)
    parser.add_argument("--profile", choices=PROFILES)
    parser.add_argument("--out", help="parent output folder (default: baselines.data.out_dir)")
    parser.add_argument("--data-dir", help="corpus folder (default: baselines.data.root)")
    parser.add_argument("--steps", type=int, help="override the RVQ codec's train.steps")
    parser.add_argument("--device", choices=("cpu", "cuda"))
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args(argv)
    path = run(args.codec, args.profile, args.out, args.data_dir, not args.no_resume, args.device, args.steps)
    print(f"baseline {args.codec}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
