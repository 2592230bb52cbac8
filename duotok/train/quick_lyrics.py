"""The lyrics-learnability check of the quick path: can a small reader that is *not* Duo-Tok's encoder
learn this corpus's sung lyrics from the audio in a few hundred steps?

    python -m duotok.train.quick_lyrics --name vocals --source vocals --steps 600
    python -m duotok.train.quick_lyrics --name mixture --source mixture --steps 600
    python -m duotok.train.quick_lyrics --name enc --body encoder -S warmup_steps=60 -S min_lr_ratio=0.1
    python -m duotok.train.quick_lyrics --name frozen --body encoder --head-context 192 --freeze-encoder-steps 600
    python -m duotok.train.quick_lyrics --name bneck --body encoder --head-context 192 --bottleneck 64
    python -m duotok.train.quick_lyrics --name frozen_pair --body encoder --head-context 192 --bottleneck 64 \
        --bottleneck-init orthogonal --lr-multiplier encoder=0.1 --lr-multiplier proj_in=0 --lr-multiplier proj_out=0
    python -m duotok.train.quick_lyrics --name pair_joins --body encoder --head-context 192 --bottleneck 64 \
        --lr-multiplier encoder=0.1 --hold proj_in=300 --hold proj_out=300
    python -m duotok.train.quick_lyrics --name s1 --body encoder --normalization corpus --init-encoder models/pretrain/model

Why: at the ``default`` budget the stage-2 lyrics head emits only blanks (README, stage 2), from a
pretrained encoder and from an untrained one alike (``reports/experiments/quick_log.md``). This reader has
the same targets, the same characters, the same loss and the same token rate, but its own short path from
the audio, so it separates "the lyrics cannot be read from this audio in so few steps" from "Duo-Tok's
encoder path does not learn to read them in so few steps":

    log-mel (the ``audio`` section) → standardised per crop and mel channel → ``factor`` frames stacked
    (100 → 25 Hz) → linear → 2-layer bidirectional GRU → linear CTC layer over :class:`CharVocab`

``--body encoder`` swaps the stacked frames and the GRU for Duo-Tok's own encoder, untrained, under stage 2's
lyrics head (see :class:`LyricsReader`), which separates the encoder's architecture from stage 2's recipe;
``--head-context N`` gives that head its BiGRU, ``--bottleneck N`` puts stage 2's bottleneck (``proj_in`` to N
dimensions, ``proj_out`` back; no noise, no normalisation) between the lower and the upper stack,
``--normalization corpus`` standardises the log-mel with per-channel statistics of the training crops (stage
1's and stage 2's input) instead of each crop's own, ``--init-encoder DIR`` starts the encoder from a stage-1
checkpoint (its weights and, with ``corpus``, its statistics), and ``--freeze-encoder-steps N`` trains only
the head for the first N steps (encoder and bottleneck run without gradients; all of them when N >=
``--steps``: can the encoder's untrained features be read at all?).

``--source vocals`` reads the clean vocal stems, ``mixture`` the mixtures that the lyrics head reads.
Targets: :class:`duotok.data.targets.MultiTaskCollate` (stage 2's collate); loss:
:func:`duotok.models.heads.ctc_loss`; score: greedy CTC decoding and the corpus CER
(:func:`duotok.text.character_error_rate`) on one crop per held-out song of ``--eval-split`` (``valid``
by default: choices are made there). Training is :class:`duotok.train.loop.Trainer`'s (so a rerun of the same
``--name`` resumes exactly), with this reader's optimiser by default — Adam at a constant ``--lr``, gradient
norm clipped at 5 (:data:`READER_TRAIN`) — and any :class:`TrainConfig` field set with ``-S KEY=VALUE``
(``-S warmup_steps=60 -S min_lr_ratio=0.1`` for stage 2's warm-up and cosine decay); ``--lr-multiplier
PREFIX=X`` trains the parameters under a name prefix at X times the learning rate
(:mod:`duotok.train.param_groups`), ``--hold PREFIX=N`` keeps them out of training for the first N steps
(the gradient still flows through them), and ``--bottleneck-init orthogonal`` starts the bottleneck pair as an
orthogonal projection. It is a diagnostic, not a pipeline stage: it writes only under ``--out``
(``<out>/<name>/`` holds the Trainer's ``train_log.csv``, ``valid_log.csv`` — the held-out CTC loss — and
checkpoints, and ``health.json`` with the CER and the collapse signs of :func:`posterior_health`;
``<out>/log.csv`` gets a row).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from duotok.audio.features import LogMel
from duotok.config import PROFILES
from duotok.data import StemCropDataset
from duotok.data.stems import SOURCES, load_meta
from duotok.data.targets import MultiTaskCollate
from duotok.io import write_json_atomic
from duotok.io.checkpoint import PretrainedMixin
from duotok.models.bestrq import BestRQModel, MelConfig
from duotok.models.encoder import DuoEncoder, EncoderConfig
from duotok.models.heads import LyricsHead, ctc_loss
from duotok.models.multitask import BOTTLENECK_INITS, orthogonal_bottleneck_
from duotok.text import CharVocab, character_error_rate
from duotok.train.finetune import build_config as build_finetune_config
from duotok.train.loop import TrainConfig, Trainer
from duotok.train.pretrain import fit_normalization
from duotok.train.quick import EVAL_SPLITS, append_log, last_logged, parse_override, prepare_run

SOURCE_NAMES = ("mixture", "vocals")
BODIES = ("gru", "encoder")
NORMALIZATIONS = ("crop", "corpus")

#: The reader's own optimiser (the one its first measurements used): Adam (AdamW without weight decay,
#: betas (0.9, 0.999)) at a constant learning rate, no warm-up, gradient norm clipped at 5.
READER_TRAIN: dict[str, Any] = {"batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999),
                                "warmup_steps": 0, "min_lr_ratio": 1.0, "grad_clip": 5.0, "log_every": 25,
                                "save_every": 100, "precision": "auto"}


@dataclass
class LyricsReaderConfig:
    #: What readers saved before a field existed were built with (see ``config_from_dict``).
    LEGACY_VALUES: ClassVar[dict[str, object]] = {"head_context": 0, "bottleneck": 0, "normalization": "crop",
                                                  "bottleneck_init": "default"}

    mel: MelConfig = field(default_factory=MelConfig)
    vocab_size: int = len(CharVocab())
    factor: int = 4                 # mel frames per output frame: 100 → 25 Hz, the token rate
    hidden: int = 192               # GRU units per direction (body "gru")
    layers: int = 2                 # GRU layers (body "gru")
    body: str = "gru"               # gru | encoder
    head_context: int = 0           # body "encoder": the lyrics head's BiGRU units per direction (0 = linear)
    bottleneck: int = 0             # body "encoder": stage 2's proj_in/proj_out width between the stacks (0 = none)
    bottleneck_init: str = "default"  # default: nn.Linear's (stage 2's) | orthogonal: proj_out = proj_inᵀ, no bias
    normalization: str = "crop"     # crop: each crop's own statistics | corpus (body "encoder"): the corpus's
    encoder: EncoderConfig = field(default_factory=EncoderConfig)   # body "encoder" (n_mels, downsample must match)


class LyricsReader(nn.Module, PretrainedMixin):
    """Audio ``(B, samples)`` → CTC log-probabilities ``(B, T25, vocab_size)`` and each crop's valid frames.

    ``body="gru"``: ``factor`` frames stacked (100 → 25 Hz) → linear → BiGRU → linear.
    ``body="encoder"``: Duo-Tok's own encoder (:class:`DuoEncoder`, ×4 convolutional downsampling, the
    lower and upper Transformer stacks of ``encoder``, untrained) → stage 2's :class:`LyricsHead` (linear,
    the paper's, or with ``head_context`` BiGRU units first: ``finetune.model.lyrics_context``), i.e. the
    lyrics path of stage 2 minus the bottleneck, the noise and the other heads, trained with this reader's
    optimiser. It separates "a Transformer path does not learn to read in so few steps" from
    "stage 2's recipe keeps it from reading". ``bottleneck`` = N > 0 adds stage 2's bottleneck back —
    ``proj_in`` (dim → N) after the lower stack and ``proj_out`` (N → dim) before the upper one, with the
    parameter names of :class:`duotok.models.multitask.MultiTaskModel`, so a ``lr_multipliers`` prefix means the
    same in both — and nothing else of stage 2. ``normalization="corpus"`` standardises the log-mel with the
    encoder's own per-channel statistics (:meth:`DuoEncoder.normalize`, fitted on the corpus by
    :func:`fit_corpus_normalization` or loaded from stage 1), as stages 1 and 2 do, instead of each crop's."""

    config_class = LyricsReaderConfig

    def __init__(self, config: LyricsReaderConfig | None = None):
        super().__init__()
        config = config or LyricsReaderConfig()
        if config.factor < 1 or config.hidden < 1 or config.layers < 1:
            raise ValueError(f"factor, hidden and layers must be >= 1, got {config.factor}, {config.hidden}, "
                             f"{config.layers}")
        if config.body not in BODIES:
            raise ValueError(f"body must be one of {BODIES}, got {config.body!r}")
        if config.normalization not in NORMALIZATIONS or (config.normalization == "corpus" and config.body != "encoder"):
            raise ValueError(f"normalization must be one of {NORMALIZATIONS} ('corpus' needs body 'encoder'), got "
                             f"{config.normalization!r} with body {config.body!r}")
        if config.bottleneck < 0 or (config.bottleneck and config.body != "encoder"):
            raise ValueError(f"bottleneck must be >= 0 and needs body 'encoder', got {config.bottleneck} "
                             f"with body {config.body!r}")
        if config.bottleneck_init not in BOTTLENECK_INITS or (config.bottleneck_init != "default"
                                                                 and not config.bottleneck):
            raise ValueError(f"bottleneck_init must be one of {BOTTLENECK_INITS} ('orthogonal' needs a bottleneck), "
                             f"got {config.bottleneck_init!r} with bottleneck {config.bottleneck}")
        self.config = config
        self.factor, self.body = config.factor, config.body
        n_mels = config.mel.n_mels
        self.logmel = LogMel(**vars(config.mel))
        if config.body == "gru":
            self.inp = nn.Linear(n_mels * config.factor, config.hidden)
            self.gru = nn.GRU(config.hidden, config.hidden, num_layers=config.layers, batch_first=True,
                              bidirectional=True)
            self.out = nn.Linear(2 * config.hidden, config.vocab_size)
        else:
            if config.encoder.n_mels != n_mels or config.encoder.downsample != config.factor:
                raise ValueError(f"encoder config {config.encoder} does not match n_mels={n_mels}, "
                                 f"factor={config.factor}")
            self.encoder = DuoEncoder(config.encoder)
            if config.bottleneck:
                self.proj_in = nn.Linear(config.encoder.dim, config.bottleneck)
                self.proj_out = nn.Linear(config.bottleneck, config.encoder.dim)
                if config.bottleneck_init == "orthogonal":
                    orthogonal_bottleneck_(self.proj_in, self.proj_out)
            self.head = LyricsHead(config.encoder.dim, config.vocab_size, context=config.head_context)

    def frames(self, mel_frames: torch.Tensor) -> torch.Tensor:
        """Valid output frames for ``mel_frames`` valid log-mel frames: whole stacks for the GRU, the
        encoder's ``ceil(F / factor)`` tokens otherwise."""
        if self.body == "gru":
            return torch.div(mel_frames, self.factor, rounding_mode="floor")
        return torch.div(mel_frames + self.factor - 1, self.factor, rounding_mode="floor")

    def read_mel(self, logmel: torch.Tensor, valid: torch.Tensor | None = None,
                 encoder_grad: bool = True, streams: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Log-mel ``(B, n_mels, F)`` → log-probabilities. ``valid``: each crop's valid mel frames. The
        padded tail of a short song is left out of the standardisation and zeroed after it, so valid
        outputs never depend on what the padding holds. ``encoder_grad=False`` runs the encoder without
        gradients: its weights get none, so the optimiser leaves them exactly as they are. ``streams`` (body
        ``encoder``), when given, receives the encoder's intermediate streams (:meth:`encode`)."""
        b, m, f = logmel.shape
        logmel = logmel.float()
        mask = (torch.ones(b, f, dtype=torch.bool, device=logmel.device) if valid is None
                else torch.arange(f, device=logmel.device)[None, :] < valid.to(logmel.device)[:, None])
        w = mask[:, None, :].to(logmel.dtype)
        if self.config.normalization == "corpus":        # stages 1 and 2: the corpus's per-channel statistics
            x = self.encoder.normalize(logmel) * w
        else:   # standardised per crop and channel: no corpus statistics to fit, and loudness does not matter
            n = w.sum(dim=-1, keepdim=True).clamp_min(2.0)
            mean = (logmel * w).sum(dim=-1, keepdim=True) / n
            std = (((logmel - mean) * w).square().sum(dim=-1, keepdim=True) / (n - 1)).sqrt()
            x = (logmel - mean) / std.clamp_min(1e-3) * w
        if self.body == "encoder":
            with torch.set_grad_enabled(encoder_grad and torch.is_grad_enabled()):
                features = self.encode(x, mask, streams)
            return self.head(features)
        t = f // self.factor
        x = x[..., : t * self.factor].reshape(b, m, t, self.factor).permute(0, 2, 1, 3).reshape(b, t, m * self.factor)
        with torch.autocast(device_type=x.device.type, enabled=False):   # no bf16 GRU kernels on CPU
            x, _ = self.gru(self.inp(x))
            return self.out(x).log_softmax(dim=-1)

    def encode(self, x: torch.Tensor, mask: torch.Tensor,
               streams: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Standardised log-mel ``(B, n_mels, F)`` → the encoder's features ``(B, T25, dim)``, through the
        bottleneck when there is one (the same computation as :meth:`DuoEncoder.forward` when there is not).
        ``streams``, when given, receives ``lower`` (the lower stack's output), ``pair`` (after the
        bottleneck pair, if any), ``upper`` (the features) and ``mask`` (their valid frames)."""
        token_mask = self.encoder.downsample_mask(mask)
        h = self.encoder.forward_lower(self.encoder.embed(x, mask, normalized=True), token_mask)
        z = self.proj_out(self.proj_in(h)) if self.config.bottleneck else h
        out = self.encoder.forward_upper(z, token_mask)
        if streams is not None:
            streams.update({"lower": h, "upper": out, "mask": token_mask})
            if self.config.bottleneck:
                streams["pair"] = z
        return out

    def forward(self, audio: torch.Tensor, length: torch.Tensor, encoder_grad: bool = True,
                streams: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log-probabilities, valid output frames)`` of ``(B, samples)`` audio of ``length`` samples each
        (``streams``: see :meth:`encode`)."""
        mel = self.logmel(audio)
        hop = self.logmel.hop_length
        valid = (torch.as_tensor(length, device=mel.device).long() // hop + 1).clamp(max=mel.shape[-1])
        return self.read_mel(mel, valid, encoder_grad, streams), self.frames(valid)


def _audio(batch: dict[str, Any], source: str) -> torch.Tensor:
    if source == "mixture":
        return batch["mixture"]
    return batch["stems"][:, SOURCES.index("vocals")]


def _sung(record: Any) -> bool:
    """Whether a song's ``meta.json`` has syllable timings (the lyrics targets are cut from them)."""
    lyrics = load_meta(record).get("lyrics")
    return isinstance(lyrics, dict) and bool(lyrics.get("syllables"))


def reader_loss(model: nn.Module, batch: dict[str, Any], source: str = "mixture",
                encoder_grad: Callable[[], bool] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """CTC per character over the batch's sung crops (:func:`ctc_loss`, the lyrics head's loss). A batch
    without any sung crop gives a zero loss that still touches every parameter, so DDP stays in step.
    ``encoder_grad()`` says at each call whether the encoder (body ``encoder``) trains in this step."""
    grad = True if encoder_grad is None else encoder_grad()
    log_probs, frames = model(_audio(batch, source), batch["length"], grad)
    keep = batch["has_lyrics"].to(torch.bool)
    if not bool(keep.any()):
        return log_probs.sum() * 0.0, {"sung": 0.0}
    loss = ctc_loss(log_probs[keep], frames[keep], batch["lyrics"][keep], batch["lyrics_lengths"][keep])
    return loss, {"sung": float(keep.float().mean())}


@torch.no_grad()
def evaluate_cer(reader: LyricsReader, data: StemCropDataset, collate: MultiTaskCollate,
                 source: str) -> dict[str, float]:
    """Greedy CTC on every held-out crop with sung text: corpus CER, the number of crops scored, two signs
    of a collapsed reader (:func:`posterior_health`) over those crops' valid frames, and (body ``encoder``)
    the :func:`varying_share` of the encoder's streams over every held-out crop's valid frames
    (``lower_varying``, ``pair_varying`` with a bottleneck, ``upper_varying``)."""
    was_training = reader.training
    reader.eval()
    refs: list[str] = []
    hyps: list[str] = []
    blank: list[float] = []
    spread: list[float] = []
    frames_of: dict[str, list[torch.Tensor]] = {}
    for batch in DataLoader(data, batch_size=8, shuffle=False, collate_fn=collate):
        streams: dict[str, torch.Tensor] = {}
        log_probs, frames = reader(_audio(batch, source), batch["length"], streams=streams)
        if streams:
            mask = streams.pop("mask")
            for name, x in streams.items():
                frames_of.setdefault(name, []).append(x[mask])
        for i, text in enumerate(batch["lyrics_text"]):
            ref = collate.vocab.normalize(text)
            if bool(batch["has_lyrics"][i]) and ref:
                refs.append(ref)
                hyps += collate.vocab.greedy_ctc_decode(log_probs[i: i + 1], frames[i: i + 1])
                health = posterior_health(log_probs[i, : int(frames[i])], collate.vocab.blank)
                blank.append(health["blank_mass"])
                spread.append(health["time_std"])
    reader.train(was_training)
    if not refs:
        raise ValueError("no held-out crop has sung text: nothing to score")
    shares = {f"{name}_varying": varying_share(torch.cat(x)) for name, x in frames_of.items()}
    return {"cer": character_error_rate(refs, hyps), "crops": float(len(refs)),
            "blank_mass": sum(blank) / len(blank), "time_std": sum(spread) / len(spread), **shares}


def varying_share(frames: torch.Tensor) -> float:
    """The share of a feature stream's energy that varies from frame to frame: ``Σ_d Var_d / Σ_d E[x_d²]``
    over ``frames`` ``(N, D)`` (every valid frame of every crop, pooled). 1 for a stream with zero mean, 0
    for one that is the same vector at every frame. Why: the posteriors' ``time_std`` says *that* a reader
    stopped listening; this says where its encoder did. The stacks end in a LayerNorm, so each frame's
    energy is fixed; what a collapsing encoder can change is how much of it goes into one vector that all
    frames share."""
    if frames.dim() != 2 or frames.shape[0] < 2:
        raise ValueError(f"varying_share needs (N >= 2, D) frames, got {tuple(frames.shape)}")
    x = frames.double()
    energy = x.square().mean(dim=0).sum()
    if energy == 0:
        raise ValueError("varying_share of an all-zero stream is undefined")
    return float(x.var(dim=0, unbiased=False).sum() / energy)


def posterior_health(log_probs: torch.Tensor, blank: int) -> dict[str, float]:
    """Two numbers that tell a reader that listens from one that has collapsed to a fixed output, for one
    crop's valid frames ``(T, vocab)`` of CTC log-probabilities: ``blank_mass``, the mean probability of the
    blank, and ``time_std``, the standard deviation over time of each symbol's probability, averaged over the
    vocabulary. An input-independent output has ``time_std`` 0 whatever its blank mass (a healthy reader's
    posteriors spike on its characters)."""
    if log_probs.dim() != 2 or log_probs.shape[0] < 2:
        raise ValueError(f"posterior_health needs (T >= 2, vocab) log-probabilities, got {tuple(log_probs.shape)}")
    probs = log_probs.float().exp()
    return {"blank_mass": float(probs[:, blank].mean()), "time_std": float(probs.std(dim=0).mean())}


def train_config(steps: int, lr: float, batch_size: int, seed: int, overrides: list[str] | tuple[str, ...] = (),
                 log_every: int = 25, lr_multipliers: dict[str, float] | None = None,
                 holds: dict[str, int] | None = None) -> TrainConfig:
    """:data:`READER_TRAIN` with ``steps``, ``lr``, ``batch_size``, ``seed``, ``lr_multipliers``, ``holds`` and
    ``KEY=VALUE`` overrides of any :class:`TrainConfig` field (validated there: an unknown key is refused)."""
    values: dict[str, Any] = {**READER_TRAIN, "steps": steps, "lr": lr, "batch_size": batch_size, "seed": seed,
                              "log_every": log_every, "eval_every": min(100, steps), "save_every": min(100, steps),
                              "lr_multipliers": dict(lr_multipliers or {}), "holds": dict(holds or {})}
    for text in overrides:
        values.update(parse_override(f"train.{text}")["train"])
    return TrainConfig.from_dict(values)


def run(name: str, out_dir: Path, data_dir: Path, *, source: str = "mixture", profile: str = "default",
        steps: int = 600, batch_size: int = 8, lr: float = 1e-3, hidden: int = 192, body: str = "gru",
        head_context: int = 0, bottleneck: int = 0, bottleneck_init: str = "default", normalization: str = "crop",
        init_encoder: str | Path | None = None, lr_multipliers: dict[str, float] | None = None,
        holds: dict[str, int] | None = None, freeze_encoder_steps: int = 0, train_songs: int = 32,
        eval_songs: int = 8, segment_seconds: float = 10.0, eval_split: str = "valid", seed: int = 0, log_every: int = 25,
        train: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Train the reader for ``steps`` steps (resuming ``<out_dir>/<name>`` if it holds a run) and return its
    log row (also written to ``<out_dir>/log.csv``). ``train``: ``KEY=VALUE`` overrides of the optimiser.
    ``freeze_encoder_steps`` (body ``encoder``): for the first that many steps only the lyrics head trains, on
    the encoder's untrained features (``>= steps``: throughout — can what they hold at the start be read at
    all?), then the encoder joins (the classifier-first schedule of wav2vec 2.0's CTC fine-tuning).
    ``lr_multipliers``: parameter-name prefix → multiplier of ``lr`` (:mod:`duotok.train.param_groups`), e.g.
    ``{"encoder": 0.1}``; ``holds``: parameter-name prefix → the step from which those parameters train
    (:func:`duotok.train.param_groups.hold_parameters`; the gradient still flows through them before it), e.g.
    ``{"proj_in": 300, "proj_out": 300}``; a resumed run must use the same multipliers and holds."""
    if source not in SOURCE_NAMES:
        raise ValueError(f"source must be one of {SOURCE_NAMES}, got {source!r}")
    if eval_split not in EVAL_SPLITS:
        raise ValueError(f"eval_split must be one of {EVAL_SPLITS}, got {eval_split!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if bottleneck and body != "encoder":
        raise ValueError("bottleneck needs body 'encoder'")
    if bottleneck < 0:
        raise ValueError(f"bottleneck must be >= 0, got {bottleneck}")
    if freeze_encoder_steps and body != "encoder":
        raise ValueError("freeze_encoder_steps needs body 'encoder'")
    if (normalization == "corpus" or init_encoder) and body != "encoder":
        raise ValueError("normalization 'corpus' and init_encoder need body 'encoder'")
    if freeze_encoder_steps < 0:
        raise ValueError(f"freeze_encoder_steps must be >= 0, got {freeze_encoder_steps}")
    multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}
    held = {str(k): int(v) for k, v in (holds or {}).items()}
    cfg = train_config(steps, lr, batch_size, seed, train, log_every, multipliers, held)
    params, run_dir, corpus = prepare_run(name, [], out_dir, data_dir, profile, train_songs, eval_songs)
    stage2 = build_finetune_config(params)[0]     # stage 2's mel front end and encoder sizes (stage 1's)
    config = LyricsReaderConfig(mel=stage2.mel, vocab_size=stage2.vocab_size, factor=stage2.encoder.downsample,
                                hidden=hidden, layers=2, body=body, head_context=head_context,
                                bottleneck=bottleneck, bottleneck_init=bottleneck_init, normalization=normalization,
                                encoder=stage2.encoder)
    torch.manual_seed(seed)
    reader = LyricsReader(config)
    collate = MultiTaskCollate(CharVocab(), config.mel.sample_rate, config.mel.hop_length)
    sr = config.mel.sample_rate
    train_data = StemCropDataset(corpus, "train", segment_seconds, sr, crops_per_song=4, seed=seed)
    held_out = StemCropDataset(corpus, eval_split, segment_seconds, sr, crops_per_song=1, seed=0, random=False)
    if not any(_sung(record) for record in train_data.records):
        raise ValueError(f"{corpus}: no training song has sung text (syllable timings): nothing to learn")
    if init_encoder:
        load_stage1_encoder(reader, Path(init_encoder))
    elif normalization == "corpus":          # (a resumed run then restores the same statistics from its checkpoint)
        fit_corpus_normalization(reader, train_data, int(params.section("pretrain")["data"]["normalization_items"]))
    trainer: Trainer | None = None

    def encoder_grad() -> bool:               # read at every step: a resumed run is gated by its restored step
        return trainer is None or trainer.step >= freeze_encoder_steps

    trainer = Trainer(reader, partial(reader_loss, source=source, encoder_grad=encoder_grad), train_data, cfg,
                      run_dir, valid_data=held_out, collate_fn=collate)
    result = trainer.fit()
    scores = evaluate_cer(trainer.model, held_out, collate, source)
    row = {"name": name, "source": source, "body": body, "head_context": head_context, "bottleneck": bottleneck,
           "bottleneck_init": bottleneck_init, "lr_multipliers": json.dumps(multipliers, sort_keys=True),
           "holds": json.dumps(held, sort_keys=True),
           "normalization": normalization, "init_encoder": str(init_encoder or ""),
           "freeze_encoder_steps": freeze_encoder_steps, "steps": steps,
           "lr": cfg.lr, "warmup": cfg.warmup_steps, "min_lr_ratio": cfg.min_lr_ratio, "grad_clip": cfg.grad_clip,
           "weight_decay": cfg.weight_decay,
           "hidden": hidden, "train_songs": train_songs, "eval_songs": eval_songs, "eval_split": eval_split,
           "train_seconds": result.seconds, "resumed_from": result.resumed_from,
           "final_ctc": last_logged(run_dir / "train_log.csv"), "valid_ctc": last_logged(run_dir / "valid_log.csv"),
           "cer": scores["cer"], "crops": scores["crops"], "blank_mass": scores["blank_mass"],
           "time_std": scores["time_std"], "lower_varying": scores.get("lower_varying"),
           "pair_varying": scores.get("pair_varying"), "upper_varying": scores.get("upper_varying"),
           "precision": result.precision.get("used")}
    write_json_atomic(run_dir / "health.json", row)
    append_log(Path(out_dir) / "log.csv", row)
    return row


def fit_corpus_normalization(reader: LyricsReader, data: StemCropDataset, max_items: int) -> None:
    """The encoder's per-channel log-mel statistics over the first ``max_items`` training crops, for
    ``normalization="corpus"``: stage 1's own :func:`duotok.train.pretrain.fit_normalization`, which reads
    only the model's ``logmel`` and ``encoder`` (the reader has both, with stage 1's mel front end)."""
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    fit_normalization(reader, data, max_items)


def load_stage1_encoder(reader: LyricsReader, path: Path) -> None:
    """Start the reader's encoder from a stage-1 (BEST-RQ) checkpoint — weights and corpus statistics, as
    stage 2 does (:meth:`MultiTaskModel.from_pretrain`); refused when its encoder or mel front end differs."""
    pretrained = BestRQModel.from_pretrained(path)
    if pretrained.config.encoder != reader.config.encoder or pretrained.config.mel != reader.config.mel:
        raise ValueError(f"{path}: its encoder/mel config differs from the reader's: {pretrained.config.encoder} "
                         f"vs {reader.config.encoder}")
    reader.encoder.load_state_dict(pretrained.encoder.state_dict())


def parse_prefixed(items: list[str], option: str, kind: type[float] | type[int]) -> dict[str, Any]:
    """``["encoder=0.1", "proj_in=0"]`` → ``{"encoder": 0.1, "proj_in": 0.0}`` (``kind`` float; int for
    step counts); a malformed or repeated item is refused, naming ``option``."""
    out: dict[str, Any] = {}
    for item in items:
        prefix, sep, text = item.partition("=")
        try:
            value = kind(text)
        except ValueError:
            value = None
        if not sep or not prefix or value is None:
            raise ValueError(f"{option} takes PREFIX={'NUMBER' if kind is float else 'STEPS'}, got {item!r}")
        if prefix in out:
            raise ValueError(f"{option} names {prefix!r} twice")
        out[prefix] = value
    return out


def parse_multipliers(items: list[str]) -> dict[str, float]:
    """``--lr-multiplier`` items → ``{prefix: multiplier}``."""
    return parse_prefixed(items, "--lr-multiplier", float)


def parse_holds(items: list[str]) -> dict[str, int]:
    """``--hold`` items → ``{prefix: steps}``."""
    return parse_prefixed(items, "--hold", int)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duotok.train.quick_lyrics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the experiment's folder and log name (a rerun resumes it)")
    parser.add_argument("--source", choices=SOURCE_NAMES, default="mixture")
    parser.add_argument("--body", choices=BODIES, default="gru",
                        help="gru: the stacked-mel BiGRU reader; "
                             "encoder: Duo-Tok's untrained encoder + stage 2's lyrics head")
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=192, help="GRU units per direction (body gru)")
    parser.add_argument("--head-context", type=int, default=0,
                        help="body encoder: the lyrics head's BiGRU units per direction (0: linear, the paper's)")
    parser.add_argument("--bottleneck", type=int, default=0, metavar="N",
                        help="body encoder: stage 2's proj_in/proj_out of width N between the two stacks (0: none)")
    parser.add_argument("--bottleneck-init", choices=BOTTLENECK_INITS, default="default",
                        help="default: nn.Linear's (stage 2's); orthogonal: proj_out(proj_in(h)) projects h onto a "
                             "random N-d subspace (the identity when N = the encoder's width)")
    parser.add_argument("--lr-multiplier", action="append", default=[], metavar="PREFIX=X",
                        help="train parameters whose name starts with PREFIX at X times the learning rate "
                             "(e.g. encoder=0.1; repeatable)")
    parser.add_argument("--hold", action="append", default=[], metavar="PREFIX=STEPS",
                        help="keep parameters whose name starts with PREFIX out of training for the first STEPS "
                             "steps; the gradient still flows through them (e.g. proj_in=300; repeatable)")
    parser.add_argument("--normalization", choices=NORMALIZATIONS, default="crop",
                        help="body encoder: standardise the log-mel per crop (the reader's) or with the corpus's "
                             "per-channel statistics (stages 1 and 2)")
    parser.add_argument("--init-encoder", metavar="DIR",
                        help="body encoder: start from this stage-1 checkpoint's encoder (and its statistics)")
    parser.add_argument("--freeze-encoder-steps", type=int, default=0, metavar="N",
                        help="body encoder: train only the lyrics head for the first N steps (>= --steps: throughout)")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a training setting (duotok.train.loop.TrainConfig), e.g. warmup_steps=60")
    parser.add_argument("--train-songs", type=int, default=32)
    parser.add_argument("--eval-songs", type=int, default=8)
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--out", default="runs/quick_lyrics", help="where runs and log.csv go (git-ignored)")
    parser.add_argument("--eval-split", choices=EVAL_SPLITS, default="valid")
    args = parser.parse_args(argv)
    row = run(args.name, Path(args.out), Path(args.data_dir), source=args.source, profile=args.profile,
              steps=args.steps, batch_size=args.batch_size, lr=args.lr, hidden=args.hidden, body=args.body,
              head_context=args.head_context, bottleneck=args.bottleneck, bottleneck_init=args.bottleneck_init,
              lr_multipliers=parse_multipliers(args.lr_multiplier), holds=parse_holds(args.hold),
              normalization=args.normalization,
              init_encoder=args.init_encoder, freeze_encoder_steps=args.freeze_encoder_steps,
              train_songs=args.train_songs, eval_songs=args.eval_songs, segment_seconds=args.segment_seconds,
              eval_split=args.eval_split, seed=args.seed, train=args.set)
    print(f"[{row['name']}] {row['source']}, {row['body']}, {row['steps']} steps, {row['train_seconds']:.0f} s: "
          f"final CTC {row['final_ctc']}, held-out CTC {row['valid_ctc']}, CER {row['cer']:.3f} on "
          f"{row['crops']:.0f} {row['eval_split']} crops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
