"""The systems of the separation evaluation (issue 19), each loaded from what the pipeline trained and
wrapped so :func:`duotok.separation.evaluate.score_separator` treats them alike.

| key | kind | what it is |
|---|---|---|
| ``mask_head`` | discriminative | the stage-2 model's four-stem mask head (``separation.mask_head``) |
| ``openunmix`` | discriminative | the Open-Unmix-style BiLSTM (``models/separation/openunmix``) |
| ``generative`` | generative | the token-LM separator at the full budget (``models/separation/generative``) |
| ``variant:NAME`` | generative | an ablation of it at the ablation budget, one model per training seed |
| ``ceiling`` | bound | the codec ceiling: the TRUE stems' first K codebooks, decoded — what a perfect token generator would reach |
| ``oracle`` | bound | the ideal ratio mask from the true stems — what a perfect mask would reach |

The two bounds read the references (``needs_references``); they bound the two families from above and
are not systems one could run on a new song. Why both: the generative system's gap to the ceiling is
its language model's error and the ceiling's gap to the truth is the codec's; a mask system's gap to
the oracle is its mask's error and the oracle's own error is the mixture-phase STFT's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from duotok.codecs.rvq import RVQCodecModel
from duotok.config import Params, as_params
from duotok.paths import resolve
from duotok.separation.base import STEMS, Separator, check_stems
from duotok.separation.chunking import separate_long
from duotok.separation.generative import TokenLMSeparator
from duotok.separation.mask_separators import MaskHeadSeparator, OracleMaskSeparator, stem_matrix
from duotok.separation.openunmix import OpenUnmixSeparator
from duotok.separation.predict import resolve_chunking
from duotok.separation.stem_tokens import decode_stems, encode_stems
from duotok.train.separation import ablation_seeds, load_separation_variants, system_dir

KINDS: tuple[str, ...] = ("discriminative", "generative", "bound")


@dataclass(frozen=True)
class SystemSpec:
    """One row group of the separation table: its ``key`` (file names, metrics), a ``label`` for
    people, its ``kind`` (:data:`KINDS`), the training seeds it has (one model each; ``[]`` for the
    untrained oracle) and how many test excerpts it is scored on."""

    key: str
    label: str
    kind: str
    description: str
    seeds: list[int] = field(default_factory=lambda: [0])
    n_songs: int | None = None


class NamedSeparator:
    """A separator under another ``name`` (the evaluation's ``system`` column), everything else forwarded,
    including the bounds' ``needs_references`` / ``separate_with_references``."""

    def __init__(self, separator: Separator, name: str):
        self.inner = separator
        self.name = name
        self.needs_references = bool(getattr(separator, "needs_references", False))

    @property
    def sample_rate(self) -> int:
        return int(self.inner.sample_rate)

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.inner.separate(mixture)

    def separate_with_references(self, mixture: torch.Tensor, stems: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.inner.separate_with_references(mixture, stems)  # type: ignore[attr-defined]


class ChunkedSeparator:
    """A separator that only takes mixtures up to ``chunk_seconds`` (the token LM's ``max_frames``), run
    on longer ones in crossfaded chunks (:func:`~duotok.separation.chunking.separate_long`, the path
    ``duotok separate`` takes); a mixture no longer than one chunk goes through in one call."""

    def __init__(self, separator: Separator, chunk_seconds: float, overlap_seconds: float | None = None):
        self.inner = separator
        self.name = getattr(separator, "name", type(separator).__name__)
        self.chunk_seconds, self.overlap_seconds = resolve_chunking(separator, chunk_seconds, overlap_seconds)

    @property
    def sample_rate(self) -> int:
        return int(self.inner.sample_rate)

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        return separate_long(self.inner, mixture, self.chunk_seconds, self.overlap_seconds)


class CodecCeilingSeparator:
    """The codec ceiling as a bound: the TRUE stems encoded with the codec's first ``n_codebooks``
    codebooks and decoded (:func:`~duotok.separation.stem_tokens.encode_stems` /
    :func:`~duotok.separation.stem_tokens.decode_stems`). It reads the answers, so :meth:`separate`
    refuses, as the oracle mask's does."""

    needs_references = True

    def __init__(self, codec: RVQCodecModel, n_codebooks: int):
        self.codec = codec.eval()
        self.n_codebooks = int(n_codebooks)
        self.name = f"codec ceiling (true stems, K={self.n_codebooks})"

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        raise TypeError(f"{self.name} is a bound computed from the true stems: call separate_with_references")

    @torch.inference_mode()
    def separate_with_references(self, mixture: torch.Tensor | np.ndarray,
                                 stems: Mapping[str, torch.Tensor] | torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
        n = int(torch.as_tensor(mixture).numel())
        refs = stem_matrix(stems, n)
        audio = decode_stems(self.codec, encode_stems(self.codec, refs, self.n_codebooks), n)
        return check_stems(dict(zip(STEMS, audio, strict=True)), n, self.name)


# --------------------------------------------------------------------------- what is evaluated


def _trained_model(params: Params, system: str, seed: int | None = None) -> Path:
    return system_dir(system, params, seed=seed) / "model"


def training_info(params: Params | str | None, system: str, seed: int | None = None) -> dict[str, Any] | None:
    """The ``result.json`` a trained system left beside its model (steps, seconds, parameters,
    seconds per step), or None for systems this stage family did not train (mask head, bounds)."""
    if system in ("mask_head", "ceiling", "oracle"):
        return None
    path = _trained_model(as_params(params), system, seed).parent / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def evaluation_plan(params: Params | str | None = None) -> list[SystemSpec]:
    """Every system of the separation table, in table order: the discriminative systems, the generative
    one, its ablations (``separation.variants``, each on ``ablation.eval.n_songs`` excerpts with every seed
    of ``ablation.seeds``), then the two bounds."""
    params = as_params(params)
    s = params.section("separation")
    seeds = ablation_seeds(params)
    n_variant_songs = int((s.get("ablation", {}).get("eval") or {}).get("n_songs", s["eval"]["n_songs"]))
    plan = [
        SystemSpec("mask_head", "stage-2 mask head", "discriminative",
                   "Duo-Tok's stage-2 four-stem mask head (softmax ratio masks, mixture phase)"),
        SystemSpec("openunmix", "Open-Unmix-style", "discriminative",
                   "one 4-stem BiLSTM over the mixture spectrogram, sigmoid masks, mixture phase"),
        SystemSpec("generative", "generative (token LM)", "generative",
                   "stem tokens generated one stem after another by a token LM, decoded by the RVQ codec"),
    ]
    for name, variant in load_separation_variants(params).items():
        plan.append(SystemSpec(f"variant:{name}", f"ablation: {name}", "generative", variant.description,
                               seeds, n_variant_songs))
    k = int(s["generative"]["model"]["n_codebooks"])
    plan += [
        SystemSpec("ceiling", f"codec ceiling (K={k})", "bound",
                   f"the true stems through the codec's first {k} codebooks: a perfect token generator"),
        SystemSpec("oracle", "oracle ratio mask", "bound",
                   "the ideal ratio mask from the true stems (mask head's STFT grid): a perfect mask", []),
    ]
    return plan


def generation_chunk_seconds(config: Any, trained_seconds: float) -> float:
    """How long one generated sequence may be: the crop length the LM was trained on
    (``generative.segment_seconds``), capped by the model's ``max_frames``.

    Why not ``max_frames``: an LM trained on 2-s crops and asked for 10 s leaves its training
    distribution — past a few seconds a stem drifts into noise or silence. Measured on the default
    model (validation excerpts, 10 s each, toolkit Mel L1 mean over stems; scripts/diag/separation_chunks.py):
    10-s sequences 3.03 / 3.18, 2-s chunks crossfaded 2.43 / 2.55 (4 excerpts sampling seed 0 / 8
    excerpts sampling seed 1), every stem better."""
    longest = config.max_frames * config.hop_length / config.sample_rate
    if not trained_seconds > 0:
        raise ValueError(f"trained_seconds must be > 0, got {trained_seconds}")
    return min(float(trained_seconds), longest)


def load_generative(params: Params | str | None = None, system: str = "generative", seed: int | None = None,
                    **sampling: Any) -> ChunkedSeparator:
    """A trained generative separator (the main model or ``variant:NAME`` of training ``seed``) with the
    sampling of ``generative.sampling`` (``sampling`` overrides it: ``temperature=0`` is greedy), run in
    crossfaded chunks of the length it was trained on (:func:`generation_chunk_seconds`)."""
    params = as_params(params)
    g = params.section("separation")["generative"]
    settings = {**g["sampling"], **sampling}
    separator = TokenLMSeparator.from_pretrained(_trained_model(params, system, seed), resolve(g["codec_dir"]),
                                                 temperature=float(settings["temperature"]),
                                                 top_k=int(settings["top_k"]), top_p=float(settings["top_p"]),
                                                 seed=int(settings["seed"]))
    return ChunkedSeparator(separator, generation_chunk_seconds(separator.model.config, float(g["segment_seconds"])))


def load_system(spec: SystemSpec, params: Params | str | None = None, seed: int | None = None) -> NamedSeparator:
    """The separator of ``spec`` (for ``variant:`` systems, the model of training ``seed``), named by its key."""
    params = as_params(params)
    s = params.section("separation")
    if spec.key == "mask_head":
        separator: Any = MaskHeadSeparator.from_pretrained(resolve(s["mask_head"]))
    elif spec.key == "openunmix":
        separator = OpenUnmixSeparator.from_pretrained(_trained_model(params, "openunmix"))
    elif spec.key == "generative" or spec.key.startswith("variant:"):
        separator = load_generative(params, spec.key, seed)
    elif spec.key == "ceiling":
        codec = RVQCodecModel.from_pretrained(resolve(s["generative"]["codec_dir"]))
        separator = CodecCeilingSeparator(codec, int(s["generative"]["model"]["n_codebooks"]))
    elif spec.key == "oracle":
        o = s["oracle"]
        separator = OracleMaskSeparator(int(params.section("audio")["sample_rate"]), n_fft=int(o["n_fft"]),
                                        hop=int(o["hop"]), power=float(o["power"]))
    else:
        raise ValueError(f"unknown separation system {spec.key!r}")
    return NamedSeparator(separator, spec.key)
