"""Load any codec of the comparison by name, from the folders ``params.yaml`` names.

``duotok`` is the complete stage-4 codec (``models/codec``); the baselines live in
``models/baselines/<name>/model`` (``duotok train baselines``); ``opus`` needs only ffmpeg. The
stem-stream baselines get Duo-Tok's separator, so on a mixture every dual-track codec starts from the
same separated stems.
"""

from __future__ import annotations

from pathlib import Path

from duotok.codecs.base import Codec, Reconstructor
from duotok.codecs.duotok import DuoTokCodec
from duotok.codecs.feature_tokenizer import FeatureTokenizer
from duotok.codecs.opus import OpusCodec
from duotok.codecs.rvq import RVQCodecModel
from duotok.config import Params, as_params
from duotok.errors import CheckpointError
from duotok.paths import resolve
from duotok.tokenizer.model import DuoTok

TOKEN_CODECS = ("duotok", "rvq", "mixture_vq", "mucodec", "kmeans")
ALL_CODECS = (*TOKEN_CODECS, "opus")


def _checkpoint(path: Path, what: str, stage: str) -> Path:
    if not (path / "config.json").is_file():
        raise CheckpointError(path, f"no {what} here: run `dvc repro {stage}` first")
    return path


def codec_dir(name: str, params: Params | str | None = None) -> Path:
    """Where codec ``name``'s model lives (``params``: the caller's resolved params, or a profile name)."""
    p = as_params(params).section("baselines")["data"]
    if name == "duotok":
        return resolve(p["duotok"])
    return resolve(p["out_dir"]) / name / "model"


def load_codec(name: str, params: Params | str | None = None, device: str = "cpu") -> Codec | Reconstructor:
    """A codec of :data:`ALL_CODECS`, in eval mode (``params``: the caller's resolved params, or a profile
    name, read here)."""
    if name not in ALL_CODECS:
        raise ValueError(f"unknown codec {name!r}; known: {ALL_CODECS}")
    params = as_params(params)
    if name == "opus":
        return OpusCodec(float(params.section("baselines")["opus"]["kbps"]),
                         int(params.section("audio")["sample_rate"]))
    duotok_path = _checkpoint(codec_dir("duotok", params), "Duo-Tok codec", "decoder")
    if name == "duotok":
        return DuoTokCodec(DuoTok.from_pretrained(duotok_path).to(device))
    path = _checkpoint(codec_dir(name, params), f"{name} baseline", f"baseline@{name}")
    if name == "rvq":
        return RVQCodecModel.from_pretrained(path).to(device).eval()
    tokenizer = FeatureTokenizer.from_pretrained(path).to(device).eval()
    if "mixture" not in tokenizer.streams:
        tokenizer.with_separator(DuoTokCodec(DuoTok.from_pretrained(duotok_path).to(device)).separate)
    return tokenizer
