"""The domain gap: how the models trained on the generated corpus fare on real music.

Every model of this repository is trained on "duosynth" (espeak-ng + WORLD singing over a General-MIDI
band). A **domain gap** is the difference between a model's scores on the kind of data it was trained
on and on data from elsewhere — here, any folder in the MUSDB18-HQ layout. A model that scores as well
on both has learned music; one that collapses on real songs has learned the synthesiser. The numbers
alone say little (real music is harder than a General-MIDI band), so every number is computed twice,
with the **same functions, models and excerpt rule**, on the user's folder and on the corpus's test
split, and shown side by side.

Three views, because the tokenizer can fail on real music in three separate places:

* ``separation`` — museval SDR / SIR / SAR per stem, and the toolkit's Mel L1 per stem (SDR cannot rank
  the token-LM separator, whose codec does not keep the phase)
  (:func:`duotok.separation.evaluate.score_excerpt`, the separation table's scorer) of the trained separators (``duotok separate``'s registry:
  ``mask-head``, ``openunmix``, ``token-lm``; ``oracle``, the ideal ratio mask, is a bound that reads the
  true stems). Duo-Tok's ``encode`` of a mixture starts with the mask head, so a separator that breaks
  on real mixes breaks every token after it.
* ``tokens`` — codebook usage and the unigram entropy rate in bits/s of Duo-Tok's tokens of the true
  vocal / accompaniment stems (:func:`duotok.reporting.verdicts.codebook_usage`,
  :func:`~duotok.reporting.verdicts.unigram_entropy_rate`, the stems encoded as
  :func:`duotok.eval.corpus_tokens.encode_song` encodes the corpus). Out-of-domain audio tends to land
  on a few "catch-all" codes: fewer codes used and fewer bits/s mean the tokens say less about the song.
* ``reconstruction`` — the codec round trip of the true stems (:func:`duotok.eval.roundtrip.codec_system`
  scored by :func:`duotok.eval.roundtrip.score_system`): the toolkit's Mel L1 and PESQ / STOI / ViSQOL per
  track. Whether the decoder can render what the tokens say about a real song.

**Excerpts.** One excerpt per track: the centre ``excerpt_seconds`` (a track shorter than that is used
whole), the rule of :func:`duotok.eval.roundtrip.held_out_excerpts`, read by its four-stem twin
:func:`duotok.separation.evaluate.stem_excerpts` (same rule, all four stems kept for BSS-eval), so the
corpus side of this report covers exactly the audio of the reconstruction and separation tables.
``max_tracks`` caps the tracks of each side (the first ones: MUSDB's ``test`` split first, the corpus in
manifest order).

**Failures never drop a track silently.** Each track is read through a one-track view of its folder (a
temporary folder linking to it), so a track with a missing stem or an unreadable file is reported — the
real path named — and the others still finish. Every track gets a row in ``tracks`` with its status
(``ok``, ``partial``: some view failed, ``failed``: it could not be read); every problem is a row of
``failures``; a sub-folder that is not a track at all is listed in ``skipped``. A problem with the
whole job (no tracks found, a model that does not load, models of different sample rates) raises an
error naming the folder instead.

This module imports torch only inside its functions, so ``duotok --help`` stays fast when the command
is registered (:func:`add_domain_gap_parser`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from duotok.config import Params
    from duotok.separation.base import Separator
    from duotok.separation.evaluate import StemExcerpt
    from duotok.tokenizer.model import DuoTok

__all__ = [
    "CORPUS",
    "DEFAULT_SYSTEMS",
    "FOLDER",
    "MODEL_LAYOUT",
    "VIEWS",
    "DomainGapResult",
    "LoadedModels",
    "TrackSource",
    "add_domain_gap_parser",
    "cmd_domain_gap",
    "compute_domain_gap",
    "find_tracks",
    "load_models",
    "main",
    "summarize_domain_gap",
    "track_excerpt",
    "write_domain_gap",
]

#: The two sides of the comparison (the ``dataset`` column of every row).
FOLDER, CORPUS = "folder", "corpus"
#: The three views (see the module docstring).
VIEWS: tuple[str, ...] = ("separation", "tokens", "reconstruction")
#: The trained separators of ``duotok separate``'s registry, scored by default.
DEFAULT_SYSTEMS: tuple[str, ...] = ("mask-head", "openunmix", "token-lm")
#: Bounds that read the true stems (not systems one could run on a new song), available by name.
BOUNDS: tuple[str, ...] = ("oracle",)
#: BSS-eval, plus Mel L1 per stem: a generative separator's decoder does not keep the waveform's phase, so
#: SDR cannot rank it (params.yaml: separation) and the separation table ranks it by Mel L1 / ViSQOL.
DEFAULT_SEPARATION_METRICS: tuple[str, ...] = ("sdr", "sir", "sar", "mel_l1")
DEFAULT_RECONSTRUCTION_METRICS: tuple[str, ...] = ("mel_l1", "pesq", "stoi", "visqol")
DEFAULT_MAX_TRACKS = 8
DEFAULT_EXCERPT_SECONDS = 10.0
#: MUSDB's benchmark split first, so a cap keeps test tracks.
MUSDB_SPLIT_ORDER: tuple[str, ...] = ("test", "train", "valid")
#: Where each model lives below ``--models``: the folders params.yaml's pipeline trains into
#: (``quantize.data.tokenizer_dir``, ``decoder.data.codec_dir``, ``separation.data.out_dir`` and
#: ``separation.generative.codec_dir``, each without its leading ``models/``).
MODEL_LAYOUT: dict[str, str] = {
    "tokenizer": "duotok",
    "codec": "codec",
    "openunmix": "separation/openunmix/model",
    "token-lm": "separation/generative/model",
    "token-lm-codec": "baselines/rvq/model",
}
#: The DVC stage that writes each model (named in "not trained yet" errors).
_TRAINED_BY: dict[str, str] = {"tokenizer": "quantize", "codec": "decoder", "mask-head": "quantize",
                               "openunmix": "separator@openunmix", "token-lm": "separator@generative"}
#: What one bad track raises; it is reported and the job goes on (KeyboardInterrupt, MemoryError do not).
_PER_TRACK_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError, OSError)
#: Numeric per-track token statistics (summarised as means over tracks).
TOKEN_STATS: tuple[str, ...] = ("frames", "used", "usage", "entropy_bits", "perplexity", "entropy_fraction",
                                "entropy_rate_bps")
RECORD_FORMAT, RECORD_VERSION = "duotok-domain-gap", 1


# --------------------------------------------------------------------------- finding tracks


@dataclass(frozen=True)
class TrackSource:
    """One song to score, found without decoding audio: which side it belongs to (``dataset``), its id,
    split and folder, the layout that reads it and the dataset root. ``entry`` (duosynth only) is its
    manifest entry and ``sample_rate`` the manifest's rate, so a one-song view can be written."""

    dataset: str
    song: str
    split: str
    path: Path
    layout: str
    root: Path
    entry: Mapping[str, Any] | None = None
    sample_rate: int | None = None


def _musdb_candidates(root: Path, splits: Sequence[str] | None) -> tuple[list[tuple[str, Path]], list[Path]]:
    """Sub-folders that hold at least one MUSDB-named wav (tracks, complete or not) and those that hold
    none (reported as skipped), in the loader's own discovery order and definition of a track folder."""
    from duotok.data.stems import _is_track_folder, _subfolders

    split_dirs = [s for s in MUSDB_SPLIT_ORDER if (root / s).is_dir()]
    if split_dirs:
        folders = [(s, f) for s in split_dirs if splits is None or s in splits for f in _subfolders(root / s)]
    else:
        folders = [("train", f) for f in _subfolders(root)] if splits is None or "train" in splits else []
    tracks = [(s, f) for s, f in folders if _is_track_folder(f)]
    return tracks, [f for s, f in folders if not _is_track_folder(f)]


def find_tracks(folder: str | os.PathLike[str], dataset: str = FOLDER,
                splits: Sequence[str] | None = None) -> tuple[list[TrackSource], list[dict[str, str]]]:
    """The songs under ``folder`` and the sub-folders that are not songs (``{"dataset", "path", "reason"}``).

    A folder with ``manifest.json`` is a duosynth corpus, checked as a whole by
    :func:`duotok.data.stems.discover_songs` (its manifest is one contract: a missing file is an error
    naming it). Otherwise it is MUSDB18-HQ-like: every sub-folder of ``train/`` / ``test/`` (or of the
    root) holding one of ``mixture.wav``, ``vocals.wav``, ... is a track *even if another stem is
    missing* — that track is then reported when it is read, so the others still run. ``splits``: the
    splits kept (default all; MUSDB order ``test``, ``train``, ``valid``). No track at all is a
    :class:`~duotok.errors.DatasetError` naming the folder."""
    from duotok.data.stems import MANIFEST, SOURCES, discover_songs
    from duotok.errors import DatasetError

    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(root, "no such folder" if not root.exists() else "not a folder")
    if (root / MANIFEST).is_file():
        records = [r for r in discover_songs(root, "duosynth") if splits is None or r.split in splits]
        tracks = [TrackSource(dataset, r.id, r.split, r.path, "duosynth", root,
                              {"id": r.id, "split": r.split, "duration": r.duration, **r.meta}, r.sample_rate)
                  for r in records]
        skipped: list[Path] = []
    else:
        found, skipped = _musdb_candidates(root, splits)
        tracks = [TrackSource(dataset, f.name, s, f, "musdb", root) for s, f in found]
    if not tracks:
        wanted = f" in split(s) {list(splits)}" if splits is not None else ""
        raise DatasetError(root, f"no tracks found{wanted}: expected a duosynth manifest.json or MUSDB18-HQ track "
                                 f"folders holding {', '.join(s + '.wav' for s in SOURCES)} (under train/ and "
                                 f"test/, or directly under the folder)")
    notes = [{"dataset": dataset, "path": str(p), "reason": "not a track folder (no mixture.wav or stem .wav)"}
             for p in skipped]
    return tracks, notes


@contextlib.contextmanager
def _one_track_view(track: TrackSource) -> Iterator[tuple[Path, list[tuple[str, str]]]]:
    """A temporary dataset root holding only ``track`` (a link to its folder, plus a one-song manifest for
    duosynth), so the corpus's whole-split readers read this track alone; yields the root and the
    ``(view path, real path)`` pairs that turn paths in messages back into the user's."""
    from duotok.data.stems import MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION

    with tempfile.TemporaryDirectory(prefix="duotok-domain-gap-") as tmp:
        view = Path(tmp)
        if track.layout == "musdb":
            link = view / track.split / track.path.name
            link.parent.mkdir()
            os.symlink(track.path.resolve(), link, target_is_directory=True)
            pairs = [(str(link), str(track.path)), (str(view), str(track.root))]
        else:
            link = view / "songs" / track.song
            link.parent.mkdir()
            os.symlink(track.path.resolve(), link, target_is_directory=True)
            manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "sample_rate": track.sample_rate,
                        "songs": [dict(track.entry or {})]}
            (view / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
            pairs = [(str(view), str(track.root))]
        yield view, pairs


def _remap(text: str, pairs: Sequence[tuple[str, str]]) -> str:
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def track_excerpt(track: TrackSource, seconds: float, sample_rate: int) -> tuple[StemExcerpt, list[str]]:
    """The track's excerpt — mixture and four true stems of the centre ``seconds``
    (:func:`duotok.separation.evaluate.stem_excerpts` on a one-track view) — and the notes its reading
    produced (MUSDB's 44.1 kHz stereo is resampled and downmixed, each with a warning naming the file).
    A track that cannot be read raises :class:`~duotok.errors.DatasetError` naming the track's real file."""
    from duotok.errors import DatasetError
    from duotok.separation.evaluate import stem_excerpts

    with _one_track_view(track) as (view, pairs), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            excerpt = stem_excerpts(view, track.split, seconds, 1, sample_rate)[0]
        except _PER_TRACK_ERRORS as exc:
            path, problem = getattr(exc, "path", None), getattr(exc, "problem", None)
            if path is not None and problem is not None:
                raise DatasetError(_remap(str(path), pairs), _remap(str(problem), pairs)) from exc
            raise DatasetError(track.path, _remap(str(exc), pairs)) from exc
        notes = list(dict.fromkeys(_remap(str(w.message), pairs) for w in caught))
    return excerpt, notes


# --------------------------------------------------------------------------- models


@dataclass
class LoadedModels:
    """What the three views run: the separators by name, the Duo-Tok codec (``None`` when neither tokens
    nor reconstruction is asked for), the common sample rate, and where each model came from."""

    separators: dict[str, Separator]
    codec: DuoTok | None
    sample_rate: int
    paths: dict[str, str] = field(default_factory=dict)


def _checkpoint(path: Path, what: str, key: str) -> Path:
    if not (path / "config.json").is_file():
        where = "no such folder" if not path.exists() else "no config.json"
        raise FileNotFoundError(f"{path}: {where}: no {what} here (`dvc repro {_TRAINED_BY[key]}` trains it, "
                                f"or pass another --models folder)")
    return path


def _load_separator(name: str, models_dir: Path, params: Params, sample_rate: int | None) -> tuple[Separator, str]:
    """A separator of ``duotok separate``'s registry, loaded from ``models_dir`` (:data:`MODEL_LAYOUT`),
    or the ``oracle`` bound; returns it and the folder it came from."""
    from duotok.separation.cli import SEPARATORS, load_token_lm

    if name == "mask-head":
        path = _checkpoint(models_dir / MODEL_LAYOUT["tokenizer"], "Duo-Tok tokenizer (its mask head)", "mask-head")
        return SEPARATORS[name](str(path)), str(path)
    if name == "openunmix":
        path = _checkpoint(models_dir / MODEL_LAYOUT["openunmix"], "Open-Unmix-style separator", "openunmix")
        return SEPARATORS[name](str(path)), str(path)
    if name == "token-lm":
        path = _checkpoint(models_dir / MODEL_LAYOUT["token-lm"], "generative (token-LM) separator", "token-lm")
        codec = _checkpoint(models_dir / MODEL_LAYOUT["token-lm-codec"], "RVQ codec of the token-LM separator",
                            "token-lm")
        return load_token_lm(str(path), str(codec), params), str(path)
    if name == "oracle":
        from duotok.separation.mask_separators import OracleMaskSeparator

        o = params.section("separation")["oracle"]
        rate = int(sample_rate or params.section("audio")["sample_rate"])
        return OracleMaskSeparator(rate, n_fft=int(o["n_fft"]), hop=int(o["hop"]), power=float(o["power"])), "-"
    known = ", ".join((*SEPARATORS, *BOUNDS))
    raise ValueError(f"unknown separation system {name!r}; known: {known}")


def load_models(models_dir: str | os.PathLike[str], systems: Sequence[str] | Mapping[str, Separator] = DEFAULT_SYSTEMS,
                views: Sequence[str] = VIEWS, profile: str | None = None) -> LoadedModels:
    """Load what ``views`` need from ``models_dir`` (laid out as :data:`MODEL_LAYOUT`): the separators
    named in ``systems`` (or given ready-made as ``{name: separator}``), and the Duo-Tok codec —
    ``codec/`` (tokenizer + decoder), or for tokens alone ``duotok/`` when no codec was trained yet.
    Every model must run at one sample rate. A model that is missing is an error naming its folder and
    the stage that trains it."""
    from duotok.config import Params
    from duotok.separation.cli import SEPARATORS
    from duotok.tokenizer.model import DuoTok

    views = _check_views(views)
    if "separation" in views and not isinstance(systems, Mapping):
        systems = [s for s in systems.split(",") if s] if isinstance(systems, str) else list(systems)
        known = (*SEPARATORS, *BOUNDS)
        unknown = [s for s in systems if s not in known]
        if unknown:
            raise ValueError(f"unknown separation system(s) {unknown}; known: {', '.join(known)}")
    models_dir = Path(models_dir)
    params = Params.load(profile)
    paths: dict[str, str] = {}
    codec = None
    if "tokens" in views or "reconstruction" in views:
        full = models_dir / MODEL_LAYOUT["codec"]
        if (full / "config.json").is_file() or "reconstruction" in views:
            path = _checkpoint(full, "Duo-Tok codec (tokenizer + decoder)", "codec")
        else:
            path = _checkpoint(models_dir / MODEL_LAYOUT["tokenizer"], "Duo-Tok tokenizer", "tokenizer")
        codec = DuoTok.from_pretrained(path).eval()
        if "reconstruction" in views and codec.decoder is None:
            raise ValueError(f"{path}: this Duo-Tok has no decoder, so nothing to reconstruct with "
                             f"(`dvc repro decoder` writes models/codec), or leave out the reconstruction view")
        paths["codec"] = str(path)
    separators: dict[str, Separator] = {}
    if "separation" in views:
        if isinstance(systems, Mapping):
            separators = dict(systems)
            paths.update({name: "(given)" for name in separators})
        else:
            bounds = [s for s in systems if s in BOUNDS]
            for name in [s for s in systems if s not in BOUNDS]:
                try:
                    separators[name], paths[name] = _load_separator(name, models_dir, params, None)
                except (OSError, ValueError) as exc:     # name the system: the path alone may not say which
                    raise RuntimeError(f"separation system {name!r} cannot be loaded: {exc}") from exc
            rate = codec.sample_rate if codec is not None else next(
                (int(s.sample_rate) for s in separators.values()), None)
            for name in bounds:
                separators[name], paths[name] = _load_separator(name, models_dir, params, rate)
        if not separators:
            raise ValueError("the separation view needs at least one system (or leave the view out)")
    rates = {name: int(s.sample_rate) for name, s in separators.items()}
    if codec is not None:
        rates["Duo-Tok codec"] = int(codec.sample_rate)
    if not rates:
        raise ValueError(f"nothing to compute: no views among {VIEWS}")
    if len(set(rates.values())) > 1:
        raise ValueError(f"{models_dir}: the models run at different sample rates {rates}; one excerpt cannot "
                         "serve them all")
    return LoadedModels(separators, codec, next(iter(rates.values())), paths)


def _check_views(views: Sequence[str]) -> tuple[str, ...]:
    views = (views,) if isinstance(views, str) else tuple(views)
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        raise ValueError(f"unknown view(s) {unknown}; choose from {VIEWS}" if unknown else
                         f"no views requested; choose from {VIEWS}")
    return views


# --------------------------------------------------------------------------- the result


@dataclass
class DomainGapResult:
    """Per-track rows of every view for both sides, the per-side summaries, and what went wrong.

    * ``tracks`` — one row per track considered: ``dataset, song, split, path, status`` (``ok`` /
      ``partial`` / ``failed``), ``offset_seconds``, ``seconds``, ``notes``;
    * ``separation`` — one row per (track, system, stem): ``dataset, song, system, stem, offset_seconds,
      seconds, compute_seconds, rtf`` and the BSS-eval metrics;
    * ``tokens`` — one row per (track, stream): ``dataset, song, stream`` and :data:`TOKEN_STATS`;
    * ``reconstruction`` — one row per (track, track of the codec): ``dataset, song, track`` and metrics;
    * ``failures`` — ``dataset, song, path, stage`` (``load``, ``separation:<system>``, ``tokens``,
      ``reconstruction``), ``error``; ``skipped`` — sub-folders that are not tracks;
    * ``summaries`` — per side (:func:`summarize_domain_gap`): means over the rows above;
    * ``examples`` — audio of the first scored tracks of each side, for players (never written to disk).
    """

    settings: dict[str, Any]
    datasets: dict[str, dict[str, Any]]
    tracks: list[dict[str, Any]] = field(default_factory=list)
    separation: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    reconstruction: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """No failure anywhere (``duotok domain-gap`` exits 1 otherwise)."""
        return not self.failures

    def frame(self, view: str) -> pd.DataFrame:
        """The rows of ``view`` (one of :data:`VIEWS`, ``tracks``, ``failures``, ``skipped``) as a DataFrame."""
        import pandas as pd

        if view not in (*VIEWS, "tracks", "failures", "skipped"):
            raise ValueError(f"unknown view {view!r}; choose from {(*VIEWS, 'tracks', 'failures', 'skipped')}")
        return pd.DataFrame(getattr(self, view))

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``examples`` left out; NaN and infinities as ``null``: JSON has neither)."""
        return json_safe({"format": RECORD_FORMAT, "version": RECORD_VERSION, "settings": self.settings,
                          "datasets": self.datasets, "summaries": self.summaries, "tracks": self.tracks,
                          "separation": self.separation, "tokens": self.tokens,
                          "reconstruction": self.reconstruction, "failures": self.failures,
                          "skipped": self.skipped})


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, paths as strings and non-finite floats as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------- scoring one track


def _fail(result: DomainGapResult, track: TrackSource, stage: str, exc: BaseException) -> None:
    result.failures.append({"dataset": track.dataset, "song": track.song, "path": str(track.path),
                            "stage": stage, "error": str(exc)})


def _score_separation(result: DomainGapResult, track: TrackSource, excerpt: StemExcerpt, models: LoadedModels,
                      metrics: Sequence[str], example: dict[str, Any] | None) -> None:
    from duotok.separation.base import STEMS
    from duotok.separation.evaluate import run_separator, score_excerpt

    rate = models.sample_rate
    seconds = excerpt.n_samples / rate
    for name, separator in models.separators.items():
        try:
            estimates, elapsed = run_separator(separator, excerpt)
            rows = score_excerpt(excerpt, estimates, rate, metrics)
        except _PER_TRACK_ERRORS as exc:
            _fail(result, track, f"separation:{name}", exc)
            continue
        info = {"dataset": track.dataset, "song": track.song, "system": name,
                "offset_seconds": excerpt.offset_seconds, "seconds": seconds, "compute_seconds": elapsed,
                "rtf": elapsed / seconds}
        result.separation += [{**info, **row} for row in rows]
        if example is not None:
            example["separated"][name] = dict(zip(STEMS, estimates, strict=True))


def _score_tokens(result: DomainGapResult, track: TrackSource, excerpt: StemExcerpt, models: LoadedModels,
                  source: str, pooled: dict[tuple[str, str], list[Any]]) -> None:
    from duotok.codecs.duotok import DuoTokCodec
    from duotok.eval.corpus_tokens import encode_song
    from duotok.reporting.verdicts import codebook_usage, unigram_entropy_rate

    codec = DuoTokCodec(models.codec)
    try:
        ids = encode_song(codec, {"mixture": excerpt.mixture, "stems": excerpt.stems}, source).long().cpu().numpy()
        rows = []
        for (stream, rows_of), size in zip(codec.streams.items(), codec.codebook_sizes, strict=True):
            codes = ids[list(rows_of)]
            usage = codebook_usage(codes, size)
            rows.append({"dataset": track.dataset, "song": track.song, "stream": stream, **usage,
                         "entropy_rate_bps": unigram_entropy_rate(codes, codec.frame_rate, size)})
            pooled.setdefault((track.dataset, stream), []).append(codes.ravel())
    except _PER_TRACK_ERRORS as exc:
        _fail(result, track, "tokens", exc)
        return
    result.tokens += rows


def _score_reconstruction(result: DomainGapResult, track: TrackSource, excerpt: StemExcerpt, models: LoadedModels,
                          metrics: Sequence[str], example: dict[str, Any] | None) -> None:
    from duotok.data.latents import stem_tracks
    from duotok.eval.roundtrip import Excerpt, codec_system, score_system

    vocal, accompaniment = stem_tracks(excerpt.stems)
    tracks = Excerpt(excerpt.song_id, excerpt.offset_seconds, vocal, accompaniment, excerpt.mixture)
    system = codec_system(models.codec, "oracle")
    kept: dict[str, Any] = {}

    def keep(ex: Excerpt) -> dict[str, Any]:
        kept.update(system(ex))
        return kept

    try:
        scores = score_system("Duo-Tok", keep, [tracks], models.sample_rate, metrics)
    except _PER_TRACK_ERRORS as exc:
        _fail(result, track, "reconstruction", exc)
        return
    for row in scores.to_dict("records"):
        row.pop("system", None)
        row.pop("song", None)
        result.reconstruction.append({"dataset": track.dataset, "song": track.song, **row})
    if example is not None:
        example["tracks"] = {"vocal": vocal, "accompaniment": accompaniment, "mixture": excerpt.mixture}
        example["reconstructed"] = kept


def _score_track(result: DomainGapResult, track: TrackSource, models: LoadedModels, settings: Mapping[str, Any],
                 pooled: dict[tuple[str, str], list[Any]], keep_example: bool) -> None:
    from duotok.separation.base import STEMS

    row: dict[str, Any] = {"dataset": track.dataset, "song": track.song, "split": track.split,
                           "path": str(track.path), "status": "failed", "offset_seconds": None, "seconds": None,
                           "notes": []}
    result.tracks.append(row)
    try:
        excerpt, notes = track_excerpt(track, settings["excerpt_seconds"], models.sample_rate)
    except _PER_TRACK_ERRORS as exc:
        _fail(result, track, "load", exc)
        return
    row.update(offset_seconds=excerpt.offset_seconds, seconds=excerpt.n_samples / models.sample_rate, notes=notes)
    n_failures = len(result.failures)
    example = None
    if keep_example:
        example = {"dataset": track.dataset, "song": track.song, "sample_rate": models.sample_rate,
                   "offset_seconds": excerpt.offset_seconds, "mixture": excerpt.mixture,
                   "stems": dict(zip(STEMS, excerpt.stems, strict=True)), "separated": {}}
    views = settings["views"]
    if "separation" in views:
        _score_separation(result, track, excerpt, models, settings["separation_metrics"], example)
    if "tokens" in views:
        _score_tokens(result, track, excerpt, models, settings["token_source"], pooled)
    if "reconstruction" in views:
        _score_reconstruction(result, track, excerpt, models, settings["reconstruction_metrics"], example)
    row["status"] = "ok" if len(result.failures) == n_failures else "partial"
    if example is not None:
        result.examples.append(example)


# --------------------------------------------------------------------------- summaries


def summarize_domain_gap(result: DomainGapResult,
                         pooled: Mapping[tuple[str, str], Sequence[Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per side (``folder``, ``corpus``)::

        {"tracks": {"found", "considered", "ok", "partial", "failed"},
         "separation": {system: duotok.separation.evaluate.summarize(...)},   # per stem mean/median/n over tracks
         "tokens": {stream: {stat: {"mean", "median", "n"}}},                 # over tracks
         "tokens_pooled": {stream: codebook usage and bits/s of all the side's tokens together},
         "reconstruction": {track: {metric: {"mean", "median", "n"}}}}        # over tracks

    The means are plain means over the per-track rows (NaN — a silent stem, a metric undefined on a silent
    reference — skipped, ``n`` counts what is left), computed by the functions the separation and
    reconstruction tables use. ``tokens_pooled`` is not a mean: it is how much of the codebook a whole side
    uses, which a per-track mean of ~250 tokens cannot show."""
    import pandas as pd

    from duotok.eval.reconstruction import summarize_metrics
    from duotok.reporting.verdicts import codebook_usage, unigram_entropy_rate
    from duotok.separation.evaluate import summarize

    out: dict[str, dict[str, Any]] = {}
    frame_rate = result.settings.get("frame_rate")
    sizes = dict(zip(("vocal", "accompaniment"), result.settings.get("codebook_sizes") or (), strict=False))
    for dataset, info in result.datasets.items():
        statuses = [t["status"] for t in result.tracks if t["dataset"] == dataset]
        summary: dict[str, Any] = {"tracks": {"found": info.get("found", len(statuses)), "considered": len(statuses),
                                              **{s: statuses.count(s) for s in ("ok", "partial", "failed")}}}
        sep = pd.DataFrame([r for r in result.separation if r["dataset"] == dataset])
        summary["separation"] = {str(system): summarize(group.reset_index(drop=True))
                                 for system, group in sep.groupby("system", sort=False)} if not sep.empty else {}
        tokens = [r for r in result.tokens if r["dataset"] == dataset]
        streams = list(dict.fromkeys(r["stream"] for r in tokens))
        summary["tokens"] = {s: summarize_metrics([{k: r[k] for k in TOKEN_STATS} for r in tokens if r["stream"] == s])
                             for s in streams}
        summary["tokens_pooled"] = {}
        for stream in streams:
            codes = list((pooled or {}).get((dataset, stream), []))
            if codes and frame_rate and stream in sizes:
                summary["tokens_pooled"][stream] = {
                    **codebook_usage(codes, int(sizes[stream])),
                    "entropy_rate_bps": unigram_entropy_rate(codes, frame_rate, int(sizes[stream]))}
        recon = [r for r in result.reconstruction if r["dataset"] == dataset]
        metrics = [m for m in result.settings.get("reconstruction_metrics", ()) if any(m in r for r in recon)]
        tracks = list(dict.fromkeys(r["track"] for r in recon))
        summary["reconstruction"] = {t: summarize_metrics([{m: r[m] for m in metrics} for r in recon
                                                           if r["track"] == t]) for t in tracks}
        out[dataset] = summary
    return out


# --------------------------------------------------------------------------- the whole job


def compute_domain_gap(
    folder: str | os.PathLike[str],
    models_dir: str | os.PathLike[str] = "models",
    reference_root: str | os.PathLike[str] = "data",
    *,
    systems: Sequence[str] | Mapping[str, Separator] = DEFAULT_SYSTEMS,
    max_tracks: int = DEFAULT_MAX_TRACKS,
    excerpt_seconds: float = DEFAULT_EXCERPT_SECONDS,
    reference_split: str = "test",
    splits: Sequence[str] | None = None,
    views: Sequence[str] = VIEWS,
    separation_metrics: Sequence[str] = DEFAULT_SEPARATION_METRICS,
    reconstruction_metrics: Sequence[str] = DEFAULT_RECONSTRUCTION_METRICS,
    token_source: str = "oracle",
    profile: str | None = None,
    examples: int = 0,
    progress: bool = False,
    models: LoadedModels | None = None,
) -> DomainGapResult:
    """Score the first ``max_tracks`` tracks of ``folder`` (MUSDB18-HQ layout, or a duosynth corpus; the
    splits in ``splits``, default all) and of ``reference_root``'s ``reference_split`` with the models of
    ``models_dir`` (see :data:`MODEL_LAYOUT`), each on its centre ``excerpt_seconds``, in every view of
    ``views``; see the module docstring. Paths are taken as given (relative to the current folder).

    ``systems``: names from ``duotok separate``'s registry plus ``oracle``, or ready-made separators
    ``{name: separator}``. ``token_source``: ``oracle`` (the true stems, default) or ``separated`` (the
    mixture through the mask head). ``profile``: whose ``params.yaml`` settings the token-LM sampling and
    the oracle's STFT read. ``examples``: keep the audio of the first that many scored tracks of each side
    in ``result.examples``. ``models``: already loaded models (:func:`load_models`) instead of
    ``models_dir`` / ``systems``.

    Per-track problems are reported in the result (``failures``, the tracks' ``status``); only problems
    with the whole job raise: a folder without tracks, a model that does not load, bad arguments."""
    from tqdm.auto import tqdm

    from duotok.eval.corpus_tokens import SOURCES as TOKEN_SOURCES
    from duotok.eval.reconstruction import METRICS as RECONSTRUCTION_METRICS
    from duotok.separation.evaluate import METRICS as SEPARATION_METRICS

    views = _check_views(views)
    if isinstance(max_tracks, bool) or not isinstance(max_tracks, int) or max_tracks < 1:
        raise ValueError(f"max_tracks must be an integer >= 1, got {max_tracks!r}")
    if not (isinstance(excerpt_seconds, (int, float)) and math.isfinite(excerpt_seconds) and excerpt_seconds > 0):
        raise ValueError(f"excerpt_seconds must be a finite number > 0, got {excerpt_seconds!r}")
    if token_source not in TOKEN_SOURCES:
        raise ValueError(f"token_source must be one of {TOKEN_SOURCES}, got {token_source!r}")
    separation_metrics = _check_metrics(separation_metrics, SEPARATION_METRICS, "separation")
    reconstruction_metrics = _check_metrics(reconstruction_metrics, RECONSTRUCTION_METRICS, "reconstruction")
    sides = {FOLDER: find_tracks(folder, FOLDER, splits),
             CORPUS: find_tracks(reference_root, CORPUS, [reference_split])}
    if models is None:
        models = load_models(models_dir, systems, views, profile)
    elif models.codec is None and ("tokens" in views or "reconstruction" in views):
        raise ValueError("the tokens and reconstruction views need the Duo-Tok codec; the models given have none")
    settings: dict[str, Any] = {
        "folder": str(folder), "reference_root": str(reference_root), "reference_split": reference_split,
        "models_dir": str(models_dir), "models": dict(models.paths), "systems": list(models.separators),
        "views": list(views), "max_tracks": max_tracks, "excerpt_seconds": float(excerpt_seconds),
        "excerpt_rule": "centre crop (duotok.eval.roundtrip.held_out_excerpts)",
        "separation_metrics": list(separation_metrics), "reconstruction_metrics": list(reconstruction_metrics),
        "token_source": token_source, "sample_rate": models.sample_rate, "profile": profile,
        "frame_rate": float(models.codec.frame_rate) if models.codec is not None else None,
        "codebook_sizes": list(models.codec.codebook_sizes) if models.codec is not None else None,
    }
    datasets = {side: {"root": str(folder if side == FOLDER else reference_root),
                       "layout": tracks[0].layout, "splits": list(dict.fromkeys(t.split for t in tracks)),
                       "found": len(tracks), "considered": min(len(tracks), max_tracks)}
                for side, (tracks, _) in sides.items()}
    result = DomainGapResult(settings, datasets, skipped=[s for _, skipped in sides.values() for s in skipped])
    pooled: dict[tuple[str, str], list[Any]] = {}
    for side, (tracks, _) in sides.items():
        kept = 0
        for track in tqdm(tracks[:max_tracks], desc=f"domain gap: {side}", unit="track", disable=not progress):
            _score_track(result, track, models, settings, pooled, keep_example=kept < examples)
            if result.tracks[-1]["status"] != "failed":
                kept += 1
    result.summaries = summarize_domain_gap(result, pooled)
    return result


def _check_metrics(metrics: Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    metrics = tuple(m for m in metrics.split(",") if m) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        raise ValueError(f"unknown {what} metric(s) {unknown}; choose from {tuple(known)}" if unknown else
                         f"no {what} metrics requested; choose from {tuple(known)}")
    return metrics


def write_domain_gap(result: DomainGapResult | Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``domain_gap.json``, ``domain_gap.md`` and ``domain_gap.png`` into ``out_dir`` (see
    :func:`duotok.reporting.domain_gap.write_domain_gap`: everything is rendered first, then each file
    replaced atomically)."""
    from duotok.reporting.domain_gap import write_domain_gap as write

    return write(result, out_dir)


# --------------------------------------------------------------------------- the command


def _comma_list(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def _positive(kind: type, what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


def _add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("folder", help="folder of real music in the MUSDB18-HQ layout: <folder>/{train,test}/<track>/"
                                  "{mixture,vocals,drums,bass,other}.wav, or <folder>/<track>/... (any rate, mono "
                                  "or stereo: converted)")
    p.add_argument("--models", help="the pipeline's models folder (default: models/ of the project, found from "
                                    "anywhere; a path you type is relative to the current folder)")
    p.add_argument("--out", help="output folder for domain_gap.{json,md,png} (default: reports/domain_gap of the "
                                 "project)")
    p.add_argument("--reference", help="the generated corpus compared with (default: data/ of the project)")
    p.add_argument("--reference-split", default="test", help="corpus split (default: test, never seen in training)")
    p.add_argument("--systems", type=_comma_list, default=list(DEFAULT_SYSTEMS),
                   help=f"separators, comma-separated: mask-head, openunmix, token-lm, and the bound oracle "
                        f"(default: {','.join(DEFAULT_SYSTEMS)})")
    p.add_argument("--views", type=_comma_list, default=list(VIEWS),
                   help=f"what to compute, comma-separated (default: {','.join(VIEWS)})")
    p.add_argument("--max-tracks", type=_positive(int, "an integer >= 1"), default=DEFAULT_MAX_TRACKS,
                   help=f"tracks per side (default: {DEFAULT_MAX_TRACKS}; MUSDB's test split first)")
    p.add_argument("--seconds", type=_positive(float, "a finite number > 0"), default=DEFAULT_EXCERPT_SECONDS,
                   help=f"excerpt per track: its centre this many seconds (default: {DEFAULT_EXCERPT_SECONDS:g})")
    p.add_argument("--separation-metrics", type=_comma_list, default=list(DEFAULT_SEPARATION_METRICS),
                   help=f"per-stem separation metrics: sdr, sir, sar (museval), mel_l1, pesq, stoi, visqol "
                        f"(default: {','.join(DEFAULT_SEPARATION_METRICS)})")
    p.add_argument("--metrics", type=_comma_list, default=list(DEFAULT_RECONSTRUCTION_METRICS),
                   help=f"reconstruction metrics (default: {','.join(DEFAULT_RECONSTRUCTION_METRICS)})")
    p.add_argument("--profile", help="params.yaml profile for the token-LM sampling and the oracle's STFT "
                                     "(default: params.yaml's)")
    p.add_argument("--threads", type=_positive(int, "an integer >= 1"), help="torch CPU threads")
    p.set_defaults(func=cmd_domain_gap)
    return p


def add_domain_gap_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``domain-gap`` to ``duotok``'s sub-commands (``func=cmd_domain_gap``); importing this module
    does not import torch, so ``duotok --help`` stays fast."""
    p = subparsers.add_parser("domain-gap", help="score the trained models on a MUSDB18-HQ-layout folder of real "
                                                 "music beside the generated corpus (separation, tokens, "
                                                 "reconstruction)")
    return _add_arguments(p)


def _print_report(result: DomainGapResult, written: Mapping[str, Path]) -> int:
    for side, summary in result.summaries.items():
        t = summary["tracks"]
        print(f"{side}: {t['considered']} of {t['found']} track(s) scored — {t['ok']} ok, {t['partial']} partial, "
              f"{t['failed']} failed")
    for path in written.values():
        print(f"wrote {path}")
    for skipped in result.skipped:
        print(f"duotok: note: skipped {skipped['path']}: {skipped['reason']}", file=sys.stderr)
    for failure in result.failures:
        print(f"duotok: error: {failure['dataset']} track {failure['song']!r} ({failure['stage']}): "
              f"{failure['error']}", file=sys.stderr)
    if result.failures:
        tracks = {(f["dataset"], f["song"]) for f in result.failures}
        print(f"duotok: error: {len(result.failures)} problem(s) in {len(tracks)} track(s) (listed above); "
              "every other track was scored", file=sys.stderr)
        return 1
    return 0


def cmd_domain_gap(args: argparse.Namespace) -> int:
    """``duotok domain-gap FOLDER``: exit 0 when every track was scored in every view, 1 when some track
    failed (each named on stderr, the others in the report); whole-job problems raise."""
    from duotok.io.files import check_writable, remove_stale_temp_files
    from duotok.paths import resolve

    out = Path(args.out).expanduser() if args.out else resolve("reports/domain_gap")
    if out.is_dir():
        remove_stale_temp_files(out)          # temp files of an interrupted run (duotok.io.files)
    check_writable(out)                       # before minutes of model work
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    models = Path(args.models).expanduser() if args.models else resolve("models")
    reference = Path(args.reference).expanduser() if args.reference else resolve("data")
    result = compute_domain_gap(Path(args.folder).expanduser(), models, reference, systems=args.systems,
                                max_tracks=args.max_tracks, excerpt_seconds=args.seconds,
                                reference_split=args.reference_split, views=args.views,
                                separation_metrics=args.separation_metrics,
                                reconstruction_metrics=args.metrics, profile=args.profile,
                                progress=sys.stderr.isatty())
    return _print_report(result, write_domain_gap(result, out))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m duotok.eval.domain_gap FOLDER ...`` (what ``duotok domain-gap`` runs): exit 0 / 1 as
    :func:`cmd_domain_gap`, 2 with ``duotok: error: ...`` for a problem with the whole job."""
    from duotok.cli import main as duotok_main

    return duotok_main(["domain-gap", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
