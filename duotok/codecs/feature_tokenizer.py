"""Semantic-token baselines: a frozen encoder's features, quantized per stream by a codebook fitted
to those features (no upstream training, no heads).

Three rows of Table 2 are this one model with different settings (``params.yaml: baselines``):

=================  ==========================  ======================  ==============  ===========
row                frozen features from         streams                 layer           quantizer
=================  ==========================  ======================  ==============  ===========
single codebook    stage 2 (noise + 4 heads)    mixture                 bottleneck      SimVQ
MuCodec-LeVo-ish   stage 1 (BEST-RQ only)       vocal, accompaniment    upper / lower   SimVQ
k-means (HuBERT)   stage 1 (BEST-RQ only)       mixture                 lower           k-means
=================  ==========================  ======================  ==============  ===========

Each differs from Duo-Tok in exactly the components the paper credits: the single-codebook row
keeps stages 1–2 but drops the dual-track routing (and stage 3's joint training of codebooks, upper
encoder and heads); the MuCodec row keeps the per-stem codebooks but drops stage 2 (vocal features
from the deeper layer, accompaniment from the lower one, as MuCodec-LeVo does); the k-means row is the
classic SSL-token recipe. The codebooks are fitted to *fixed*, per-dimension standardised features,
so the objective cannot shrink the features to cheat the VQ loss (why there is no learned input
projection here).

A stem stream's input is that stem. :meth:`FeatureTokenizer.encode` on a mixture therefore needs a
separator (``with_separator``): the evaluation attaches Duo-Tok's own stage-2 separator, so both
dual-track codecs see the same separated stems. ``decode`` uses an optional :class:`TokenDecoder`
trained by the stage-4 recipe on this tokenizer's embeddings.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from duotok.audio.chunks import batch_slices, split_chunks
from duotok.audio.features import LogMel, frame_mask_from_lengths
from duotok.io.checkpoint import PretrainedMixin
from duotok.models.bestrq import MelConfig
from duotok.models.encoder import DuoEncoder, EncoderConfig
from duotok.quantization.simvq import SimVQ, nearest_codes
from duotok.tokenizer.decoder import TokenDecoder, TokenDecoderConfig
from duotok.tokenizer.model import as_mono_tensor

LAYERS = ("lower", "upper", "bottleneck")
QUANTIZERS = ("simvq", "kmeans")
STREAM_AUDIO = ("vocal", "accompaniment", "mixture")
Separator = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class FeatureTokenizerConfig:
    name: str = "single codebook"
    mel: MelConfig = field(default_factory=MelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    bottleneck_dim: int | None = None          # set when a stream reads stage 2's bottleneck (proj_in)
    streams: tuple[str, ...] = ("mixture",)
    layers: tuple[str, ...] = ("lower",)       # per stream
    quantizer: str = "simvq"
    codebook_size: int = 1024
    beta: float = 0.25
    quantizer_seed: int = 0
    chunk_seconds: float = 10.0
    chunk_batch: int = 8
    decoder: TokenDecoderConfig | None = None

    def __post_init__(self) -> None:
        self.streams, self.layers = tuple(self.streams), tuple(self.layers)
        if len(self.streams) != len(self.layers):
            raise ValueError(f"one layer per stream: streams {self.streams}, layers {self.layers}")
        if bad := [s for s in self.streams if s not in STREAM_AUDIO]:
            raise ValueError(f"unknown streams {bad}; expected some of {STREAM_AUDIO}")
        if bad := [x for x in self.layers if x not in LAYERS]:
            raise ValueError(f"unknown layers {bad}; expected some of {LAYERS}")
        if "bottleneck" in self.layers and not self.bottleneck_dim:
            raise ValueError("a 'bottleneck' layer needs bottleneck_dim (stage 2's)")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")

    def feature_dim(self, layer: str) -> int:
        return int(self.bottleneck_dim) if layer == "bottleneck" else self.encoder.dim


class KMeansCodebook(nn.Module):
    """A fixed codebook (k-means centroids, fitted outside): nearest-centroid codes, centroid vectors."""

    def __init__(self, dim: int, codebook_size: int):
        super().__init__()
        self.register_buffer("centroids", torch.zeros(codebook_size, dim))

    def codebook(self) -> torch.Tensor:
        return self.centroids.float()

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(codes.long(), self.centroids.float())


class FeatureTokenizer(nn.Module, PretrainedMixin):
    """See the module docstring. Implements :class:`duotok.codecs.base.Codec`."""

    config_class = FeatureTokenizerConfig

    def __init__(self, config: FeatureTokenizerConfig | None = None):
        super().__init__()
        config = config or FeatureTokenizerConfig()
        self.config = config
        self.logmel = LogMel(**vars(config.mel))
        self.encoder = DuoEncoder(config.encoder)
        self.proj_in = nn.Linear(config.encoder.dim, config.bottleneck_dim) if config.bottleneck_dim else None
        self.quantizers = nn.ModuleList()
        for i, layer in enumerate(config.layers):
            dim = config.feature_dim(layer)
            self.register_buffer(f"feature_mean_{i}", torch.zeros(dim))
            self.register_buffer(f"feature_std_{i}", torch.ones(dim))
            if config.quantizer == "simvq":
                self.quantizers.append(SimVQ(dim, config.codebook_size, config.beta, config.quantizer_seed + i))
            else:
                self.quantizers.append(KMeansCodebook(dim, config.codebook_size))
        self.decoder = TokenDecoder(config.decoder) if config.decoder is not None else None
        self.separator: Separator | None = None
        self.requires_grad_(False)
        for q in self.quantizers:
            q.requires_grad_(config.quantizer == "simvq")

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_encoder(cls, config: FeatureTokenizerConfig, encoder: DuoEncoder,
                     proj_in: nn.Linear | None = None) -> FeatureTokenizer:
        """Frozen encoder (and stage 2's ``proj_in`` for a bottleneck stream) copied from a trained model."""
        if encoder.config != config.encoder:
            raise ValueError(f"encoder config differs from the checkpoint's: {encoder.config} vs {config.encoder}")
        model = cls(config)
        model.encoder.load_state_dict(encoder.state_dict())
        if model.proj_in is not None:
            if proj_in is None:
                raise ValueError("a 'bottleneck' stream needs stage 2's proj_in")
            model.proj_in.load_state_dict(proj_in.state_dict())
        return model.eval()

    def with_separator(self, separate: Separator) -> FeatureTokenizer:
        """Attach the separator ``encode`` uses for stem streams (not saved with the model)."""
        self.separator = separate
        return self

    def with_decoder(self, decoder: TokenDecoder) -> FeatureTokenizer:
        if decoder.samples_per_token != self.samples_per_token:
            raise ValueError(f"decoder renders {decoder.samples_per_token} samples per token, the tokenizer makes "
                             f"one every {self.samples_per_token}")
        self.config.decoder = decoder.config
        self.decoder = decoder
        return self

    def set_feature_stats(self, index: int, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-5) -> None:
        getattr(self, f"feature_mean_{index}").copy_(mean)
        getattr(self, f"feature_std_{index}").copy_(std.clamp_min(eps))

    # ------------------------------------------------------------------ geometry

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    @property
    def samples_per_token(self) -> int:
        return self.config.mel.hop_length * self.config.encoder.downsample

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.samples_per_token

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.config.codebook_size,) * len(self.config.streams)

    @property
    def streams(self) -> dict[str, tuple[int, ...]]:
        return {s: (i,) for i, s in enumerate(self.config.streams)}

    @property
    def samples_per_chunk(self) -> int:
        return int(round(self.config.chunk_seconds * self.sample_rate / self.samples_per_token)) * self.samples_per_token

    def n_tokens(self, num_samples: int) -> int:
        return math.ceil(num_samples / self.samples_per_token)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for q in self.quantizers:
            book = torch.round(q.codebook().detach().cpu().double() * 1e6).to(torch.int64)
            digest.update(book.numpy().tobytes())
        return digest.hexdigest()[:16]

    def _device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    # ------------------------------------------------------------------ features

    def features(self, audio: torch.Tensor, lengths: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, samples)`` of one stream → raw (unnormalised) ``(N, T_tok, D)`` features and the token mask."""
        mel = self.logmel(audio)
        frame_mask = frame_mask_from_lengths(lengths, mel.shape[-1], self.config.mel.hop_length)
        token_mask = self.encoder.downsample_mask(frame_mask)
        h = self.encoder.forward_lower(self.encoder.embed(mel, frame_mask), token_mask)
        if layer == "upper":
            h = self.encoder.forward_upper(h, token_mask)
        elif layer == "bottleneck":
            h = self.proj_in(h)
        return h.float(), token_mask

    def normalized(self, index: int, h: torch.Tensor) -> torch.Tensor:
        return (h - getattr(self, f"feature_mean_{index}")) / getattr(self, f"feature_std_{index}")


    @torch.no_grad()
    def stream_features(self, audio: torch.Tensor, index: int, normalize: bool = True) -> torch.Tensor:
        """One stream's mono audio ``(samples,)`` → its features ``(n_tokens, D)`` (10-s chunks, like DuoTok)."""
        audio = as_mono_tensor(audio, self.config.streams[index])
        chunks, lengths = split_chunks(audio, self.samples_per_chunk)
        per_chunk = self.samples_per_chunk // self.samples_per_token
        out = []
        for rows in batch_slices(len(chunks), self.config.chunk_batch):
            h, _ = self.features(chunks[rows].to(self._device()), lengths[rows].to(self._device()),
                                 self.config.layers[index])
            out.append(h[:, :per_chunk].cpu())
        h = torch.cat(out).reshape(-1, out[0].shape[-1])[: self.n_tokens(audio.numel())]
        return self.normalized(index, h) if normalize else h

    def quantize(self, index: int, z: torch.Tensor) -> torch.Tensor:
        """Normalised features ``(T, D)`` → codes ``(T,)``."""
        codebook = self.quantizers[index].codebook().to(z.device)
        return nearest_codes(z.float(), codebook.detach())

    # ------------------------------------------------------------------ codec interface

    def _stream_audio(self, vocal: torch.Tensor, accompaniment: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"vocal": vocal, "accompaniment": accompaniment, "mixture": vocal + accompaniment}

    @torch.no_grad()
    def encode_stems(self, vocal: torch.Tensor, accompaniment: torch.Tensor) -> torch.Tensor:
        vocal, accompaniment = as_mono_tensor(vocal, "vocal"), as_mono_tensor(accompaniment, "accompaniment")
        if vocal.shape != accompaniment.shape:
            raise ValueError(f"vocal ({vocal.numel()} samples) and accompaniment ({accompaniment.numel()}) differ")
        audio = self._stream_audio(vocal, accompaniment)
        return torch.stack([self.quantize(i, self.stream_features(audio[s], i)) for i, s in
                            enumerate(self.config.streams)]).cpu()

    @torch.no_grad()
    def encode(self, mixture: torch.Tensor) -> torch.Tensor:
        mixture = as_mono_tensor(mixture, "mixture")
        if self.config.streams == ("mixture",):
            return self.quantize(0, self.stream_features(mixture, 0))[None].cpu()
        if self.separator is None:
            raise RuntimeError(f"{self.name} tokenizes stems: attach a separator with with_separator(...) to "
                               "encode a mixture, or call encode_stems")
        return self.encode_stems(*self.separator(mixture))

    @torch.no_grad()
    def embed_stream(self, ids: torch.Tensor, stream: str) -> torch.Tensor:
        index = self.config.streams.index(stream)
        ids = torch.as_tensor(ids).long().reshape(-1).to(self._device())
        return self.quantizers[index].decode(ids).float().cpu()

    @torch.no_grad()
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids).long()
        return torch.cat([self.embed_stream(ids[i], s) for i, s in enumerate(self.config.streams)], dim=-1)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor, num_samples: int | None = None, steps: int | None = None,
               cfg_scale: float | None = None, seed: int | None = None, time_shift: float | None = None,
               precision: str | None = None) -> dict[str, torch.Tensor]:
        """Each stream's tokens → audio by the token decoder (10-s chunks, seeded); a dual-track
        codec's mixture is the sum of its two tracks."""
        if self.decoder is None:
            raise RuntimeError(f"{self.name} has no decoder: train one (duotok train baselines) first")
        ids = torch.as_tensor(ids).long()
        n_tok = ids.shape[-1]
        num_samples = n_tok * self.samples_per_token if num_samples is None else int(num_samples)
        per_chunk = self.samples_per_chunk // self.samples_per_token
        seed = self.decoder.config.seed if seed is None else int(seed)
        out: dict[str, torch.Tensor] = {}
        full = n_tok // per_chunk
        for i, stream in enumerate(self.config.streams):
            cond = self.embed_stream(ids[i], stream).to(self._device())
            generator = torch.Generator(device=self._device()).manual_seed(seed + i)
            track_id = STREAM_AUDIO.index(stream) % 2
            pieces = []
            # full chunks share a batch; the last, shorter chunk goes alone (never zero-padded conditions)
            batches = [cond[: full * per_chunk].reshape(full, per_chunk, cond.shape[-1])] if full else []
            if n_tok > full * per_chunk:
                batches.append(cond[full * per_chunk:][None])
            for batch in batches:
                track = torch.full((batch.shape[0],), track_id, device=self._device())
                pieces.append(self.decoder.generate(batch, track, steps=steps, cfg_scale=cfg_scale,
                                                    generator=generator, time_shift=time_shift,
                                                    precision=precision).reshape(-1))
            out[stream] = torch.cat(pieces)[:num_samples].float().cpu()
        if "mixture" not in out:
            out["mixture"] = out["vocal"] + out["accompaniment"]
        return out

