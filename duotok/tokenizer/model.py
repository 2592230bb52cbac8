"""``DuoTok``: the trained tokenizer as one checkpoint.

    mixture ─→ stage-2 mask head ─→ vocals ─────────────────┐
                                 └→ drums + bass + other ───┤→ stage-3 quantizer → (vocal ids, accompaniment ids)

``encode(mixture)`` separates with the stage-2 model's mask head (the paper's inference path: the
tokenizer sees only the mix), ``encode_stems(vocals, accompaniment)`` skips separation (oracle
stems), ``embed(ids, track)`` turns ids back into the quantized embeddings that the probe and the
decoder consume. With a stage-4 :class:`TokenDecoder` attached (``with_decoder``; the ``models/codec``
checkpoint), ``decode(vocal_ids, accompaniment_ids)`` renders the two tracks and their sum.

Songs are processed in fixed chunks (``chunk_seconds``, default the training crop length): the
encoders were trained on crops of that length, and chunking bounds memory for long songs. Each
full chunk yields exactly ``chunk_seconds × 25`` tokens, so token ``t`` always covers
``[t·40 ms, (t+1)·40 ms)`` of the song.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from duotok.audio.chunks import batch_slices, split_chunks
from duotok.audio.stream import stream_audio
from duotok.errors import CheckpointError
from duotok.io.checkpoint import PretrainedMixin
from duotok.models.dit import check_time_shift
from duotok.models.dualtrack import DualTrackConfig, DualTrackModel, stack_tracks
from duotok.models.heads import separate
from duotok.models.multitask import MultiTaskConfig, MultiTaskModel
from duotok.quantization.dual import TRACKS
from duotok.tokenizer.decoder import TokenDecoder, TokenDecoderConfig
from duotok.tokenizer.tokens import TokenFile, load_tokens
from duotok.train.precision import PRECISIONS


@dataclass
class DuoTokConfig:
    separator: MultiTaskConfig = field(default_factory=MultiTaskConfig)
    quantizer: DualTrackConfig = field(default_factory=DualTrackConfig)
    chunk_seconds: float = 10.0
    chunk_batch: int = 8          # chunks per forward pass
    decoder: TokenDecoderConfig | None = None   # stage 4; None = a tokenizer that cannot decode


#: How to turn what users typically have into what :meth:`DuoTok.encode` takes.
_HOW_TO_LOAD = ('for a file use DuoTok.tokenize_file(path), or duotok.audio.io.load_audio(path, tok.sample_rate, '
                'on_rate_mismatch="resample", on_multichannel="downmix")')


def as_mono_tensor(audio: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
    """Float mono samples in [-1, 1] as float32; integer PCM, other dtypes and NaN/inf are refused."""
    if isinstance(audio, torch.Tensor):
        dtype, is_float = audio.dtype, audio.is_floating_point()
        is_int = not is_float and not audio.is_complex() and audio.dtype != torch.bool
    else:
        array = np.asarray(audio)
        dtype, is_float, is_int = array.dtype, array.dtype.kind == "f", array.dtype.kind in "iu"
        audio = array
    if is_int:
        raise ValueError(f"{what}: got integer samples ({dtype}); DuoTok takes float audio in [-1, 1]. Scale PCM "
                         f"first (int16: x.astype(np.float32) / 32768, int32: / 2**31), or {_HOW_TO_LOAD}")
    if not is_float:
        raise ValueError(f"{what}: got {dtype} samples; DuoTok takes float audio in [-1, 1] ({_HOW_TO_LOAD})")
    x = torch.as_tensor(audio).detach().to(dtype=torch.float32)
    if x.dim() != 1:
        raise ValueError(f"{what}: expected mono audio of shape (samples,), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{what}: empty audio")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = int(torch.nonzero(bad)[0, 0])
        raise ValueError(f"{what}: audio contains {int(bad.sum())} NaN or inf sample(s) (as float32), first at "
                         f"sample {first}")
    return x


def _as_ids(ids: torch.Tensor | np.ndarray, what: str, size: int, device: torch.device) -> torch.Tensor:
    """Integer token ids in ``[0, size)`` as int64; float, bool or out-of-range ids are refused (a float is
    never silently truncated to an id)."""
    if isinstance(ids, torch.Tensor):
        ok, dtype = not ids.is_floating_point() and not ids.is_complex() and ids.dtype != torch.bool, ids.dtype
    else:
        array = np.asarray(ids)
        ok, dtype = array.dtype.kind in "iu" or array.size == 0, array.dtype
        ids = array if array.size else array.astype(np.int64)
    if not ok:
        raise ValueError(f"{what}: token ids must be integers, got {dtype} (ids are codebook indices; "
                         "did you pass audio or embeddings?)")
    out = torch.as_tensor(ids).to(device=device, dtype=torch.long)
    if out.numel() and (int(out.min()) < 0 or int(out.max()) >= size):
        raise ValueError(f"{what}: ids outside [0, {size}) (found {int(out.min())}..{int(out.max())})")
    return out


def _track_route(track: str | int) -> int:
    if isinstance(track, str):
        if track not in TRACKS:
            raise ValueError(f"track must be one of {TRACKS} (or 0 / 1), got {track!r}")
        return TRACKS.index(track)
    if isinstance(track, (int, np.integer)) and not isinstance(track, bool) and int(track) in (0, 1):
        return int(track)
    raise ValueError(f"track must be one of {TRACKS} (or 0 / 1), got {track!r}")


class DuoTok(nn.Module, PretrainedMixin):
    config_class = DuoTokConfig

    def __init__(self, config: DuoTokConfig | None = None):
        super().__init__()
        config = config or DuoTokConfig()
        if config.separator.mel != config.quantizer.mel:
            raise ValueError("separator and quantizer use different mel front ends")
        if not config.separator.heads.mask:
            raise ValueError("the separator (stage-2 model) has no mask head, so it cannot separate a mixture")
        if config.chunk_seconds <= 0 or config.chunk_batch < 1:
            raise ValueError("chunk_seconds must be positive and chunk_batch at least 1")
        self.config = config
        self.separator = MultiTaskModel(config.separator)
        self.quantizer = DualTrackModel(config.quantizer)
        if self.samples_per_chunk % self.samples_per_token:
            raise ValueError(f"chunk_seconds={config.chunk_seconds} is not a whole number of 40 ms tokens")
        self.decoder = TokenDecoder(config.decoder) if config.decoder is not None else None
        if self.decoder is not None:
            self._check_decoder(self.decoder.config)

    def _check_decoder(self, decoder: TokenDecoderConfig) -> None:
        if decoder.autoencoder.sample_rate != self.sample_rate:
            raise ValueError(f"decoder renders {decoder.autoencoder.sample_rate} Hz audio, tokenizer reads "
                             f"{self.sample_rate} Hz")
        per_token = decoder.autoencoder.samples_per_latent * decoder.dit.cond_upsample
        if per_token != self.samples_per_token:
            raise ValueError(f"decoder renders {per_token} samples per token, the tokenizer's tokens cover "
                             f"{self.samples_per_token}")
        if decoder.dit.cond_dim != self.config.quantizer.encoder.dim:
            raise ValueError(f"decoder reads {decoder.dit.cond_dim}-dim embeddings, the quantizer makes "
                             f"{self.config.quantizer.encoder.dim}-dim ones")

    def with_decoder(self, decoder: TokenDecoder) -> DuoTok:
        """A new ``DuoTok`` with this tokenizer's weights and ``decoder`` (a complete codec)."""
        model = type(self)(dataclasses.replace(self.config, decoder=decoder.config))
        model.separator.load_state_dict(self.separator.state_dict())
        model.quantizer.load_state_dict(self.quantizer.state_dict())
        model.decoder.load_state_dict(decoder.state_dict())
        return model.eval()

    @classmethod
    def from_stages(cls, finetune_dir: str | os.PathLike[str], quantize_dir: str | os.PathLike[str],
                    chunk_seconds: float = 10.0) -> DuoTok:
        """Bundle a stage-2 checkpoint (the separator) and a stage-3 checkpoint (the quantizer)."""
        separator = MultiTaskModel.from_pretrained(finetune_dir)
        quantizer = DualTrackModel.from_pretrained(quantize_dir)
        if separator.config.mel != quantizer.config.mel:
            raise CheckpointError(quantize_dir, f"mel front end differs from the stage-2 checkpoint in {finetune_dir}")
        model = cls(DuoTokConfig(separator.config, quantizer.config, chunk_seconds))
        model.separator.load_state_dict(separator.state_dict())
        model.quantizer.load_state_dict(quantizer.state_dict())
        return model.eval()

    # ------------------------------------------------------------------ sizes

    @property
    def sample_rate(self) -> int:
        return self.config.quantizer.mel.sample_rate

    @property
    def samples_per_token(self) -> int:
        return self.config.quantizer.mel.hop_length * self.config.quantizer.encoder.downsample

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.samples_per_token

    @property
    def samples_per_chunk(self) -> int:
        return int(round(self.config.chunk_seconds * self.sample_rate))

    @property
    def codebook_sizes(self) -> tuple[int, int]:
        return tuple(self.config.quantizer.codebook_sizes)

    def n_tokens(self, num_samples: int) -> int:
        """Tokens for ``num_samples`` of audio: one per started 40 ms."""
        return math.ceil(num_samples / self.samples_per_token)

    def fingerprints(self) -> dict[str, str]:
        return self.quantizer.quantizer.codebook_fingerprints()

    # ------------------------------------------------------------------ chunking

    def _chunks(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(samples,) → zero-padded (n_chunks, samples_per_chunk) and each chunk's valid length."""
        return split_chunks(audio, self.samples_per_chunk)

    def _batches(self, n: int):
        return batch_slices(n, self.config.chunk_batch)

    # ------------------------------------------------------------------ the API

    def _check_rate(self, sample_rate: int | None, what: str) -> None:
        """``sample_rate`` (the caller's statement of the audio's rate, optional) must be the model's."""
        if sample_rate is None:
            return
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
        if int(sample_rate) != self.sample_rate:
            raise ValueError(f"{what} is at {int(sample_rate)} Hz but this model reads {self.sample_rate} Hz audio; "
                             f"resample it first: duotok.audio.io.load_audio(path, {self.sample_rate}, "
                             f'on_rate_mismatch="resample") for a file, duotok.audio.io.resample(x, '
                             f"{int(sample_rate)}, {self.sample_rate}) for an array")

    @torch.inference_mode()
    def separate(self, mixture: torch.Tensor | np.ndarray, *, sample_rate: int | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mono mixture (samples,) → (vocals, accompaniment), each (samples,), by the stage-2 mask head
        (accompaniment = drums + bass + other estimates). ``sample_rate``: see :meth:`encode`."""
        self._check_rate(sample_rate, "mixture")
        x = as_mono_tensor(mixture, "mixture").to(self._device)
        chunks, lengths = self._chunks(x.cpu())
        m = self.config.separator.mel
        vocals, accompaniment = [], []
        for rows in self._batches(len(chunks)):
            audio = chunks[rows].to(self._device)
            masks = self.separator.infer(audio, lengths[rows].to(self._device), heads=("mask",))["outputs"]["mask"]
            # The iSTFT is linear: one accompaniment mask (drums + bass + other) renders the sum of the
            # three stems in one inverse transform instead of three.
            tracks = torch.stack([masks[:, 0], masks[:, 1:].sum(dim=1)], dim=1)
            stems = separate(tracks, audio, m.n_fft, m.hop_length, m.win_length, length=audio.shape[-1])
            vocals.append(stems[:, 0])
            accompaniment.append(stems[:, 1])
        n = x.numel()
        return torch.cat(vocals).reshape(-1)[:n].cpu(), torch.cat(accompaniment).reshape(-1)[:n].cpu()

    @torch.inference_mode()
    def encode_stems(self, vocals: torch.Tensor | np.ndarray, accompaniment: torch.Tensor | np.ndarray, *,
                     sample_rate: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Given (oracle) stems, each mono float (samples,) at :attr:`sample_rate` → (vocal ids,
        accompaniment ids), each ``(n_tokens(samples),)`` int64 at 25 Hz. ``sample_rate``: see :meth:`encode`."""
        self._check_rate(sample_rate, "the stems")
        v = as_mono_tensor(vocals, "vocals")
        a = as_mono_tensor(accompaniment, "accompaniment")
        if v.shape != a.shape:
            raise ValueError(f"vocals ({v.numel()} samples) and accompaniment ({a.numel()}) differ in length")
        v_chunks, lengths = self._chunks(v)
        a_chunks, _ = self._chunks(a)
        per_chunk = self.samples_per_chunk // self.samples_per_token
        ids: dict[str, list[torch.Tensor]] = {name: [] for name in TRACKS}
        for rows in self._batches(len(v_chunks)):
            audio, route, lens = stack_tracks(v_chunks[rows], a_chunks[rows], lengths[rows])
            result, *_ = self.quantizer.quantize(audio.to(self._device), route.to(self._device), lens.to(self._device))
            codes = result.codes[:, :per_chunk].cpu()
            b = codes.shape[0] // 2
            ids["vocal"].append(codes[:b])
            ids["accompaniment"].append(codes[b:])
        n = self.n_tokens(v.numel())
        return torch.cat(ids["vocal"]).reshape(-1)[:n], torch.cat(ids["accompaniment"]).reshape(-1)[:n]

    @torch.inference_mode()
    def encode(self, mixture: torch.Tensor | np.ndarray, *, sample_rate: int | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mono float mixture (samples,) in [-1, 1] at :attr:`sample_rate` → (vocal ids, accompaniment ids)
        at 25 Hz.

        Integer PCM is refused (scale it, or load files with :meth:`tokenize_file` /
        :func:`duotok.audio.io.load_audio`, which also resample and downmix), as are NaN/inf samples.
        Pass ``sample_rate`` (the audio's rate) to have audio at another rate refused instead of
        silently tokenized as if it were at the model's."""
        self._check_rate(sample_rate, "mixture")
        return self.encode_stems(*self.separate(mixture))

    @torch.inference_mode()
    def embed(self, ids: torch.Tensor, track: str | int) -> torch.Tensor:
        """Token ids ``(T,)`` or ``(B, T)`` of one track → quantized embeddings ``(…, T, dim)``: exactly
        what the stage-3 upper encoder reads for those tokens (the quantizer's ``proj_out`` output).
        ``track``: ``"vocal"`` / ``"accompaniment"`` or 0 / 1; ids must be integers inside the track's codebook."""
        route = _track_route(track)
        ids = _as_ids(ids, f"{TRACKS[route]} ids", self.codebook_sizes[route], self._device)
        squeeze = ids.dim() == 1
        ids2 = ids[None] if squeeze else ids
        route_t = torch.full((ids2.shape[0],), route, device=self._device)
        out = self.quantizer.quantizer.decode(ids2, route_t)
        return out[0] if squeeze else out

    @torch.inference_mode()
    def decode(self, vocal_ids: torch.Tensor | np.ndarray, accompaniment_ids: torch.Tensor | np.ndarray,
               num_samples: int | None = None, steps: int | None = None, cfg_scale: float | None = None,
               seed: int | None = None, time_shift: float | None = None,
               precision: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids ``(T,)`` of both tracks → (vocal, accompaniment, mixture) audio, each ``(num_samples,)``
        (default ``T × 640``) at :attr:`sample_rate`; mixture = vocal + accompaniment.

        Decoded in the encoder's chunks (``chunk_seconds``), both tracks of a chunk in one batch.
        Seeded (``seed``, default the decoder's): the same ids and settings give the same audio.
        ``steps`` / ``cfg_scale`` / ``time_shift`` / ``precision`` default to the decoder's config
        (``params.yaml: decoder.sampling``, as chosen by stage 4b)."""
        if self.decoder is None:
            raise RuntimeError("this DuoTok has no decoder (a stage-3 tokenizer); load the complete codec "
                               "(models/codec, written by the `decoder` stage) to decode")
        ids = [_as_ids(x, f"{name} ids", size, torch.device("cpu")).reshape(-1)
               for x, name, size in zip((vocal_ids, accompaniment_ids), TRACKS, self.codebook_sizes, strict=True)]
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if cfg_scale is not None and not (isinstance(cfg_scale, (int, float, np.number)) and math.isfinite(cfg_scale)
                                          and cfg_scale >= 0):
            raise ValueError(f"cfg_scale must be a finite number >= 0, got {cfg_scale!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if time_shift is not None:
            check_time_shift(time_shift)
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if ids[0].numel() != ids[1].numel() or ids[0].numel() == 0:
            raise ValueError(f"vocal ({ids[0].numel()}) and accompaniment ({ids[1].numel()}) token streams must "
                             "be non-empty and of equal length")
        n_tok = ids[0].numel()
        num_samples = n_tok * self.samples_per_token if num_samples is None else int(num_samples)
        if not 0 < num_samples <= n_tok * self.samples_per_token:
            raise ValueError(f"num_samples={num_samples} does not fit {n_tok} tokens")
        generator = torch.Generator(device=self._device)
        generator.manual_seed(self.decoder.config.seed if seed is None else int(seed))
        per_chunk = self.samples_per_chunk // self.samples_per_token
        starts = list(range(0, n_tok, per_chunk))
        groups = [starts[i: i + self.config.chunk_batch] for i in range(0, len(starts), self.config.chunk_batch)]
        tracks: list[list[torch.Tensor]] = [[], []]
        for group in groups:
            # chunks of equal length share a batch (only the last chunk of a song can be shorter)
            for length in sorted({min(per_chunk, n_tok - s) for s in group}, reverse=True):
                sel = [s for s in group if min(per_chunk, n_tok - s) == length]
                cond = torch.cat([self.embed(torch.stack([ids[r][s: s + length] for s in sel]), r) for r in (0, 1)])
                track = torch.tensor([0] * len(sel) + [1] * len(sel), device=self._device)
                audio = self.decoder.generate(cond, track, steps, cfg_scale, generator, time_shift, precision).cpu()
                tracks[0].append(audio[: len(sel)].reshape(-1))
                tracks[1].append(audio[len(sel):].reshape(-1))
        vocal, accompaniment = (torch.cat(t)[:num_samples] for t in tracks)
        return vocal, accompaniment, vocal + accompaniment

    # ------------------------------------------------------------------ files

    def tokenize_file(self, path: str | os.PathLike[str]) -> TokenFile:
        """Encode any audio file (resampled / downmixed with a warning if needed), streamed in blocks of
        ``chunk_batch`` chunks: memory is bounded by the block, not the song, and since encoding is
        chunk-local the tokens equal ``encode(load_audio(path, ...))`` exactly."""
        block = self.samples_per_chunk * self.config.chunk_batch
        vocal, accompaniment, num_samples = [], [], 0
        for audio in stream_audio(path, self.sample_rate, block, on_rate_mismatch="resample",
                                  on_multichannel="downmix"):
            v, a = self.encode(audio)
            vocal.append(v)
            accompaniment.append(a)
            num_samples += audio.size
        return self.token_file(torch.cat(vocal), torch.cat(accompaniment), num_samples, mode="separated",
                               source=Path(path).name)

    def token_file(self, vocal: torch.Tensor, accompaniment: torch.Tensor, num_samples: int,
                   mode: str = "separated", source: str = "") -> TokenFile:
        return TokenFile(vocal=vocal.numpy(), accompaniment=accompaniment.numpy(), sample_rate=self.sample_rate,
                         frame_rate=self.frame_rate, codebook_sizes=self.codebook_sizes,
                         fingerprints=self.fingerprints(), num_samples=int(num_samples), mode=mode, source=source)

    def load_tokens(self, path: str | os.PathLike[str]) -> TokenFile:
        """Read a token file and check it was made by this model's codebooks."""
        tokens = load_tokens(path)
        tokens.check_compatible(self.fingerprints(), self.codebook_sizes, self.frame_rate, path, self.sample_rate)
        return tokens

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device
