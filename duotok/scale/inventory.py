"""Every network the pipeline trains, for one profile: how it is built, fed and scored.

:func:`model_specs` lists one :class:`ModelSpec` per trained network — the Duo-Tok stages, the
autoencoder and the diffusion decoder, the Table-2 baselines (the RVQ codec, the SimVQ codebook fits,
their token decoders), the LMs of the PPL evaluation, the tagging and leakage probes, the separators
and their ablations, and the stage-2/3 ablation variants. :func:`build_profile_models` builds them one
at a time and yields ``(name, model, example_batch_fn, loss_fn)``.

Why every config comes from the stage's own function (``pretrain.build_config``,
``decoder.build_dit_config``, ``baselines.feature_config``, ``lm_protocols.lm_config``,
``separation.generative_config``, ``ablations.variants.overrides_for``, ...): a scale check of a
re-derived config would test the re-derivation, not the pipeline. Where a runner derives a value
inline (no function to call), the few lines are repeated here and say where they come from:

* the token decoders of the frozen-feature baselines (``baselines.train_token_decoder``): their DiT
  config, with the codec's embedding width as ``cond_dim``;
* the RVQ codec's quantizer config (``baselines.train_rvq``);
* the collapse demonstration of notebook 03 (its SimVQ-as-published overrides);
* the probes' loss (``probe.train_probe``) and the SimVQ fit's loss (``baselines.fit_simvq``), which
  are inline in their training loops;
* the width of a codec's embeddings (what the probes read, :func:`codec_shapes`), because a codec's
  ``embed`` cannot run on the ``meta`` device; tests check it against real codecs at smoke size.

Two simplifications, both architecture-neutral: a stage that starts from an earlier stage's checkpoint
(``MultiTaskModel.from_pretrain``, ``DualTrackModel.from_finetune``, ``RVQCodecModel.from_autoencoder``,
``FeatureTokenizer.from_encoder``) is built as ``cls(config)`` — the same module, freshly initialised —
because those constructors only copy weights (``from_autoencoder`` is used as is: it also derives the
codec's config); and the frozen-SSL separator gets the stage-1 config this profile's ``pretrain``
section gives (:meth:`GenerativeSeparator.build` would read it from the stage-1 checkpoint on disk).
What a stage does to a fresh model before its first step (BEST-RQ's mel statistics, stage 3's
data-dependent codebook start, the DiT's latent statistics, Open-Unmix's input normalisation) runs in
``ModelSpec.prepare`` on the example crop, so the step starts from the state training starts from.

Names are dotted, their first part a family (:data:`FAMILIES`: ``pretrain`` ... ``decoder`` are the
``duotok`` family), so that building one model lists only its family's specs. The ablation
evaluation's probe settings come from ``ablations.evaluate.probe_settings``, which reads the profile's
params.yaml from disk (as the evaluation does): overrides of a :class:`Params` do not reach them.

Example inputs are batch 1, :data:`EXAMPLE_SECONDS` of synthetic audio (four stems with notes and
lyrics, so every head has a target) or the matching number of tokens / frames — except the
vocal-conditioned LMs, which need more than their given prefix to score anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from duotok.ablations.evaluate import probe_settings
from duotok.ablations.routing_variants import separated_stems_loss, tie_codebooks
from duotok.ablations.variants import load_variants, overrides_for
from duotok.codecs.base import STEM_STREAMS
from duotok.codecs.duotok import DuoTokCodec
from duotok.codecs.feature_tokenizer import FeatureTokenizer, FeatureTokenizerConfig
from duotok.codecs.rvq import RVQCodecModel, RVQConfig
from duotok.config import Params, as_params
from duotok.data.latents import TokenLatentDataset, TrackFeatures, latent_stats
from duotok.data.stems import SOURCES, collate_stems
from duotok.data.synth.tags import TAG_VOCABULARY
from duotok.data.targets import MultiTaskCollate
from duotok.eval.leakage import ATTRIBUTE_LABELS
from duotok.eval.lm import TokenCropDataset, lm_loss
from duotok.eval.lm import collate as lm_collate
from duotok.eval.lm_protocols import crop_frames, lm_config
from duotok.eval.probe import ProbeTrainConfig, window_frames
from duotok.eval.probe_net import ProbeConfig, TaggingProbe
from duotok.eval.token_lm import TokenLM, TokenLMConfig
from duotok.io.checkpoint import config_with_defaults
from duotok.models.autoencoder import WaveAutoencoder
from duotok.models.bestrq import BestRQModel
from duotok.models.dit import DiTConfig, LatentDiT
from duotok.models.dualtrack import DualTrackModel
from duotok.models.multitask import MultiTaskModel
from duotok.separation.generative import GenerativeSeparator, GenerativeSeparatorConfig, generative_loss
from duotok.separation.openunmix import OpenUnmix
from duotok.separation.openunmix import build_config as openunmix_config
from duotok.separation.openunmix import make_loss as openunmix_loss
from duotok.separation.train_generative import GenerativeCropDataset, check_codec_fits
from duotok.text import CharVocab
from duotok.tokenizer.model import DuoTok, DuoTokConfig
from duotok.train import autoencoder as autoencoder_stage
from duotok.train import baselines as baselines_stage
from duotok.train import decoder as decoder_stage
from duotok.train import finetune as finetune_stage
from duotok.train import pretrain as pretrain_stage
from duotok.train import quantize as quantize_stage
from duotok.train.loop import LossFn, TrainConfig
from duotok.train.replica import replica_seeds
from duotok.train.separation import generative_config, load_separation_variants, variant_params

__all__ = [
    "EXAMPLE_SECONDS",
    "FAMILIES",
    "CodecShape",
    "ModelEntry",
    "ModelSpec",
    "OptimSettings",
    "architecture_signature",
    "build_entry",
    "build_model",
    "build_profile_models",
    "codec_shapes",
    "count_parameters",
    "family_of",
    "model_specs",
    "synthetic_crop",
]

#: Seconds of audio (or of tokens / frames at the model's rate) in every example batch: long enough
#: for every window of the losses (the autoencoder's widest STFT needs > 1024 samples, the CTC head a
#: few characters), short enough that the step costs what the model's size costs, not the input's.
EXAMPLE_SECONDS = 1.0

#: Networks the pipeline fits without an optimiser: listed so that a reader of the inventory sees
#: they were not forgotten.
NOT_GRADIENT_TRAINED: dict[str, str] = {
    "baseline.kmeans.codebooks": "MiniBatchKMeans centroids (sklearn, baselines.fit_kmeans): no optimiser step",
    "opus": "ffmpeg's Opus codec: nothing trained",
}

Batch = Mapping[str, Any]
BatchFn = Callable[[], Batch]


# --------------------------------------------------------------------------- settings and records


@dataclass(frozen=True)
class OptimSettings:
    """The optimiser step a stage takes: AdamW's ``lr``/``betas``/``weight_decay``, the gradient-norm
    clip (``None``: the stage does not clip) and ``train.precision`` (``auto`` = bf16 autocast where
    the CPU computes it natively, as :class:`~duotok.train.loop.Trainer` decides)."""

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = None
    precision: str = "fp32"

    @classmethod
    def from_train_config(cls, cfg: TrainConfig) -> OptimSettings:
        """What :class:`~duotok.train.loop.Trainer` uses (AdamW, clip, precision) for a stage's ``train``."""
        return cls(float(cfg.lr), (float(cfg.betas[0]), float(cfg.betas[1])), float(cfg.weight_decay),
                   float(cfg.grad_clip), str(cfg.precision))


def _no_prepare(model: nn.Module) -> None:
    """Most stages train a freshly initialised model as it is."""


@dataclass
class ModelSpec:
    """One trained network of a profile, not yet built.

    ``build()`` constructs it (cheap on the ``meta`` device, where nothing is allocated);
    ``prepare(model)`` does what the stage does to a fresh model before its first step (on real
    devices only); ``make_loss()`` gives the stage's ``loss_fn(model, batch) -> (loss, metrics)``
    (a callable because one loss holds a model of its own: the separated-stems ablation's frozen
    separator). ``stage`` is the DVC stage that trains it, ``also`` other pipeline uses that train
    a network of the very same config (replica seeds, the ablation evaluations), so one check covers
    them."""

    name: str
    stage: str
    config: Any
    build: Callable[[], nn.Module]
    example_batch_fn: BatchFn
    make_loss: Callable[[], LossFn]
    optim: OptimSettings
    prepare: Callable[[nn.Module], None] = _no_prepare
    notes: str = ""
    also: list[str] = field(default_factory=list)


@dataclass
class ModelEntry:
    """A built model with its example batch and loss; unpacks as ``(name, model, example_batch_fn, loss_fn)``."""

    name: str
    model: nn.Module
    example_batch_fn: BatchFn
    loss_fn: LossFn
    spec: ModelSpec

    def __iter__(self) -> Iterator[Any]:
        return iter((self.name, self.model, self.example_batch_fn, self.loss_fn))


@dataclass(frozen=True)
class CodecShape:
    """What the LMs and probes read from a token codec: its codebooks, token rate, streams
    (name → codebook indices) and the width of ``embed(ids)`` (all streams) / ``embed_stream``."""

    name: str
    codebook_sizes: tuple[int, ...]
    frame_rate: float
    streams: dict[str, tuple[int, ...]]
    embed_width: int
    stream_width: int


# --------------------------------------------------------------------------- counting


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts. Shared parameters (a tied codebook) count once, as
    ``model.parameters()`` yields them once; buffers (frozen codebooks, normalisation statistics)
    are not parameters and do not count."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable


def architecture_signature(model: nn.Module) -> str:
    """A short hash of the class and every parameter's and buffer's name, shape and trainability:
    equal for two models that differ only in hyperparameters that hold no weights (noise settings,
    loss weights, seeds)."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, p in model.named_parameters():
        digest.update(f"P{name}{tuple(p.shape)}{p.requires_grad}".encode())
    for name, b in model.named_buffers():
        digest.update(f"B{name}{tuple(b.shape)}".encode())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- example data


def synthetic_crop(seconds: float, sample_rate: int, seed: int = 0) -> dict[str, Any]:
    """One item as :class:`~duotok.data.stems.StemCropDataset` yields it: four stems (a sung tone,
    noise bursts, a bass note, a chord tone), their sums, and a meta with notes and syllables, so the
    chroma and lyrics targets of :class:`~duotok.data.targets.MultiTaskCollate` exist. Deterministic."""
    n = int(round(seconds * sample_rate))
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    tone = {"vocals": 440.0, "bass": 110.0, "other": 659.3}
    stems = torch.zeros(len(SOURCES), n)
    for i, name in enumerate(SOURCES):
        noise = 0.02 * torch.randn(n, generator=g)
        if name == "drums":
            bursts = (torch.remainder(t, 0.25) < 0.03).float()
            stems[i] = 0.3 * bursts * torch.randn(n, generator=g) + noise
        else:
            stems[i] = (0.2 * torch.sin(2 * math.pi * tone[name] * t)).float() + noise
    notes = {"vocals": [{"pitch": 69, "onset": 0.0, "duration": seconds}],
             "bass": [{"pitch": 45, "onset": 0.0, "duration": seconds}],
             "other": [{"pitch": 76, "onset": 0.0, "duration": seconds}]}
    syllables = [{"text": "la", "onset": 0.1 * seconds, "word": 0}, {"text": "lu", "onset": 0.5 * seconds, "word": 1}]
    return {"mixture": stems.sum(dim=0), "stems": stems, "accompaniment": stems[1:].sum(dim=0), "length": n,
            "offset": 0.0, "song_id": "synthetic", "meta": {"notes": notes, "lyrics": {"syllables": syllables}}}


def _randint(shape: Sequence[int], high: Sequence[int] | int, seed: int) -> torch.Tensor:
    """Seeded token ids; ``high`` per row of the second-to-last axis (one codebook size each) or one bound."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(high, int):
        return torch.randint(high, tuple(shape), generator=g)
    highs = torch.tensor(list(high))[:, None]
    return (torch.rand(tuple(shape), generator=g) * highs).long().clamp_max(highs - 1)


def _frames(seconds: float, rate: float) -> int:
    return max(2, int(round(seconds * rate)))


# --------------------------------------------------------------------------- codecs (config only)


def _meta() -> contextlib.AbstractContextManager[Any]:
    """Build on the ``meta`` device: shapes and config-derived properties without allocating weights."""
    return torch.device("meta")


def _duotok_config(params: Params) -> DuoTokConfig:
    """The tokenizer ``quantize.bundle_tokenizer`` assembles: stage 2 as separator, stage 3 as quantizer,
    chunks of the stage-3 crop length."""
    separator = finetune_stage.build_config(params)[0]
    quantizer, _, data = quantize_stage.build_config(params)
    return DuoTokConfig(separator, quantizer, chunk_seconds=float(data["segment_seconds"]))


def _rvq_codec(params: Params) -> RVQCodecModel:
    """The RVQ codec as ``baselines.train_rvq`` builds it (from the autoencoder; config line repeated
    from there). Call under :func:`_meta` for its config and properties only."""
    p = params.section("baselines")
    rvq = config_with_defaults(RVQConfig, p["rvq"]["model"], "baselines.rvq.model")
    ae = WaveAutoencoder(autoencoder_stage.build_config(params)[0])
    return RVQCodecModel.from_autoencoder(ae, rvq, float(p["rvq"]["commit_weight"]))


def codec_shapes(params: Params | str | None = None) -> dict[str, CodecShape]:
    """The token codecs of the comparison (``duotok`` and ``baselines.tokenizers`` + ``rvq``), built on
    the ``meta`` device so sizes, rates and streams come from the codec classes themselves.

    The embedding widths follow the codecs' ``embed``: Duo-Tok concatenates one ``proj_out`` output
    (the encoder width) per stem stream; the RVQ codec returns its ``latent_dim`` latent; a
    frozen-feature tokenizer its features' width per stream (``FeatureTokenizerConfig.feature_dim``)."""
    params = as_params(params)
    out: dict[str, CodecShape] = {}
    with _meta():
        duotok = DuoTokCodec(DuoTok(_duotok_config(params)))
        rvq = _rvq_codec(params)
        features = {name: FeatureTokenizer(baselines_stage.feature_config(name, params)[0])
                    for name in params.section("baselines")["tokenizers"]}
    dim = duotok.model.config.quantizer.encoder.dim
    out["duotok"] = CodecShape("duotok", tuple(duotok.codebook_sizes), float(duotok.frame_rate), duotok.streams,
                               len(STEM_STREAMS) * dim, dim)
    latent = rvq.config.autoencoder.latent_dim
    out["rvq"] = CodecShape("rvq", tuple(rvq.codebook_sizes), float(rvq.frame_rate), rvq.streams, latent, latent)
    for name, tok in features.items():
        widths = [tok.config.feature_dim(layer) for layer in tok.config.layers]
        out[name] = CodecShape(name, tuple(tok.codebook_sizes), float(tok.frame_rate), tok.streams, sum(widths),
                               widths[0])
    return out


# --------------------------------------------------------------------------- batch builders


def _crop_batch(params: Params, seconds: float, collate: Callable[[list[dict[str, Any]]], Batch]) -> BatchFn:
    sr = int(params.section("audio")["sample_rate"])

    def batch() -> Batch:
        return collate([synthetic_crop(seconds, sr)])

    return batch


def _multitask_collate(params: Params, per_track: bool = False) -> MultiTaskCollate:
    audio = params.section("audio")
    return MultiTaskCollate(CharVocab(), int(audio["sample_rate"]), int(audio["hop_length"]), per_track=per_track)


def _latent_features(cond_dim: int, latent_dim: int, n_tokens: int, per_token: int, seed: int = 0) -> TrackFeatures:
    g = torch.Generator().manual_seed(seed)
    return TrackFeatures("synthetic", 0, torch.randn(n_tokens, cond_dim, generator=g),
                         torch.randn(n_tokens * per_token, latent_dim, generator=g))


def _dit_batch(config: DiTConfig, n_tokens: int) -> BatchFn:
    """A :class:`~duotok.data.latents.TokenLatentDataset` item (collated as the decoder stage does)."""

    def batch() -> Batch:
        features = [_latent_features(config.cond_dim, config.latent_dim, n_tokens, config.cond_upsample)]
        data = TokenLatentDataset(features, n_tokens, 1, seed=0, random=False)
        return collate_stems([data[0]])

    return batch


def _dit_prepare(config: DiTConfig, n_tokens: int) -> Callable[[nn.Module], None]:
    """The decoder stages set the DiT's latent statistics from their training latents before step 1."""

    def prepare(model: nn.Module) -> None:
        feats = [_latent_features(config.cond_dim, config.latent_dim, n_tokens, config.cond_upsample)]
        model.set_latent_stats(*latent_stats(feats))

    return prepare


def _lm_batch(config: TokenLMConfig, n_frames: int, score_from: int) -> BatchFn:
    """A :class:`~duotok.eval.lm.TokenCropDataset` crop of one synthetic token song, collated."""

    def batch() -> Batch:
        k = len(config.codebook_sizes)
        ids = _randint((k, n_frames), config.codebook_sizes, 0)
        cond = None
        if config.conditional:
            cond = [_randint((len(config.cond_codebook_sizes), n_frames), config.cond_codebook_sizes, 1)]
        data = TokenCropDataset([ids], n_frames, cond, seed=0, random=False, crops_per_song=1,
                                score_from_frames=score_from)
        return lm_collate([data[0]])

    return batch


def probe_loss(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of :func:`duotok.eval.probe.train_probe` (inline there): BCE with logits of the
    window's tags."""
    loss = F.binary_cross_entropy_with_logits(model(batch["x"], batch["mask"]), batch["labels"])
    return loss, {}


def _probe_batch(config: ProbeConfig, n_frames: int) -> BatchFn:
    def batch() -> Batch:
        g = torch.Generator().manual_seed(0)
        labels = torch.zeros(1, config.n_tags)
        labels[0, :: max(1, config.n_tags // 3)] = 1.0
        return {"x": torch.randn(1, n_frames, config.in_dim, generator=g),
                "mask": torch.ones(1, n_frames, dtype=torch.bool), "labels": labels}

    return batch


def simvq_fit_loss(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of :func:`duotok.train.baselines.fit_simvq` (inline there) for every stream's codebook
    of a :class:`FeatureTokenizer` at once. The fit runs one Adam per codebook; each codebook's loss
    reaches only its own parameters, so the summed loss gives each codebook exactly its own gradient."""
    total = None
    metrics: dict[str, float] = {}
    for i, q in enumerate(model.quantizers):
        result = q(batch["features"][i][None])
        total = result.loss if total is None else total + result.loss
        metrics.update({f"q{i}_{k}": float(v) for k, v in result.metrics.items()})
    assert total is not None
    return total, metrics


def _feature_batch(config: FeatureTokenizerConfig, n_frames: int) -> BatchFn:
    """Standardised features (what ``fit_simvq`` draws its frame batches from): ~N(0, 1) per dimension."""

    def batch() -> Batch:
        g = torch.Generator().manual_seed(0)
        return {"features": [torch.randn(n_frames, config.feature_dim(layer), generator=g)
                             for layer in config.layers]}

    return batch


def _generative_batch(config: GenerativeSeparatorConfig, n_codec_codebooks: int, seconds: float) -> BatchFn:
    """A :class:`~duotok.separation.train_generative.GenerativeCropDataset` crop of one synthetic song
    (cached-token layout: int16 stem ids, int16 mixture PCM), collated as the Trainer's default."""

    def batch() -> Batch:
        n_frames = _frames(seconds, config.frame_rate)
        song = {"stems": _randint((4, n_codec_codebooks, n_frames), config.codebook_size, 0).to(torch.int16),
                "n_samples": torch.tensor(n_frames * config.hop_length),
                "mixture": _randint((n_codec_codebooks, n_frames), config.codebook_size, 1).to(torch.int16)}
        audio = None
        if config.encoder != "mixture_tokens":
            mix = synthetic_crop(n_frames * config.hop_length / config.sample_rate, config.sample_rate)["mixture"]
            audio = [np.clip(np.round(mix.numpy() * 32768.0), -32768, 32767).astype(np.int16)]
        data = GenerativeCropDataset([song], n_frames, config.n_codebooks, config.hop_length, audio, seed=0,
                                     random=False, crops_per_song=1)
        return default_collate([data[0]])

    return batch


def _fixed(loss: LossFn) -> Callable[[], LossFn]:
    return lambda: loss


# --------------------------------------------------------------------------- the specs, stage by stage


def _duotok_specs(params: Params, seconds: float) -> list[ModelSpec]:
    sr = int(params.section("audio")["sample_rate"])
    specs = []

    model_cfg, train_cfg, data_cfg = pretrain_stage.build_config(params)

    def pretrain_prepare(model: nn.Module) -> None:
        pretrain_stage.fit_normalization(model, [synthetic_crop(seconds, sr)], int(data_cfg["normalization_items"]))

    specs.append(ModelSpec("pretrain", "pretrain", model_cfg, lambda: BestRQModel(model_cfg),
                           _crop_batch(params, seconds, collate_stems), _fixed(pretrain_stage.pretrain_loss),
                           OptimSettings.from_train_config(train_cfg), prepare=pretrain_prepare,
                           notes="BEST-RQ: encoder + frozen random-projection targets + linear head"))

    ft_cfg, ft_train, _ = finetune_stage.build_config(params)
    specs.append(ModelSpec("finetune", "finetune", ft_cfg, lambda: MultiTaskModel(ft_cfg),
                           _crop_batch(params, seconds, _multitask_collate(params)),
                           _fixed(finetune_stage.finetune_loss), OptimSettings.from_train_config(ft_train),
                           notes="built as MultiTaskModel(config); the stage copies stage 1's encoder into it"))

    specs.append(_quantize_spec("quantize", "quantize", params, seconds,
                                notes="built as DualTrackModel(config); the stage copies stage 2's weights"))
    demo_steps = int(params.section("quantize")["report"]["collapse_demo_steps"])
    if demo_steps > 0:
        # notebooks/03_quantize.py, the collapse demonstration: SimVQ as published (overrides from there).
        published = {"codebook_init": "random", "codebook_lookup": "l2", "heads": {"vq_weight": 1.0}}
        demo = params.with_overrides({"quantize": {"model": published}})
        specs.append(_quantize_spec("quantize.collapse_demo", "quantize", demo, seconds,
                                    notes=f"notebook 03: {demo_steps} steps of SimVQ as published (random start, l2)"))

    ae_cfg, ae_train, ae_data = autoencoder_stage.build_config(params)
    specs.append(ModelSpec("autoencoder", "autoencoder", ae_cfg, lambda: WaveAutoencoder(ae_cfg),
                           _crop_batch(params, seconds, collate_stems),
                           _fixed(autoencoder_stage.make_loss(ae_data["tracks"])),
                           OptimSettings.from_train_config(ae_train),
                           notes=f"tracks {list(ae_data['tracks'])} of each crop"))

    with _meta():
        tokenizer = DuoTok(_duotok_config(params))
        ae_meta = WaveAutoencoder(ae_cfg)
    dit_cfg = decoder_stage.build_dit_config(params, tokenizer, ae_meta)
    n_tok = _frames(seconds, tokenizer.frame_rate)
    dec_train = TrainConfig.from_dict(params.section("decoder")["train"])
    specs.append(ModelSpec("decoder", "decoder", dit_cfg, lambda: LatentDiT(dit_cfg), _dit_batch(dit_cfg, n_tok),
                           _fixed(decoder_stage.decoder_loss), OptimSettings.from_train_config(dec_train),
                           prepare=_dit_prepare(dit_cfg, n_tok),
                           notes="flow-matching DiT on one track's token embeddings"))
    return specs


def _quantize_spec(name: str, stage: str, params: Params, seconds: float, *, hook: Callable | None = None,
                   make_loss: Callable[[], LossFn] | None = None, notes: str = "") -> ModelSpec:
    """Stage 3 under ``params`` (main run, collapse demo, ablation variants): ``hook`` edits the built
    model (the tied codebook), ``make_loss`` replaces the loss (separated stems), as ``quantize.run``'s
    seams do."""
    cfg, train_cfg, data_cfg = quantize_stage.build_config(params)
    collate = _multitask_collate(params, per_track=True)
    sr = int(params.section("audio")["sample_rate"])

    def build() -> nn.Module:
        model = DualTrackModel(cfg)
        return hook(model) if hook is not None else model

    def prepare(model: nn.Module) -> None:
        if cfg.codebook_init == "data":  # quantize.run: the data start, fitted on training crops
            quantize_stage.init_codebooks_from_crops(model, [synthetic_crop(seconds, sr)], collate,
                                                     int(data_cfg["init_items"]), train_cfg.seed)

    return ModelSpec(name, stage, cfg, build, _crop_batch(params, seconds, collate),
                     make_loss or _fixed(quantize_stage.quantize_loss), OptimSettings.from_train_config(train_cfg),
                     prepare=prepare, notes=notes)


def _baseline_specs(params: Params, seconds: float, shapes: Mapping[str, CodecShape]) -> list[ModelSpec]:
    p = params.section("baselines")
    specs = []
    rvq_train = TrainConfig.from_dict(p["rvq"]["train"])
    with _meta():
        rvq_cfg = _rvq_codec(params).config
    specs.append(ModelSpec("baseline.rvq", "baseline@rvq", rvq_cfg, lambda: _rvq_codec(params),
                           _crop_batch(params, seconds, collate_stems),
                           _fixed(autoencoder_stage.make_loss(("mixture",))), OptimSettings.from_train_config(rvq_train),
                           notes="the autoencoder with a residual-VQ bottleneck (EMA codebooks: buffers)"))

    fit = p["fit"]
    ae_cfg = autoencoder_stage.build_config(params)[0]
    d = params.section("decoder")
    dec_train = TrainConfig.from_dict(d["train"])
    for codec in p["tokenizers"]:
        cfg, source = baselines_stage.feature_config(codec, params)
        stage = f"baseline@{codec}"
        if cfg.quantizer == "simvq":
            n_frames = _frames(seconds, shapes[codec].frame_rate)
            specs.append(ModelSpec(
                f"baseline.{codec}.codebooks", stage, cfg, lambda cfg=cfg: FeatureTokenizer(cfg),
                _feature_batch(cfg, n_frames), _fixed(simvq_fit_loss),
                # fit_simvq: torch.optim.Adam (= AdamW with weight decay 0), no clipping, no autocast.
                OptimSettings(float(fit["lr"]), weight_decay=0.0, grad_clip=None, precision="fp32"),
                notes=f"SimVQ fit per stream on frozen {source} features; the frozen encoder is part of the module"))
        # baselines.train_token_decoder: Duo-Tok's decoder recipe with this codec's embedding width (inline there).
        with _meta():
            tok = FeatureTokenizer(cfg)
            ae_meta = WaveAutoencoder(ae_cfg)
        dit_cfg = config_with_defaults(DiTConfig, {**d["model"], "latent_dim": ae_cfg.latent_dim,
                                                   "cond_dim": shapes[codec].stream_width,
                                                   "cond_upsample": tok.samples_per_token // ae_meta.samples_per_latent},
                                       "decoder.model")
        n_tok = _frames(seconds, tok.frame_rate)
        specs.append(ModelSpec(f"baseline.{codec}.decoder", stage, dit_cfg, lambda c=dit_cfg: LatentDiT(c),
                               _dit_batch(dit_cfg, n_tok), _fixed(decoder_stage.decoder_loss),
                               OptimSettings.from_train_config(dec_train), prepare=_dit_prepare(dit_cfg, n_tok),
                               notes="token decoder trained by the decoder section's recipe (equal budget)"))
    return specs


def _lm_spec(name: str, stage: str, model: Mapping[str, Any], train: TrainConfig, sizes: Sequence[int],
             rate: float, crop_seconds: float, seconds: float, cond_sizes: Sequence[int] | None = None,
             prefix: int = 0, notes: str = "") -> ModelSpec:
    crop = crop_frames(crop_seconds, rate)
    cfg = lm_config(dict(model), list(sizes), list(cond_sizes) if cond_sizes else None, max_frames=crop)
    # Protocol (ii) scores nothing before its given prefix: the example runs one example length past it.
    n_frames = prefix + _frames(seconds, rate)
    return ModelSpec(name, stage, cfg, lambda: TokenLM(cfg), _lm_batch(cfg, n_frames, prefix), _fixed(lm_loss),
                     OptimSettings.from_train_config(train), notes=notes)


def _lm_specs(params: Params, seconds: float, shapes: Mapping[str, CodecShape]) -> list[ModelSpec]:
    """``eval.lm_protocols``: one unconditional LM per codec, and for the dual-track codecs of
    ``lm.conditional`` the accompaniment LM without and with the vocal tokens as condition."""
    p = params.section("lm")
    train = TrainConfig.from_dict(p["train"])
    crop_s = float(p["crop_seconds"])
    specs = []
    for codec in p["codecs"]:
        s = shapes[codec]
        specs.append(_lm_spec(f"lm.{codec}", "lm_eval", p["model"], train, s.codebook_sizes, s.frame_rate, crop_s,
                              seconds, notes=f"protocol (i): {len(s.codebook_sizes)} codebook(s) at {s.frame_rate:g} Hz"))
    for codec in p["conditional"]:
        s = shapes[codec]
        acc, voc = list(s.streams["accompaniment"]), list(s.streams["vocal"])
        sizes = [s.codebook_sizes[k] for k in acc]
        cond = [s.codebook_sizes[k] for k in voc]
        prefix = int(round(float(p["prefix_seconds"]) * s.frame_rate))
        specs.append(_lm_spec(f"lm.{codec}.accompaniment_only", "lm_eval", p["model"], train, sizes, s.frame_rate,
                              crop_s, seconds, prefix=prefix, notes="protocol (ii) without the vocal condition"))
        specs.append(_lm_spec(f"lm.{codec}.given_vocals", "lm_eval", p["model"], train, sizes, s.frame_rate, crop_s,
                              seconds, cond_sizes=cond, prefix=prefix, notes="protocol (ii): vocal tokens as prefix"))
    return specs


def _probe_spec(name: str, stage: str, in_dim: int, n_tags: int, model: Mapping[str, Any],
                train: Mapping[str, Any], rate: float, notes: str = "") -> ModelSpec:
    cfg = ProbeConfig(in_dim=int(in_dim), n_tags=int(n_tags), **model)
    tc = ProbeTrainConfig(**{**train, "seeds": tuple(train["seeds"])})
    n_frames = window_frames(rate, tc.window_seconds)
    # train_probe: AdamW at the probe's lr / weight decay, no clipping, no autocast.
    return ModelSpec(name, stage, cfg, lambda: TaggingProbe(cfg), _probe_batch(cfg, n_frames), _fixed(probe_loss),
                     OptimSettings(tc.lr, weight_decay=tc.weight_decay), notes=notes)


def _probe_specs(params: Params, shapes: Mapping[str, CodecShape]) -> list[ModelSpec]:
    """``eval.probe_codecs.probe_codec``: one probe per codec on ``codec.embed`` (one model per seed)."""
    p = params.section("probe")
    return [_probe_spec(f"probe.{codec}", "probe", shapes[codec].embed_width, len(TAG_VOCABULARY), p["model"],
                        p["train"], shapes[codec].frame_rate, notes=f"{len(p['train']['seeds'])} seeds")
            for codec in p["codecs"]]


def _separation_specs(params: Params, seconds: float) -> list[ModelSpec]:
    s = params.section("separation")
    sr = int(params.section("audio")["sample_rate"])
    specs = []
    ou_cfg, ou_train, ou_data = openunmix_config(s["discriminative"], sample_rate=sr)

    def openunmix_prepare(model: nn.Module) -> None:   # train_openunmix fits the input statistics first
        model.fit_normalization([collate_stems([synthetic_crop(seconds, sr)])])

    specs.append(ModelSpec("separator.openunmix", "separator@openunmix", ou_cfg, lambda: OpenUnmix(ou_cfg),
                           _crop_batch(params, seconds, collate_stems), _fixed(openunmix_loss(ou_data["loss"])),
                           OptimSettings.from_train_config(ou_train), prepare=openunmix_prepare,
                           notes="one joint 4-stem mask model"))
    specs.append(_generative_spec("separator.generative", "separator@generative", params, seconds))
    for name in load_separation_variants(params):
        specs.append(_generative_spec(f"separator.variant.{name}", f"separator_variant@{name}",
                                      variant_params(params, name), seconds))
    return specs


def _generative_spec(name: str, stage: str, params: Params, seconds: float) -> ModelSpec:
    g = params.section("separation")["generative"]
    with _meta():
        codec = _rvq_codec(params)
    cfg = generative_config(g.get("model", {}), codec)
    check_codec_fits(cfg, codec)
    notes = f"encoder {cfg.encoder}, cross_track {cfg.cross_track}, K={cfg.n_codebooks}"
    if cfg.encoder == "frozen_ssl":
        # GenerativeSeparator.build copies the config of the stage-1 checkpoint at ssl_dir: this profile's.
        cfg = dataclasses.replace(cfg, ssl=pretrain_stage.build_config(params)[0])
        notes += "; the frozen BEST-RQ encoder is this profile's stage 1"
    train = TrainConfig.from_dict(g["train"])
    return ModelSpec(name, stage, cfg, lambda: GenerativeSeparator(cfg),
                     _generative_batch(cfg, codec.config.rvq.n_codebooks, seconds), _fixed(generative_loss),
                     OptimSettings.from_train_config(train), notes=notes)


def _separated_loss(stage2: Any) -> Callable[[], LossFn]:
    """The ``separated`` routing's loss: stage 3 fed by a frozen stage-2 separator (a model of its own,
    built with the loss so that it counts in the step's memory, as in the pipeline)."""
    return lambda: separated_stems_loss(MultiTaskModel(stage2))


def _ablation_specs(params: Params, seconds: float, by_name: dict[str, ModelSpec],
                    shapes: Mapping[str, CodecShape]) -> list[ModelSpec]:
    """``ablations.train.train_variant`` per variant (its own stage 2 or the reference's, then stage 3 with
    the routing's seam), and the networks ``ablations.evaluate.evaluate_variant`` trains on its tokens:
    the LM and probe (recorded as further uses of ``lm.duotok`` / ``probe.duotok`` when their config is
    the same) and the two leakage probes."""
    a = params.section("ablation")
    reference = str(a["reference"])
    variants = load_variants(params)
    specs: list[ModelSpec] = []
    lm_p = params.section("lm")
    # probe_settings reads params.yaml (the profile's file, as the evaluation does): once per block.
    probe_block, leak_block = probe_settings("probe", params.profile), probe_settings("leakage", params.profile)
    seeds = replica_seeds(params)
    for v in variants.values():
        if v.family == "reference":
            stage = "ablation_reference"
            replicas = [f"ablation_replica_reference@{seed}" for seed in seeds]
        elif v.uses_reference:
            stage = f"ablation_from_reference@{v.name}"
            replicas = [f"ablation_replica_from_reference@{seed}-{v.name}" for seed in seeds]
        else:
            stage = f"ablation@{v.name}"
            replicas = [f"ablation_replica@{seed}-{v.name}" for seed in seeds]
        first = len(specs)
        vp = params.with_overrides(overrides_for(v, params))
        if v.retrains_stage2:
            cfg, train_cfg, _ = finetune_stage.build_config(vp)
            specs.append(ModelSpec(f"ablation.{v.name}.finetune", stage, cfg, lambda cfg=cfg: MultiTaskModel(cfg),
                                   _crop_batch(vp, seconds, _multitask_collate(vp)),
                                   _fixed(finetune_stage.finetune_loss), OptimSettings.from_train_config(train_cfg),
                                   notes=v.description))
        hook: Callable[[DualTrackModel], DualTrackModel] | None = None
        make_loss: Callable[[], LossFn] | None = None
        if v.routing == "shared":
            hook = tie_codebooks
        elif v.routing == "separated":
            # the reference's stage 2 (ablations.train._reference_stage2 checks it has this config)
            make_loss = _separated_loss(finetune_stage.build_config(vp)[0])
        specs.append(_quantize_spec(f"ablation.{v.name}.quantize", stage, vp, seconds, hook=hook, make_loss=make_loss,
                                    notes=f"routing {v.routing}; {v.description}"))
        # evaluate_variant: the variant codec's LM, tagging probe and leakage probes.
        q_cfg = quantize_stage.build_config(vp)[0]
        sizes, width = tuple(q_cfg.codebook_sizes), q_cfg.encoder.dim
        same = sizes == shapes["duotok"].codebook_sizes and width == shapes["duotok"].stream_width
        if same:   # recorded as further uses of the main LM / probe (when those are listed too)
            for use in (stage, *replicas):
                if "lm.duotok" in by_name:
                    by_name["lm.duotok"].also.append(f"{use} (LM, {len(a['lm']['seeds'])} seeds)")
                if "probe.duotok" in by_name:
                    by_name["probe.duotok"].also.append(f"{use} (probe)")
        else:
            lm_train = TrainConfig.from_dict({**lm_p["train"], "steps": a["lm"]["steps"]})
            specs.append(_lm_spec(f"ablation.{v.name}.lm", stage, lm_p["model"], lm_train, sizes,
                                  shapes["duotok"].frame_rate, float(lm_p["crop_seconds"]), seconds))
            specs.append(_probe_spec(f"ablation.{v.name}.probe", stage, len(STEM_STREAMS) * width,
                                     len(TAG_VOCABULARY), *probe_block, shapes["duotok"].frame_rate))
        model, train = leak_block
        for attr, labels in ATTRIBUTE_LABELS.items():
            key = f"ablation.leakage.{attr}_attributes"
            if v.name == reference or key not in by_name:
                spec = _probe_spec(key, stage, width, len(labels), model, train, shapes["duotok"].frame_rate,
                                   notes=f"{len(labels)} {attr} labels from one stem stream (both streams)")
                specs.append(spec)
                by_name[key] = spec
            elif by_name[key].config.in_dim == width:
                by_name[key].also += [stage, *replicas]
            else:
                specs.append(_probe_spec(f"ablation.{v.name}.leakage.{attr}_attributes", stage, width, len(labels),
                                         model, train, shapes["duotok"].frame_rate))
        for spec in specs[first:]:   # ablations.train under each replica seed: the same configs again
            spec.also += replicas
    return specs


#: The inventory's families, in pipeline order: the first part of every model name, and the part of
#: :func:`model_specs` that lists them (so that one model's spec costs only its family's configs).
FAMILIES = ("duotok", "baseline", "lm", "probe", "separator", "ablation")
_DUOTOK_NAMES = ("pretrain", "finetune", "quantize", "autoencoder", "decoder")


def family_of(name: str) -> str:
    """The family of an inventory name (``"quantize.collapse_demo"`` → ``"duotok"``)."""
    head = name.split(".")[0]
    if head in _DUOTOK_NAMES:
        return "duotok"
    if head in FAMILIES:
        return head
    raise KeyError(f"{name!r} is not an inventory name (families: {FAMILIES})")


def model_specs(params_or_profile: Params | str | None = None, seconds: float = EXAMPLE_SECONDS,
                families: Sequence[str] | None = None) -> list[ModelSpec]:
    """Every network the pipeline trains under ``params_or_profile`` (a :class:`Params`, a profile name,
    or ``None`` for params.yaml's active profile), in pipeline order; ``families`` (of :data:`FAMILIES`)
    limits the list, and with it the work (the ``also`` records of one family may then miss uses
    that another family notes). Nothing is built yet."""
    params = as_params(params_or_profile)
    wanted = set(FAMILIES if families is None else families)
    if wanted - set(FAMILIES):
        raise KeyError(f"unknown families {sorted(wanted - set(FAMILIES))}; known: {FAMILIES}")
    shapes = codec_shapes(params) if wanted - {"duotok", "separator"} else {}
    specs: list[ModelSpec] = []
    if "duotok" in wanted:
        specs += _duotok_specs(params, seconds)
    if "baseline" in wanted:
        specs += _baseline_specs(params, seconds, shapes)
    if "lm" in wanted:
        specs += _lm_specs(params, seconds, shapes)
    if "probe" in wanted:
        specs += _probe_specs(params, shapes)
    if "separator" in wanted:
        specs += _separation_specs(params, seconds)
    by_name = {s.name: s for s in specs}
    if "ablation" in wanted:
        specs += _ablation_specs(params, seconds, by_name, shapes)
    for seed in replica_seeds(params):   # train.replica: the same configs under another training seed
        for name, spec in by_name.items():
            if name in ("pretrain", "finetune", "quantize"):
                spec.also.append(f"replica_duotok@{seed}")
            elif name == "baseline.rvq" or name.endswith(".codebooks"):
                spec.also.append(f"replica_baselines@{seed}")
            elif name in {f"lm.{c}" for c in params.section("lm")["codecs"]}:
                spec.also.append(f"lm_eval (training seed {seed})")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise RuntimeError(f"duplicate model names in the inventory: {sorted(n for n in names if names.count(n) > 1)}")
    return specs


# --------------------------------------------------------------------------- building


def build_entry(spec: ModelSpec, device: str | torch.device | None = None) -> ModelEntry:
    """Build one spec on ``device`` (default CPU; ``"meta"``: shapes only, no ``prepare``). A function of
    its own so that the generator below never holds a model in its frame while the caller works on the
    next one: only one big model is alive at a time."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    with torch.device(device):
        model = spec.build()
        loss_fn = spec.make_loss()
    if device.type != "meta":
        spec.prepare(model)
    return ModelEntry(spec.name, model, spec.example_batch_fn, loss_fn, spec)


def build_profile_models(params_or_profile: Params | str | None = None, names: Sequence[str] | None = None,
                         device: str | torch.device | None = None,
                         seconds: float = EXAMPLE_SECONDS) -> Iterator[ModelEntry]:
    """Build the profile's models one at a time and yield each as ``(name, model, example_batch_fn,
    loss_fn)`` (a :class:`ModelEntry`; ``entry.spec`` has the stage, config and optimiser settings).

    ``names`` restricts (and orders) the models; ``device="meta"`` builds shapes only — every paper
    model in well under a second, for counting. Drop each entry before asking for the next: a paper
    model holds gigabytes."""
    families = None if names is None else sorted({family_of(n) for n in names}, key=FAMILIES.index)
    specs = model_specs(params_or_profile, seconds, families)
    if names is not None:
        index = {s.name: s for s in specs}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise KeyError(f"unknown model(s) {unknown}; known: {sorted(index)}")
        specs = [index[n] for n in names]
    for spec in specs:
        yield build_entry(spec, device)


def build_model(name: str, params_or_profile: Params | str | None = None, device: str | torch.device | None = None,
                seconds: float = EXAMPLE_SECONDS) -> ModelEntry:
    """The one model ``name`` of the profile, built (see :func:`build_profile_models`)."""
    return next(build_profile_models(params_or_profile, [name], device, seconds))
