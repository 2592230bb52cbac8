"""The separation evaluation of issue 19 (notebook ``09_separation``): every system of
:func:`~duotok.separation.systems.evaluation_plan` scored on the same test excerpts, the temperature
curve of the generative model on validation excerpts, and the metrics record
(``reports/metrics/separation.json``) the report is built from.

Protocol (written into the record, so a reader never has to guess it): the centre ``eval.seconds`` of
the first ``eval.n_songs`` test songs (:func:`~duotok.separation.evaluate.stem_excerpts`); museval
SDR / SIR / SAR over 1-s frames, the median over a track's frames, then the mean and the median over
tracks per stem; the toolkit's Mel L1 and ViSQOL (audio mode) per stem; averages over the four stems of
the per-stem values (SiSEC); the real-time factor on ``eval.threads`` torch threads. Ablation variants
are scored on the first ``ablation.eval.n_songs`` of the same excerpts, once per training seed.

Per song and training seed, the mean over stems of each metric is kept too (``per_song_by_seed``):
it is what a seed-and-song verdict (:func:`duotok.reporting.verdicts.seed_and_song_verdict`) needs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch

from duotok.config import Params, as_params
from duotok.eval.published_separation import SOURCE as PUBLISHED_SOURCE
from duotok.eval.published_separation import VISQOL_MEAN_OVER_STEMS
from duotok.paths import resolve
from duotok.separation.base import STEMS
from duotok.separation.evaluate import StemExcerpt, run_separator, score_separator, stem_excerpts, summarize
from duotok.separation.systems import SystemSpec, load_generative, load_system, training_info

PROTOCOL_NOTE = ("museval BSS-eval over 1-s frames, median over a track's frames, then mean and median over "
                 "tracks per stem (the four stems evaluated together); toolkit Mel L1 and ViSQOL (audio mode, "
                 "48 kHz) per stem; averages are over the four stems of the per-stem values; rtf = separator "
                 "compute seconds per second of audio")


def set_threads(threads: int) -> int:
    """Torch intra-op threads for the evaluation (``eval.threads``; 0 keeps torch's default); returns
    what torch uses. The training runs set 1 thread, and a real-time factor means nothing without its
    thread count."""
    if threads and threads > 0:
        torch.set_num_threads(int(threads))
    return int(torch.get_num_threads())


def jsonable(obj: Any) -> Any:
    """NaN / inf → None (JSON has no NaN), numpy scalars → Python, tuples → lists, recursively."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def per_song_means(scores: pd.DataFrame, metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{song: {metric: mean over its stems}}``; a stem without a value (a silent reference has no
    SDR and no ViSQOL) is left out of its song's mean."""
    present = [m for m in metrics if m in scores.columns]
    out: dict[str, dict[str, float]] = {}
    for song, group in scores.groupby("song", sort=False):
        out[str(song)] = {m: float(np.nanmean(group[m].to_numpy(dtype=float))) if group[m].notna().any()
                          else float("nan") for m in present}
    return out


def eval_settings(params: Params | str | None = None) -> dict[str, Any]:
    """``separation.eval`` with the data root resolved: split, n_songs, seconds, metrics, threads."""
    s = as_params(params).section("separation")
    e = dict(s["eval"])
    return {**e, "root": str(resolve(s["data"]["root"])), "metrics": list(e["metrics"])}


def score_system(spec: SystemSpec, params: Params | str | None = None, data_dir: str | os.PathLike[str] | None = None,
                 progress: bool = False) -> dict[str, Any]:
    """Score one system on the test excerpts, every training seed of it (one trained model each).

    Returns ``{"spec", "scores" (one row per seed, song and stem, with a ``seed`` column), "summary"
    (:func:`~duotok.separation.evaluate.summarize` of all rows), "per_song_by_seed", "rtf",
    "train"}``."""
    params = as_params(params)
    e = eval_settings(params)
    root = resolve(data_dir) if data_dir is not None else e["root"]
    n_songs = int(spec.n_songs or e["n_songs"])
    parts, per_seed, train = [], {}, {}
    compute = audio = 0.0
    for seed in spec.seeds or [None]:
        separator = load_system(spec, params, seed)
        scores = score_separator(separator, root, e["split"], n_songs, float(e["seconds"]), e["metrics"],
                                 progress=progress)
        compute += scores.attrs["compute_seconds"]
        audio += scores.attrs["audio_seconds"]
        key = 0 if seed is None else int(seed)
        per_seed[key] = per_song_means(scores, e["metrics"])
        train[key] = training_info(params, spec.key, seed)
        parts.append(scores.assign(seed=key))
    scores = pd.concat(parts, ignore_index=True)
    scores.attrs.update({"system": spec.key, "rtf": compute / audio, "compute_seconds": compute,
                         "audio_seconds": audio})
    return {"spec": spec, "scores": scores, "summary": summarize(scores), "per_song_by_seed": per_seed,
            "rtf": compute / audio, "train": train}


def system_record(result: Mapping[str, Any]) -> dict[str, Any]:
    """What ``separation.json`` keeps of :func:`score_system`'s result (no per-row table)."""
    spec: SystemSpec = result["spec"]
    summary = result["summary"]
    train = {seed: _train_fields(info) for seed, info in result["train"].items() if info is not None}
    return {"label": spec.label, "kind": spec.kind, "description": spec.description,
            "training_seeds": sorted(result["per_song_by_seed"]) if spec.seeds else [],
            "n_songs": summary["n_songs"], "rtf": result["rtf"],
            "stems": summary["stems"], "average": summary["average"],
            "per_song_by_seed": result["per_song_by_seed"], "train": train or None}


def _train_fields(info: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("steps", "seconds", "train_seconds", "seconds_per_step", "cache_seconds", "parameters", "precision")
    return {k: info.get(k) for k in keep if k in info}


# --------------------------------------------------------------------------- the temperature curve


def temperature_curve(params: Params | str | None = None, data_dir: str | os.PathLike[str] | None = None,
                      ) -> pd.DataFrame:
    """The main generative model at each temperature of ``temperature_curve.temperatures`` (0 = greedy;
    top-k / top-p / seed as ``generative.sampling``) on the first ``n_songs`` excerpts of
    ``temperature_curve.split`` — validation songs: what the curve shows may guide a choice, and no
    choice is made on the test songs the table reports. One row per (temperature, song, stem)."""
    params = as_params(params)
    s = params.section("separation")
    t = s["temperature_curve"]
    root = resolve(data_dir or s["data"]["root"])
    if t["split"] == s["eval"]["split"]:
        raise ValueError(f"temperature_curve.split is {t['split']!r}, the split the table reports: sampling "
                         "settings must be looked at on other songs (valid)")
    frames = []
    for temperature in t["temperatures"]:
        separator = load_generative(params, temperature=float(temperature))
        scores = score_separator(separator, root, t["split"], int(t["n_songs"]), float(t["seconds"]), t["metrics"])
        frames.append(scores.assign(temperature=float(temperature)))
    return pd.concat(frames, ignore_index=True)


def temperature_points(curve: pd.DataFrame, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Per temperature: the mean over songs and stems of each metric (per-stem means first, as the
    table averages) and the real-time factor."""
    out = []
    for temperature, group in curve.groupby("temperature", sort=True):
        per_stem = group.groupby("stem")[list(metrics)].mean()
        point = {"temperature": float(temperature), **{m: float(per_stem[m].mean()) for m in metrics}}
        songs = group.drop_duplicates("song")
        point["rtf"] = float(songs["compute_seconds"].sum() / songs["seconds"].sum())
        out.append(point)
    return out


# --------------------------------------------------------------------------- one excerpt, every system


def example_excerpt(params: Params | str | None = None, data_dir: str | os.PathLike[str] | None = None,
                    index: int = 0) -> StemExcerpt:
    """Test excerpt ``index`` of the table (for the spectrogram figure and the players)."""
    e = eval_settings(params)
    root = resolve(data_dir) if data_dir is not None else e["root"]
    rate = int(as_params(params).section("audio")["sample_rate"])
    return stem_excerpts(root, e["split"], float(e["seconds"]), index + 1, rate)[index]


def separate_example(spec: SystemSpec, excerpt: StemExcerpt, params: Params | str | None = None,
                     ) -> dict[str, np.ndarray]:
    """``{stem: estimate}`` of one system on one excerpt (its first training seed)."""
    separator = load_system(spec, params, spec.seeds[0] if spec.seeds else None)
    estimates, _ = run_separator(separator, excerpt)
    return dict(zip(STEMS, estimates, strict=True))


# --------------------------------------------------------------------------- the record


def separation_record(results: Sequence[Mapping[str, Any]], params: Params | str | None = None, *,
                      threads: int, curve: Sequence[Mapping[str, Any]] | None = None,
                      findings: Sequence[Mapping[str, Any]] | None = None,
                      ceiling_validation: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``reports/metrics/separation.json``: the protocol, every system's numbers, the temperature curve,
    the findings and the published numbers (labelled as such)."""
    params = as_params(params)
    s = params.section("separation")
    e = eval_settings(params)
    record = {
        "profile": params.profile,
        "protocol": {"split": e["split"], "n_songs": int(e["n_songs"]), "seconds": float(e["seconds"]),
                     "metrics": e["metrics"], "threads": threads, "stems": list(STEMS), "note": PROTOCOL_NOTE,
                     "ablation_n_songs": int((s.get("ablation", {}).get("eval") or {}).get("n_songs", e["n_songs"])),
                     "sampling": dict(s["generative"]["sampling"])},
        "systems": {r["spec"].key: system_record(r) for r in results},
        "plan": [asdict(r["spec"]) for r in results],
        "temperature_curve": None if curve is None else {**{k: s["temperature_curve"][k] for k in
                                                            ("split", "n_songs", "seconds")},
                                                         "points": list(curve)},
        "ceiling_validation": None if ceiling_validation is None else dict(ceiling_validation),
        "findings": list(findings or []),
        "published": {"source": PUBLISHED_SOURCE, "visqol_mean_over_stems": dict(VISQOL_MEAN_OVER_STEMS)},
    }
    return jsonable(record)
