"""Tables, figures and claim checks of the ablation study, from one metrics dict per variant (what
:func:`duotok.ablations.evaluate.evaluate_variant` writes to ``reports/metrics/ablations/<name>.json``).

Three shapes, all derived from :func:`ablation_frame` (one numeric row per variant) so that every
number a table, figure or claim shows comes from the same place:

* :func:`family_table` / :func:`family_csv_frame` — the reference beside one family's variants, as
  display strings ("4.75 ± 0.12", Δ vs the reference) and as numbers for the CSV;
* :func:`plot_family` / :func:`plot_pareto_variants` — bars with the seed spread, and PPL vs AP;
* :func:`ablation_claims` — the paper's qualitative ablation claims, each with a verdict.

Why the seed-spread rule. Ablation variants differ from the reference by one factor and are trained
at a small budget, so most differences are of the size of the seed-to-seed noise. A difference
therefore counts only when ``|Δmean| > std_a + std_b`` (population std over seeds, as the probe and
the LM report it); smaller ones are reported as "within seed spread", never as a win or a loss.
A side measured with a single seed has no spread (std 0), so the rule cannot protect it: the evidence
says so.

Why one training run decides nothing. The LM, probe and leakage seeds are seeds of the *evaluation* of
one trained variant; the variance of training itself (stages 2–3 retrained with another seed) is not in
that spread and is not measured here, so a difference between two single training runs cannot be told
from it. A claim is therefore decided only when every variant it compares was trained with two or more
seeds (``train_seeds`` in its metrics; absent = one trained model, which is what
:func:`duotok.ablations.evaluate.evaluate_variant` measures). Otherwise it reads "not testable here (one
training seed)", and the evidence still says which way the evaluation-seed rule points.

Why the information check. A lower PPL@1024 is cheapest to get by saying less: emptier codebooks are
more predictable. A decided PPL@1024 difference is therefore re-read against both variants' code
entropy (:func:`code_entropy_bits`, bits per frame): when the variant with the lower PPL@1024 carries
less, the comparison reads "confounded" whichever side won — Table 2's rule
(:func:`duotok.reporting.verdicts.information_aware_verdict`), applied to the ablations.

Missing values: JSON ``null`` (non-finite numbers, see ``json_safe``) and absent keys both become NaN
and are shown as "n/a"; a leakage cell that is undefined keeps its reason for the table's notes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from duotok.ablations.variants import FAMILIES, metrics_file
from duotok.io.files import atomic_write
from duotok.reporting.claims import CONFOUNDED, ONE_TRAINING_SEED, combined_spread
from duotok.reporting.figures import save_figure
from duotok.reporting.front_page import verdict_table
from duotok.reporting.table2 import to_markdown
from duotok.reporting.verdicts import confounded, seed_and_song_verdict

MISSING = "n/a"
CONFIRMED, NOT_CONFIRMED, NOT_TESTABLE = "confirmed", "not confirmed", "not testable"
#: Verdict of a comparison whose difference does not exceed the combined seed spread.
WITHIN_SPREAD = "not confirmed (within seed spread)"
MIXED = "mixed (a removal hurt one of AP / PPL@1024 and improved the other, or heads disagree)"

#: Numeric columns of :func:`ablation_frame`, in order (means, then their spreads beside them).
NUMERIC_COLUMNS: tuple[str, ...] = (
    "ppl_1024", "ppl_1024_std", "lm_bits_per_second", "lm_bits_per_second_std",
    "ap", "ap_std", "auc", "auc_std",
    "leak_v2a", "leak_v2a_std", "leak_a2v", "leak_a2v_std",
    "cer", "vocal_chroma", "accomp_chroma", "vocal_mel_l1", "accomp_mel_l1",
    "vocal_usage", "accomp_usage", "vocal_code_ppl", "accomp_code_ppl", "code_entropy_bits", "code_entropy_bits_std",
    "nominal_bits_per_second", "eval_seconds",
)
#: Seed counts: training runs of the variant (``train_seeds``; absent = 1), LM runs with a finite PPL,
#: probe seeds, leakage seeds run, and leakage seeds where each direction's ratio is defined (the spread
#: of a leakage mean is over those only).
COUNT_COLUMNS: tuple[str, ...] = ("n_train_seeds", "n_lm_seeds", "n_probe_seeds", "n_leak_seeds", "leak_v2a_n",
                                  "leak_a2v_n")
TEXT_COLUMNS: tuple[str, ...] = ("family", "description", "routing", "profile", "leak_v2a_reason",
                                 "leak_a2v_reason")

#: ``heads`` metric key (``duotok.ablations.evaluate.HEAD_KEYS``) → frame column.
HEAD_COLUMNS: dict[str, str] = {
    "vocal/cer": "cer", "vocal/chroma_accuracy": "vocal_chroma", "accompaniment/chroma_accuracy": "accomp_chroma",
    "vocal/mel_l1": "vocal_mel_l1", "accompaniment/mel_l1": "accomp_mel_l1", "vocal/usage": "vocal_usage",
    "accompaniment/usage": "accomp_usage", "vocal/perplexity": "vocal_code_ppl",
    "accompaniment/perplexity": "accomp_code_ppl",
}
#: Leakage summary key → frame column prefix ("vocal information in the accompaniment stream" = v→a).
LEAK_COLUMNS: dict[str, str] = {"vocal_in_accompaniment": "leak_v2a", "accompaniment_in_vocal": "leak_a2v"}

#: Metric → (label, higher is better, column of its spread, column of its seed count).
METRICS: dict[str, tuple[str, bool, str | None, str | None]] = {
    "ppl_1024": ("PPL@1024", False, "ppl_1024_std", "n_lm_seeds"),
    "lm_bits_per_second": ("LM bits/s", False, "lm_bits_per_second_std", "n_lm_seeds"),
    "ap": ("AP", True, "ap_std", "n_probe_seeds"),
    "auc": ("AUC", True, "auc_std", "n_probe_seeds"),
    "leak_v2a": ("leakage vocal→accomp.", False, "leak_v2a_std", "leak_v2a_n"),
    "leak_a2v": ("leakage accomp.→vocal", False, "leak_a2v_std", "leak_a2v_n"),
}

FAMILY_TITLES: dict[str, str] = {"reference": "reference", "noise": "bottleneck noise",
                                 "routing": "stage-3 routing", "heads": "multi-task heads"}
FAMILY_COLORS: dict[str, str] = {"reference": "#c44e52", "noise": "#4c72b0", "routing": "#55a868",
                                 "heads": "#8172b2"}
REFERENCE_COLOR, VARIANT_COLOR = "#c44e52", "#4c72b0"
LEAK_COLORS = {"leak_v2a": "#4c72b0", "leak_a2v": "#dd8452"}

# Variant names the claims compare with (``params.yaml: ablation.variants``).
NOISE_OFF, NOISE_ADDITIVE = "noise_off", "noise_additive"
ROUTING_SHARED, ROUTING_SEPARATED = "routing_shared", "routing_separated"
HEADS_NONE = "heads_none"


# ------------------------------------------------------------------------------------------- frame


def _num(value: Any) -> float:
    """NaN for ``None`` and non-finite values (the JSON writer turns NaN/inf into ``null``), else float;
    anything non-numeric raises, because a string where a number belongs is a broken metrics file."""
    if value is None:
        return math.nan
    out = float(value)
    return out if math.isfinite(out) else math.nan


def _get(tree: Any, *path: str) -> Any:
    """``tree[path[0]][path[1]]…`` or ``None`` where any level is missing or not a mapping."""
    for key in path:
        if not isinstance(tree, Mapping):
            return None
        tree = tree.get(key)
    return tree


def code_entropy_bits(heads: Mapping[str, Any]) -> float:
    """Bits per frame the codes of both streams carry: the sum over the vocal and accompaniment
    codebooks of log2 of their code perplexity on the held-out excerpts (``<stream>/perplexity`` =
    2^unigram entropy, :func:`duotok.eval.codes.usage_report`); NaN when a stream's is missing.

    Why. PPL@1024 rewards predictable tokens, and emptier codebooks are predictable for free, so a
    PPL@1024 difference between variants is read against this (Table 2's information rule,
    :func:`duotok.reporting.verdicts.confounded`). Every ablation variant keeps the tokenizer's frame
    rate (they change noise, routing or heads, not the encoder's downsampling), so bits per frame order
    the variants exactly as bits per second would."""
    total = 0.0
    for stream in ("vocal", "accompaniment"):
        ppl = _num(heads.get(f"{stream}/perplexity"))
        if math.isnan(ppl) or ppl < 1.0:
            return math.nan
        total += math.log2(ppl)
    return total


def _lm_seeds(lm: Mapping[str, Any]) -> int:
    """Seeds behind the LM mean: ``n`` of the summary (finite runs), else the runs listed."""
    n = _get(lm, "ppl_1024", "n")
    if n is not None:
        return int(n)
    return sum(1 for r in lm.get("per_seed") or [] if not math.isnan(_num(r.get("ppl_1024"))))


def _leak_seeds(leakage: Mapping[str, Any]) -> int:
    """Leakage seeds run: the longest per-seed list of either attribute set (defined or not); for metrics
    pooled over trainings (no attribute sets, :func:`pool_training_seeds`), the trainings that gave a
    value."""
    runs = [len(_get(leakage, f"{attr}_attributes", "leakage", "per_seed") or [])
            for attr in ("vocal", "accompaniment")]
    if not any(runs):
        return max((int(e.get("n_seeds_defined") or 0) for e in (leakage.get("summary") or {}).values()),
                   default=0)
    return max(runs)


def _train_seeds(metrics: Mapping[str, Any]) -> int:
    """Training runs behind a variant's numbers: ``len(train_seeds)`` when the metrics list them, else 1
    (one metrics file = one trained model). An empty list is a malformed file, not zero runs."""
    seeds = metrics.get("train_seeds")
    if seeds is None:
        return 1
    if not isinstance(seeds, list | tuple) or not seeds:
        raise ValueError(f"train_seeds must be a non-empty list of the training seeds, got {seeds!r}")
    return len(seeds)


def _row(name: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    variant = metrics.get("variant") or {}
    declared = variant.get("name")
    if declared is not None and declared != name:
        raise ValueError(f"metrics filed under {name!r} are of variant {declared!r}: a renamed or copied file "
                         "would put one variant's numbers under another's name")
    lm = metrics.get("lm") or {}
    probe = metrics.get("probe") or {}
    heads = metrics.get("heads") or {}
    leakage = metrics.get("leakage") or {}
    row: dict[str, Any] = {
        "variant": name, "family": variant.get("family"), "description": variant.get("description", ""),
        "routing": variant.get("routing"), "profile": metrics.get("profile"),
        "ppl_1024": _num(_get(lm, "ppl_1024", "mean")), "ppl_1024_std": _num(_get(lm, "ppl_1024", "std")),
        "lm_bits_per_second": _num(_get(lm, "bits_per_second", "mean")),
        "lm_bits_per_second_std": _num(_get(lm, "bits_per_second", "std")),
        "ap": _num(probe.get("ap_mean")), "ap_std": _num(probe.get("ap_std")),
        "auc": _num(probe.get("auc_mean")), "auc_std": _num(probe.get("auc_std")),
        "nominal_bits_per_second": _num(metrics.get("bits_per_second")),
        "eval_seconds": _num(metrics.get("eval_seconds")),
        "code_entropy_bits": _pooled_entropy(metrics),
        "code_entropy_bits_std": _num(_get(metrics, "information", "code_entropy_bits", "std")),
        "n_train_seeds": _train_seeds(metrics),
        "n_lm_seeds": _lm_seeds(lm), "n_probe_seeds": len(probe.get("per_seed") or []),
        "n_leak_seeds": _leak_seeds(leakage),
    }
    for key, column in HEAD_COLUMNS.items():
        row[column] = _num(heads.get(key))
    for key, prefix in LEAK_COLUMNS.items():
        entry = _get(leakage, "summary", key) or {}
        row[prefix] = _num(entry.get("mean"))
        row[f"{prefix}_std"] = _num(entry.get("std"))
        row[f"{prefix}_n"] = int(entry.get("n_seeds_defined") or 0)
        row[f"{prefix}_reason"] = entry.get("reason") if math.isnan(row[prefix]) else None
    return row


def _pooled_entropy(metrics: Mapping[str, Any]) -> float:
    """The code entropy (bits per frame) of one metrics dict: the mean over trainings that
    :func:`pool_training_seeds` stored, else that of its own heads (one training)."""
    pooled = _get(metrics, "information", "code_entropy_bits")
    if isinstance(pooled, Mapping):
        return _num(pooled.get("mean"))
    return code_entropy_bits(metrics.get("heads") or {})


#: Per-song values a claim bootstraps over test songs: frame metric → (key under ``per_song``, higher is
#: better). The LM's is ln PPL@1024 per song (its pooled figure is PPL@1024), the probe's each song's own
#: tag AP; the leakage probes keep no per-song values, so leakage claims rest on the seed spread alone.
PER_SONG_METRICS: dict[str, tuple[str, bool]] = {"ppl_1024": ("log_ppl_1024", False), "ap": ("ap", True)}


def _spread_over(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` of the finite values (population std, as every spread here)."""
    finite = [float(v) for v in values if not math.isnan(_num(v))]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(finite)), "std": float(np.std(finite)), "n": len(finite)}


def _song_values(metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{"log_ppl_1024": {song: v}, "ap": {song: v}}`` of one trained variant (what it exported)."""
    lm_songs = _get(metrics, "lm", "per_song") or {}
    return {"log_ppl_1024": {str(k): float(v["log_ppl_1024"]) for k, v in lm_songs.items()},
            "ap": {str(k): float(v) for k, v in (_get(metrics, "probe", "per_song_ap") or {}).items()}}


def pool_training_seeds(by_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """One variant's metrics from its trainings (``{training seed: metrics file}``), in the shape of one
    metrics file, so that :func:`ablation_frame` and the claims read it unchanged.

    Why this shape. With two or more trainings every number is the mean over training seeds of each
    training's own mean, and its ``std`` is the population std over training seeds — the spread a claim
    must beat, since it holds the training noise the evaluation seeds cannot see. ``train_seeds`` lists
    the seeds, and ``per_song`` keeps each training's per-song LM ln PPL@1024 and probe AP
    (``{metric: {seed: {song: value}}}``) for the paired bootstrap over test songs. A single training
    passes through as it is (its spreads are the evaluation seeds'), with ``train_seeds`` and
    ``per_song`` added."""
    if not by_seed:
        raise ValueError("pool_training_seeds needs at least one training seed's metrics")
    seeds = sorted(int(s) for s in by_seed)
    runs = [by_seed[s] for s in seeds]
    names = {(_get(m, "variant", "name")) for m in runs}
    if len(names) != 1:
        raise ValueError(f"training seeds {seeds} hold metrics of different variants: {sorted(map(str, names))}")
    songs = {s: _song_values(m) for s, m in zip(seeds, runs, strict=True)}
    per_song = {key: {s: songs[s][key] for s in seeds} for key in ("log_ppl_1024", "ap")}
    if len(runs) == 1:
        return {**runs[0], "train_seeds": seeds, "per_song": per_song}
    first = runs[0]

    def over(*path: str) -> dict[str, Any]:
        return _spread_over([_num(_get(m, *path)) for m in runs])

    heads_keys = sorted(set().union(*(set(m.get("heads") or {}) for m in runs)))
    leak_summary = {}
    for key in LEAK_COLUMNS:
        entries = [_get(m, "leakage", "summary", key) or {} for m in runs]
        spread = _spread_over([_num(e.get("mean")) for e in entries])
        reasons = [e.get("reason") for e in entries if e.get("reason")]
        leak_summary[key] = {"mean": spread["mean"], "std": spread["std"], "n_seeds_defined": spread["n"],
                             "reason": None if spread["n"] else (reasons[0] if reasons else None)}
    ap, auc = over("probe", "ap_mean"), over("probe", "auc_mean")
    return {
        "variant": first.get("variant"), "profile": first.get("profile"),
        "bits_per_second": first.get("bits_per_second"),
        "train_seeds": seeds,
        "lm": {"ppl_1024": over("lm", "ppl_1024", "mean"), "bits_per_second": over("lm", "bits_per_second", "mean"),
               # one entry per training: the ± is over trainings, so "n" counts trainings
               "per_seed": [{"train_seed": s, "ppl_1024": _get(m, "lm", "ppl_1024", "mean")}
                            for s, m in zip(seeds, runs, strict=True)]},
        "probe": {"ap_mean": ap["mean"], "ap_std": ap["std"], "auc_mean": auc["mean"], "auc_std": auc["std"],
                  "per_seed": [{"train_seed": s, "ap": _get(m, "probe", "ap_mean")}
                               for s, m in zip(seeds, runs, strict=True)],
                  "tags_dropped": _get(first, "probe", "tags_dropped")},
        "heads": {k: _spread_over([_num((m.get("heads") or {}).get(k)) for m in runs])["mean"] for k in heads_keys},
        # the mean of each training's entropy, not the entropy of the mean perplexity
        "information": {"code_entropy_bits": _spread_over([code_entropy_bits(m.get("heads") or {}) for m in runs])},
        "leakage": {"summary": leak_summary},
        "eval_seconds": sum(_num(m.get("eval_seconds")) for m in runs),
        # each training's own evaluation seeds, so the tables can say what one training's value averages
        "eval_seeds": {"lm": [_lm_seeds(m.get("lm") or {}) for m in runs],
                       "probe": [len(_get(m, "probe", "per_seed") or []) for m in runs],
                       "leakage": [_leak_seeds(m.get("leakage") or {}) for m in runs]},
        "per_song": per_song,
    }


def load_ablation_metrics(metrics_dir: str | os.PathLike[str], names: Iterable[str],
                          train_seeds: Sequence[int] = (0,)) -> dict[str, dict[str, Any]]:
    """``{variant: pooled metrics}`` of every variant in ``names`` over ``train_seeds``
    (:func:`~duotok.ablations.variants.metrics_file` of each, then :func:`pool_training_seeds`). A missing
    file raises naming it: a claim pooled over fewer trainings than asked for would look decided on
    less evidence than it states."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        by_seed = {}
        for seed in train_seeds:
            path = metrics_file(metrics_dir, name, int(seed))
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no metrics of ablation variant {name!r} for training seed "
                                        f"{seed}; run its stage first (`dvc repro` lists it in `dvc status`)")
            by_seed[int(seed)] = json.loads(path.read_text(encoding="utf-8"))
        out[str(name)] = pool_training_seeds(by_seed)
    return out


def ablation_frame(metrics: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per variant (index ``variant``, the mapping's order): :data:`NUMERIC_COLUMNS` (NaN where
    missing or non-finite), :data:`COUNT_COLUMNS` (ints) and :data:`TEXT_COLUMNS`. ``metrics`` maps a
    variant name to its metrics dict; a dict whose ``variant.name`` disagrees with its key raises."""
    rows = [_row(str(name), m) for name, m in metrics.items()]
    columns = ["variant", *TEXT_COLUMNS[:4], *NUMERIC_COLUMNS, *COUNT_COLUMNS, *TEXT_COLUMNS[4:]]
    frame = pd.DataFrame.from_records(rows, columns=columns).set_index("variant")
    frame[list(NUMERIC_COLUMNS)] = frame[list(NUMERIC_COLUMNS)].astype(float)
    frame[list(COUNT_COLUMNS)] = frame[list(COUNT_COLUMNS)].astype(int)
    # Per-song values by training seed (pool_training_seeds), for the claims' bootstrap over test songs.
    frame.attrs["per_song"] = {str(name): m.get("per_song") or {} for name, m in metrics.items()}
    # Evaluation seeds of each training behind a pooled variant (pool_training_seeds), for the tables' legend.
    frame.attrs["eval_seeds"] = {str(name): m.get("eval_seeds") or {} for name, m in metrics.items()}
    return frame


# ------------------------------------------------------------------------------------------- tables


def _check_family(family: str) -> None:
    if family not in FAMILIES or family == "reference":
        raise ValueError(f"unknown ablation family {family!r}; expected one of "
                         f"{[f for f in FAMILIES if f != 'reference']}")


def _family_rows(frame: pd.DataFrame, family: str, reference: str) -> pd.DataFrame:
    """The reference row, then the family's variants in frame order. A missing reference raises: every
    table and claim is *relative* to it, so without it nothing here has a meaning."""
    _check_family(family)
    if reference not in frame.index:
        raise KeyError(f"reference variant {reference!r} has no metrics (have: {', '.join(map(str, frame.index))}); "
                       f"evaluate it first: every ablation is read against it")
    members = [name for name in frame.index if name != reference and frame.at[name, "family"] == family]
    return frame.loc[[reference, *members]]


def _isnan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any, decimals: int) -> str:
    return MISSING if _isnan(value) else f"{float(value):.{decimals}f}"


def _fmt_spread(mean: Any, std: Any, n: Any, decimals: int) -> str:
    """``mean ± std`` when a spread was measured (two or more seeds, finite std), else the mean."""
    text = _fmt(mean, decimals)
    if text == MISSING or _isnan(std) or n is None or int(n) < 2:
        return text
    return f"{text} ± {float(std):.{decimals}f}"


def _fmt_pair(vocal: Any, accomp: Any, decimals: int) -> str:
    if _isnan(vocal) and _isnan(accomp):
        return MISSING
    return f"{_fmt(vocal, decimals)} / {_fmt(accomp, decimals)}"


def _spread(record: pd.Series, metric: str) -> float:
    """A row's seed spread of ``metric`` (0 when not measured: one seed, or no std reported)."""
    std_col = METRICS[metric][2]
    std = record.get(std_col) if std_col else math.nan
    return 0.0 if _isnan(std) else float(std)


def _delta(record: pd.Series, ref: pd.Series, metric: str) -> tuple[float, bool]:
    """(variant − reference, whether ``|Δ|`` exceeds the combined spread)."""
    a, b = record.get(metric), ref.get(metric)
    if _isnan(a) or _isnan(b):
        return math.nan, False
    diff = float(a) - float(b)
    return diff, abs(diff) > combined_spread(_spread(record, metric), _spread(ref, metric))


def _fmt_delta(record: pd.Series, ref: pd.Series, metric: str, decimals: int, is_ref: bool) -> str:
    if is_ref:
        return "ref"
    diff, beyond = _delta(record, ref, metric)
    if math.isnan(diff):
        return MISSING
    return f"{diff:+.{decimals}f}" + ("*" if beyond else "")


#: Display columns of :func:`family_table`, in order.
DISPLAY_COLUMNS: tuple[str, ...] = (
    "PPL@1024", "Δ PPL", "LM bits/s", "AP", "Δ AP", "AUC", "Leak V→A", "Leak A→V", "CER",
    "Chroma acc. (V / A)", "Mel L1 (V / A)", "Usage (V / A)", "Code PPL (V / A)",
)


def family_table(frame: pd.DataFrame, family: str, reference: str = "reference") -> pd.DataFrame:
    """Display table (index ``Variant``, columns :data:`DISPLAY_COLUMNS`): the reference first, then the
    family's variants. PPL, bits/s, AP, AUC and leakage read "mean ± std" where two or more seeds gave a
    spread; "Δ PPL" / "Δ AP" are variant − reference, signed, with "*" when the difference exceeds the
    combined spread; stage-3 head cells read "vocal / accompaniment". Missing values: "n/a"."""
    rows = _family_rows(frame, family, reference)
    ref = rows.loc[reference]
    out = []
    for name, record in rows.iterrows():
        is_ref = name == reference
        out.append({
            "PPL@1024": _fmt_spread(record["ppl_1024"], record["ppl_1024_std"], record["n_lm_seeds"], 2),
            "Δ PPL": _fmt_delta(record, ref, "ppl_1024", 2, is_ref),
            "LM bits/s": _fmt_spread(record["lm_bits_per_second"], record["lm_bits_per_second_std"],
                                     record["n_lm_seeds"], 0),
            "AP": _fmt_spread(record["ap"], record["ap_std"], record["n_probe_seeds"], 3),
            "Δ AP": _fmt_delta(record, ref, "ap", 3, is_ref),
            "AUC": _fmt_spread(record["auc"], record["auc_std"], record["n_probe_seeds"], 3),
            "Leak V→A": _fmt_spread(record["leak_v2a"], record["leak_v2a_std"], record["leak_v2a_n"], 2),
            "Leak A→V": _fmt_spread(record["leak_a2v"], record["leak_a2v_std"], record["leak_a2v_n"], 2),
            "CER": _fmt(record["cer"], 3),
            "Chroma acc. (V / A)": _fmt_pair(record["vocal_chroma"], record["accomp_chroma"], 3),
            "Mel L1 (V / A)": _fmt_pair(record["vocal_mel_l1"], record["accomp_mel_l1"], 3),
            "Usage (V / A)": _fmt_pair(record["vocal_usage"], record["accomp_usage"], 3),
            "Code PPL (V / A)": _fmt_pair(record["vocal_code_ppl"], record["accomp_code_ppl"], 0),
        })
    return pd.DataFrame(out, index=pd.Index(list(rows.index), name="Variant"), columns=list(DISPLAY_COLUMNS))


def family_csv_frame(frame: pd.DataFrame, family: str, reference: str = "reference") -> pd.DataFrame:
    """Numeric counterpart of :func:`family_table` for the CSV (so numbers round-trip without parsing
    display strings): family, the numeric and count columns, and ``delta_ppl_1024`` / ``delta_ap``
    (variant − reference, 0 for the reference) with ``*_beyond_spread`` flags."""
    rows = _family_rows(frame, family, reference)
    ref = rows.loc[reference]
    out = rows[["family", *NUMERIC_COLUMNS, *COUNT_COLUMNS]].copy()
    for metric in ("ppl_1024", "ap"):
        deltas = [_delta(record, ref, metric) for _, record in rows.iterrows()]
        out[f"delta_{metric}"] = [d for d, _ in deltas]
        out[f"delta_{metric}_beyond_spread"] = [b for _, b in deltas]
    return out


def _count_text(values: Iterable[int], what: str) -> str:
    counts = sorted(set(int(v) for v in values))
    if not counts:
        return f"{what}: none"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"{what}: {span} seed{'' if counts == [1] else 's'}"


def _spread_legend(frame: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """What the ± of a family table is over, and the seeds behind it. Pooled over trainings
    (:func:`pool_training_seeds`) the ± is the spread over *training* seeds and the LM / probe / leakage
    counts of the rows are trainings too, so the legend names each training's own evaluation seeds
    instead; a table of single trainings keeps the evaluation seeds' wording."""
    pooled = int(rows["n_train_seeds"].max()) >= 2
    if not pooled:
        return ["- mean ± std: population std (ddof 0) over the evaluation seeds (LM, probe, leakage) of each "
                "trained variant, shown where two or more seeds were run — training-seed variance is not in it; "
                f"{MISSING}: not measured or undefined.",
                "- Seeds — " + "; ".join([_count_text(rows["n_train_seeds"], "training"),
                                          _count_text(rows["n_lm_seeds"], "LM"),
                                          _count_text(rows["n_probe_seeds"], "probe"),
                                          _count_text(rows["n_leak_seeds"], "leakage")]) + "."]
    seeds = frame.attrs.get("eval_seeds") or {}
    per_training = {kind: [n for name in rows.index for n in (seeds.get(str(name)) or {}).get(kind) or []]
                    for kind in ("lm", "probe", "leakage")}
    inner = "; ".join(_count_text(per_training[kind], label) for kind, label in
                      (("lm", "LM"), ("probe", "probe"), ("leakage", "leakage")) if per_training[kind])
    once = int(rows["n_train_seeds"].min()) < 2
    return ["- mean ± std: mean and population std (ddof 0) over the training seeds of each variant — the "
            "spread a claim must beat, since it holds the training noise; each training's own value is its mean "
            "over its evaluation seeds"
            + ("; a variant trained once shows the spread over its evaluation seeds instead" if once else "")
            + f"; {MISSING}: not measured or undefined.",
            "- Seeds — " + _count_text(rows["n_train_seeds"], "training")
            + (f"; each training evaluated with {inner}" if inner else "") + "."]


def family_markdown(frame: pd.DataFrame, family: str, reference: str = "reference") -> str:
    """``ablation_<family>.md``: title, what each variant changes (its description), the table, then
    how to read it — metric directions, the Δ marker, seed counts — and why any leakage cell is n/a."""
    rows = _family_rows(frame, family, reference)
    lines = [f"# Ablation — {FAMILY_TITLES[family]}", "",
             f"Each variant changes one factor of the reference `{reference}`; everything else (data, budget, "
             "evaluation) is shared.", ""]
    for name, record in rows.iterrows():
        tag = "reference" if name == reference else str(record["family"])
        description = str(record["description"] or "").strip() or "(no description)"
        lines.append(f"- **{name}** ({tag}): {description}")
    if len(rows) == 1:
        lines += ["", f"_No variant of the {family} family has metrics yet: only the reference is shown._"]
    lines += ["", to_markdown(family_table(frame, family, reference)), "",
              "How to read it:", "",
              "- PPL@1024 (LM perplexity rescaled to a 1024-entry vocabulary: a uniform guess scores 1024) and LM bits/s: **lower is "
              "better** (tokens easier to model).",
              "- AP / AUC (tagging probe, macro): **higher is better**.",
              "- Leak V→A (vocal information readable from the accompaniment tokens) and Leak A→V: 0 = nothing "
              "beyond chance, 1 = as much as the owning stream; **lower is better**.",
              "- CER (lyrics head on the vocal stream): **lower is better**; chroma accuracy: higher is better; "
              "mel L1: lower is better. Usage (fraction of codes used) and code PPL describe the codebooks; "
              "V / A = vocal / accompaniment.",
              "- Δ = variant − reference; `*` marks a difference larger than the combined seed spread "
              "(|Δ| > std_variant + std_reference); unmarked differences are within seed noise.",
              *_spread_legend(frame, rows)]
    notes = [f"- {name}, {label}: {record[f'{prefix}_reason']}"
             for name, record in rows.iterrows()
             for prefix, label in (("leak_v2a", "Leak V→A"), ("leak_a2v", "Leak A→V"))
             if isinstance(record[f"{prefix}_reason"], str) and record[f"{prefix}_reason"]]
    if notes:
        lines += ["", "Undefined leakage cells:", "", *notes]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> Path:
    with atomic_write(path) as fh:
        fh.write(text)
    return path


def write_family_tables(frame: pd.DataFrame, out_dir: str | os.PathLike[str],
                        families: Sequence[str] = ("noise", "routing", "heads"),
                        reference: str = "reference") -> list[Path]:
    """Write ``ablation_<family>.md`` (:func:`family_markdown`) and ``ablation_<family>.csv``
    (:func:`family_csv_frame`) per family, each atomically (a reader never sees half a table). A family
    without variants still gets both files, holding the reference only, so the stage's declared
    outputs always exist. Returns the paths, md then csv per family."""
    out = Path(out_dir)
    written: list[Path] = []
    for family in families:
        written.append(_write_text(out / f"ablation_{family}.md", family_markdown(frame, family, reference)))
        csv = family_csv_frame(frame, family, reference).to_csv(index=True, index_label="variant")
        written.append(_write_text(out / f"ablation_{family}.csv", csv))
    return written


# ------------------------------------------------------------------------------------------- figures


def _mark_missing(ax: plt.Axes, x: float, fontsize: float = 7) -> None:
    """An "n/a" label where a bar would stand, so a missing value is not read as zero."""
    ax.text(x, 0.02, MISSING, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
            fontsize=fontsize, color="0.4", rotation=90)


def _bars(ax: plt.Axes, x: np.ndarray, values: np.ndarray, errors: np.ndarray, colors: Sequence[str],
          width: float, reference_index: int | None) -> None:
    """Bars for the finite values only (error bar = spread where one exists), "n/a" for the rest; the
    reference bar gets a thick black edge."""
    for i, (xi, v, e) in enumerate(zip(x, values, errors, strict=True)):
        if not np.isfinite(v):
            _mark_missing(ax, float(xi))
            continue
        ref = i == reference_index
        ax.bar(xi, v, width=width, color=colors[i], alpha=0.85, edgecolor="black" if ref else "none",
               linewidth=1.6 if ref else 0, yerr=e if np.isfinite(e) and e > 0 else None, capsize=3)


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    return rows[name].to_numpy(dtype=np.float64)


def plot_family(frame: pd.DataFrame, family: str, reference: str = "reference") -> plt.Figure:
    """1 × 3 panels over the reference and the family's variants: PPL@1024, tagging AP, and leakage
    (vocal→accomp. and accomp.→vocal as paired bars). Error bars = std over seeds; the reference bar is
    red with a black edge and its tick label bold; missing values are absent bars marked "n/a"."""
    rows = _family_rows(frame, family, reference)
    names = [str(n) for n in rows.index]
    x = np.arange(len(names), dtype=np.float64)
    colors = [REFERENCE_COLOR if n == reference else VARIANT_COLOR for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(max(9.0, 1.1 * len(names) * 3), 3.4))
    for ax, metric, title in ((axes[0], "ppl_1024", "PPL@1024 (lower is better)"),
                              (axes[1], "ap", "tagging AP (higher is better)")):
        _bars(ax, x, _column(rows, metric), _column(rows, f"{metric}_std"), colors, 0.7, 0)
        ax.set_title(title, fontsize=10)
    width = 0.38
    for offset, prefix in ((-width / 2, "leak_v2a"), (width / 2, "leak_a2v")):
        _bars(axes[2], x + offset, _column(rows, prefix), _column(rows, f"{prefix}_std"),
              [LEAK_COLORS[prefix]] * len(names), width, 0)
    axes[2].axhline(0.0, color="0.3", linewidth=0.8)
    axes[2].set_title("leakage (lower is better)", fontsize=10)
    low, high = axes[2].get_ylim()  # headroom, so the legend never hides a bar
    axes[2].set_ylim(low, high + 0.35 * (high - low))
    # Proxy handles: the first real bar of each direction is the reference's, drawn with a black edge.
    axes[2].legend(handles=[Patch(color=LEAK_COLORS[p], label=METRICS[p][0]) for p in LEAK_COLORS],
                   fontsize=7, loc="upper right")
    for ax in axes:
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.get_xticklabels()[0].set_fontweight("bold")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Ablation — {FAMILY_TITLES[family]} (error bars: std over seeds)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_pareto_variants(frame: pd.DataFrame) -> plt.Figure:
    """PPL@1024 (x, log; lower is better) against tagging AP (y; higher is better), one labelled point
    per variant coloured by family, error bars = std over seeds both ways: the upper-left corner is
    best. Variants lacking either number are listed under the axes instead of plotted."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    skipped = []
    for family in FAMILIES:
        members = frame[frame["family"] == family]
        keep = members[np.isfinite(_column(members, "ppl_1024")) & np.isfinite(_column(members, "ap"))]
        skipped += [str(n) for n in members.index if n not in keep.index]
        if keep.empty:
            continue
        px, py = _column(keep, "ppl_1024"), _column(keep, "ap")
        xerr = np.nan_to_num(_column(keep, "ppl_1024_std"))
        # A log axis cannot show an error bar reaching zero or below: clip the lower arm.
        xerr_low = np.minimum(xerr, 0.999 * px)
        ax.errorbar(px, py, xerr=[xerr_low, xerr], yerr=np.nan_to_num(_column(keep, "ap_std")), fmt="none",
                    ecolor=FAMILY_COLORS[family], alpha=0.6, capsize=2, linewidth=1)
        is_ref = family == "reference"
        ax.scatter(px, py, color=FAMILY_COLORS[family], s=140 if is_ref else 36, marker="*" if is_ref else "o",
                   label=family, zorder=4 if is_ref else 3)
        for name, xi, yi in zip(keep.index, px, py, strict=True):
            ax.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    skipped += [str(n) for n in frame.index if frame.at[n, "family"] not in FAMILIES]
    ax.set_xscale("log")
    # Variants span a narrow PPL range: plain numbers ("4.5"), not "4.5×10^0", on major and minor ticks.
    plain = mticker.FuncFormatter(lambda value, _pos: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("PPL@1024 (log; lower is better)")
    ax.set_ylabel("tagging AP (higher is better)")
    ax.set_title("Ablation variants: modelability vs semantics", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, title="family", title_fontsize=8)
    if skipped:
        ax.text(0.0, -0.2, f"not plotted ({MISSING}): {', '.join(skipped)}", transform=ax.transAxes,
                fontsize=7, color="0.4", va="top")
    fig.tight_layout()
    return fig


def write_ablation_figures(frame: pd.DataFrame, out_dir: str | os.PathLike[str],
                           families: Sequence[str] = ("noise", "routing", "heads"),
                           reference: str = "reference", formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """``ablation_<family>`` per family and ``ablation_pareto``, each in ``formats`` via
    :func:`~duotok.reporting.figures.save_figure` (byte-stable, atomic); figures are closed after."""
    out = Path(out_dir)
    written: list[Path] = []
    figures = [(f"ablation_{f}", lambda f=f: plot_family(frame, f, reference)) for f in families]
    figures.append(("ablation_pareto", lambda: plot_pareto_variants(frame)))
    for stem, make in figures:
        fig = make()
        try:
            written += save_figure(fig, out / stem, formats)
        finally:
            plt.close(fig)
    return written


# ------------------------------------------------------------------------------------------- claims

RULE = "a difference counts only when |Δmean| > std_a + std_b (population std over seeds)"


def _value(frame: pd.DataFrame, name: str, column: str) -> float:
    return float(frame.at[name, column]) if name in frame.index else math.nan


def _compare(frame: pd.DataFrame, better: str, worse: str, metric: str) -> dict[str, Any]:
    """Is ``better`` better than ``worse`` on ``metric``? ``outcome``: "better" / "worse" (beyond the
    combined spread), "within", or "missing"; ``text`` is the evidence, numbers included;
    ``beyond_spread``: the means differ beyond the training spread, whatever the song bootstrap then
    says (so a report can name a gap that the bootstrap did not confirm)."""
    label, higher, _, n_col = METRICS[metric]
    a, b = _value(frame, better, metric), _value(frame, worse, metric)
    if math.isnan(a) or math.isnan(b):
        lacking = [n for n, v in ((better, a), (worse, b)) if math.isnan(v)]
        return {"outcome": "missing", "text": f"{label}: {MISSING} for {', '.join(lacking)}"}
    sa, sb = (_spread(frame.loc[n], metric) for n in (better, worse))
    na, nb = (int(_value(frame, n, n_col)) if n_col else 1 for n in (better, worse))
    diff = a - b
    spread = combined_spread(sa, sb)
    gain = diff if higher else -diff  # > 0: ``better`` is better
    outcome = "within" if abs(diff) <= spread else ("better" if gain > 0 else "worse")
    where = {"within": "within", "better": "beyond", "worse": "beyond"}[outcome]
    single_seed = min(na, nb) < 2
    if single_seed:  # no spread measured: a difference cannot be told from seed noise, so it never counts
        outcome, where = "within", "not comparable to"
    beyond_spread = outcome != "within"
    # Δ printed as variant − reference, the sign convention of the tables' Δ columns.
    text = (f"{label} ({'higher' if higher else 'lower'} is better): {better} {a:.4g} ± {sa:.2g} (n={na}) vs "
            f"{worse} {b:.4g} ± {sb:.2g} (n={nb}), Δ {worse} − {better} {-diff:+.4g} {where} the combined "
            f"spread {spread:.2g}")
    if single_seed:
        text += " [one seed on a side: no spread measured, so the difference is not counted]"
    elif metric in PER_SONG_METRICS and min(_value(frame, n, "n_train_seeds") for n in (better, worse)) >= 2:
        outcome, extra = _song_bootstrap(frame, better, worse, metric, outcome)
        text += extra
    if metric in INFORMATION_METRICS and outcome in ("better", "worse"):
        outcome, extra = _information_check(frame, better, worse, outcome)
        text += extra
    return {"outcome": outcome, "text": text, "beyond_spread": beyond_spread}


#: Metrics whose differences are re-read against the codes' information (:func:`_information_check`).
INFORMATION_METRICS: frozenset[str] = frozenset({"ppl_1024"})


def _information_check(frame: pd.DataFrame, better: str, worse: str, outcome: str) -> tuple[str, str]:
    """A decided PPL@1024 difference re-read against the two variants' code entropy (bits per frame,
    :func:`code_entropy_bits`), as Table 2 reads a PPL win against the token entropy rate
    (:func:`duotok.reporting.verdicts.information_aware_verdict`): a win by the variant whose codes carry
    *less* information becomes "confounded", whichever side won; an unknown entropy (or nominal bit
    rates that differ, so bits per frame would not order bits per second) makes it "missing"."""
    winner, loser = (better, worse) if outcome == "better" else (worse, better)
    ew, el = _value(frame, winner, "code_entropy_bits"), _value(frame, loser, "code_entropy_bits")
    sw, sl = _value(frame, winner, "code_entropy_bits_std"), _value(frame, loser, "code_entropy_bits_std")
    bits_w, bits_l = (f"{e:.3g}" + ("" if math.isnan(sd) else f" ± {sd:.2g}") for e, sd in ((ew, sw), (el, sl)))
    rates = {_value(frame, n, "nominal_bits_per_second") for n in (winner, loser)}
    if math.isnan(ew) or math.isnan(el) or len(rates) != 1:
        why = "a code entropy is unknown" if math.isnan(ew) or math.isnan(el) else "their nominal bit rates differ"
        return "missing", (f"; but {why}, so the PPL@1024 win of {winner} cannot be told apart from codes "
                           "carrying less information")
    if confounded(ew, el, "ppl_1024"):
        return "confounded", (f"; confounded: the lower PPL@1024 is {winner}'s, whose codes carry {bits_w} bits per "
                              f"frame against {bits_l} for {loser} (PPL@1024 rewards predictable, "
                              "low-information codes; Table 2's rule: any lower mean)")
    return outcome, f"; information: {winner}'s codes carry {bits_w} bits per frame, {loser}'s {bits_l}"


def _song_bootstrap(frame: pd.DataFrame, better: str, worse: str, metric: str, outcome: str) -> tuple[str, str]:
    """With two or more training seeds on both sides, the outcome of :func:`seed_and_song_verdict` on the
    per-song values (the seed-spread rule on per-song means *and* a 95 % paired bootstrap over test songs
    excluding 0), and the evidence it adds. Without per-song values the seed-spread outcome stands, and
    the evidence says so."""
    key, higher = PER_SONG_METRICS[metric]
    songs = frame.attrs.get("per_song") or {}
    a_by, b_by = ({int(s): v for s, v in ((songs.get(n) or {}).get(key) or {}).items()} for n in (better, worse))
    if not a_by or not b_by or not all(a_by.values()) or not all(b_by.values()):
        return outcome, f"; no per-song {key} for every training seed: training-seed spread only"
    v = seed_and_song_verdict(a_by, b_by, higher, names=(better, worse))
    mapped = {"a better": "better", "b better": "worse", "tie": "within"}.get(v["verdict"], "missing")
    low, high = v["interval"] if v["interval"] is not None else (math.nan, math.nan)
    why = ""
    if v["verdict"] == "tie" and v["diff"] is not None and v["seed_spread"] is not None:
        # say which test tied: an interval that excludes 0 still ties when the per-song means' training
        # spread covers the difference (those unweighted means spread more than the pooled PPL@1024)
        why = (f" (|Δ| {abs(v['diff']):.4g} of the per-song means within their training spread {v['seed_spread']:.4g})"
               if abs(v["diff"]) <= v["seed_spread"] else " (the interval includes 0)")
    return mapped, (f"; {key} per song, {len(a_by)} / {len(b_by)} training seeds, 95 % paired bootstrap over "
                    f"{v['n_songs']} test songs of {better} − {worse}: [{low:.4g}, {high:.4g}] → {v['verdict']}{why}")


def _combine(claim: str, ident: str, comparisons: list[dict[str, Any]], absent: list[str]) -> dict[str, str]:
    """Verdict of a claim that ``better`` wins every comparison: any loss beyond the spread refutes it;
    all won beyond the spread confirms it; a missing number (with no loss) leaves it untestable; else
    the differences are within the seed spread."""
    if absent:
        return {"id": ident, "claim": claim, "verdict": NOT_TESTABLE,
                "evidence": f"no metrics for variant(s) {', '.join(absent)}"}
    outcomes = [c["outcome"] for c in comparisons]
    evidence = "; ".join(c["text"] for c in comparisons) + f" — {RULE}"
    if "worse" in outcomes:
        verdict = NOT_CONFIRMED
    elif "missing" in outcomes:
        verdict = NOT_TESTABLE
    elif all(o == "better" for o in outcomes):
        verdict = CONFIRMED
    elif all(o in ("better", "confounded") for o in outcomes):
        verdict = CONFOUNDED   # it would be decided, but a PPL@1024 difference is bought with information
    else:
        verdict = WITHIN_SPREAD
    return {"id": ident, "claim": claim, "verdict": verdict, "evidence": evidence}


def _training_seed_gate(frame: pd.DataFrame, result: dict[str, str], names: Sequence[str]) -> dict[str, str]:
    """Turn a decided verdict into "not testable here (one training seed)" when any compared variant was
    trained once; the evidence keeps what the evaluation-seed rule alone would have said. A claim that is
    already untestable (a number missing) stays as it is: that is the more basic gap."""
    once = [n for n in names if n in frame.index and int(frame.at[n, "n_train_seeds"]) < 2]
    if not once or result["verdict"] == NOT_TESTABLE:
        return result
    return {**result, "verdict": ONE_TRAINING_SEED,
            "evidence": (f"trained once: {', '.join(once)} — training-seed variance is not measured, so no "
                         f"difference can be decided (evaluation seeds alone would read "
                         f"\"{result['verdict']}\"): " + result["evidence"])}


def _pairwise(frame: pd.DataFrame, ident: str, claim: str, better: str, worse: str,
              metrics: Sequence[str]) -> dict[str, str]:
    absent = [n for n in (better, worse) if n not in frame.index]
    comparisons = [] if absent else [_compare(frame, better, worse, m) for m in metrics]
    return _training_seed_gate(frame, _combine(claim, ident, comparisons, absent), (better, worse))


def _single_heads(frame: pd.DataFrame, reference: str) -> dict[str, str]:
    """(f): each single-head removal against the reference on PPL@1024, AP and both leakages. The claim
    (heads help) is confirmed only if some removal hurts AP or PPL beyond the spread and none improves
    either; hurt *and* improved is "mixed" — a lower PPL bought with a lower AP is a trade-off, not a win,
    and calling it "confirmed" would hide exactly what an ablation is meant to show."""
    claim = "removing a single head hurts the tokens (AP or PPL@1024 beyond seed spread)"
    removals = [n for n in frame.index if frame.at[n, "family"] == "heads" and n not in (HEADS_NONE, reference)]
    if reference not in frame.index or not removals:
        who = f"no metrics for {reference}" if reference not in frame.index else "no single-head removal variant"
        return {"id": "f", "claim": claim, "verdict": NOT_TESTABLE, "evidence": who}
    parts, hurt, helped, missing, moved_with_information = [], [], [], False, False
    for name in removals:
        moved = []
        for metric in ("ppl_1024", "ap", "leak_v2a", "leak_a2v"):
            c = _compare(frame, reference, name, metric)
            label = METRICS[metric][0]
            if c["outcome"] == "better":  # the reference is better: removing the head hurt
                moved.append(f"{label} hurt ({c['text']})")
                if metric in ("ppl_1024", "ap"):
                    hurt.append(name)
            elif c["outcome"] == "worse":
                moved.append(f"{label} improved ({c['text']})")
                if metric in ("ppl_1024", "ap"):
                    helped.append(name)
            elif c["outcome"] == "missing" and metric in ("ppl_1024", "ap"):
                missing = True
                moved.append(c["text"])
            elif c["outcome"] == "confounded":   # neither hurt nor helped: the PPL moved with the information
                moved_with_information = True
                moved.append(f"{label} moved with the information ({c['text']})")
            elif c["outcome"] == "within" and c["beyond_spread"]:   # said, so a reader sees why it does not count
                # the per-song test (seed_and_song_verdict) ties: its interval includes 0, or the per-song
                # means lie within their own training spread; the evidence text gives both
                moved.append(f"{label} not counted: beyond the training spread, but the per-song test "
                             f"(training spread and song bootstrap) ties ({c['text']})")
        parts.append(f"{name}: " + ("; ".join(moved) if moved else "no metric moved beyond the seed spread"))
    if hurt and helped:
        verdict = MIXED
    elif hurt:
        verdict = CONFIRMED
    elif missing:
        verdict = NOT_TESTABLE
    elif helped:
        verdict = NOT_CONFIRMED
    elif moved_with_information:
        verdict = CONFOUNDED
    else:
        verdict = WITHIN_SPREAD
    result = {"id": "f", "claim": claim, "verdict": verdict, "evidence": " | ".join(parts) + f" — {RULE}"}
    return _training_seed_gate(frame, result, (reference, *removals))


def ablation_claims(frame: pd.DataFrame, reference: str = "reference") -> list[dict[str, str]]:
    """The paper's qualitative ablation claims checked on :func:`ablation_frame`, in order (a)–(f); each
    ``{"id", "claim", "evidence", "verdict"}`` with verdict "confirmed", "not confirmed" (reversed beyond
    the spread), "not confirmed (within seed spread)", "not testable" (a variant or number missing) or
    "not testable here (one training seed)" (a compared variant was trained once) or "confounded" (it
    would be decided, but a PPL@1024 difference came with less information in the winner's codes)
    A multi-metric claim is confirmed only if the reference wins every metric beyond the spread."""
    return [
        _pairwise(frame, "a", "bottleneck noise makes tokens easier to model (lower PPL@1024 than without noise)",
                  reference, NOISE_OFF, ["ppl_1024"]),
        _pairwise(frame, "b", "replacement noise beats additive noise (PPL@1024 and AP)",
                  reference, NOISE_ADDITIVE, ["ppl_1024", "ap"]),
        _pairwise(frame, "c", "hard dual routing beats one shared codebook (lower PPL@1024, lower leakage both "
                              "ways)", reference, ROUTING_SHARED, ["ppl_1024", "leak_v2a", "leak_a2v"]),
        _pairwise(frame, "d", "training stage 3 on oracle stems beats separated stems (AP and PPL@1024)",
                  reference, ROUTING_SEPARATED, ["ap", "ppl_1024"]),
        _pairwise(frame, "e", "the multi-task heads act as semantic guardrails (higher AP than without heads)",
                  reference, HEADS_NONE, ["ap"]),
        _single_heads(frame, reference),
    ]


#: How an ablation claim is decided, in words, for the pages that state the verdicts (notebook 05_ablations
#: explains each rule at length).
CLAIM_RULES = (
    "Three rules, in order. (1) **Training seeds**: a claim is decided only when every variant it compares was "
    "trained with ≥ 2 seeds, otherwise it reads *not testable here (one training seed)*; each number is the mean "
    "over trainings, its ± the population std over them. (2) **Seed spread**: a difference counts only when it "
    "exceeds the two variants' combined spread. (3) **Songs**: for PPL@1024 and AP, a 95 % paired bootstrap "
    "over test songs must exclude 0 too. A lower PPL@1024 by codes that carry less information per frame "
    "reads *confounded*.")


def ablation_claims_record(frame: pd.DataFrame, claims: Sequence[Mapping[str, str]], *, profile: str,
                           train_seeds: Sequence[int]) -> dict[str, Any]:
    """``reports/metrics/ablation_claims.json``: the claims of :func:`ablation_claims` with the rules behind
    them and how many trainings each variant has (``n_train_seeds``) — what the front page states."""
    return {
        "profile": profile,
        "train_seeds": [int(s) for s in train_seeds],
        "n_train_seeds": {str(v): int(n) for v, n in frame["n_train_seeds"].items()},
        "rules": CLAIM_RULES,
        "claims": [dict(c) for c in claims],
    }


def claims_markdown(claims: Sequence[Mapping[str, str]]) -> str:
    """A pipe table ``claim | verdict | evidence`` (verdict in bold), as the results README shows claims."""
    lines = verdict_table(["", "claim", "verdict", "evidence"],
                          [(c.get("id", ""), c["claim"], c["verdict"], c["evidence"]) for c in claims], bold=2)
    return "\n".join(lines) + "\n"
