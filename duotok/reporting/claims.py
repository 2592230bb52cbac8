"""The paper's headline claim, checked against measured rows: "at 0.75 kbps Duo-Tok has the best
tagging AP and the lowest normalised LM perplexity while reconstructing about as well as far costlier
codecs". The claim is a *comparison*, so it is split into parts that each get a verdict from the
numbers — "confirmed", "not confirmed", or "not testable" when the numbers to compare are missing —
instead of reading one absolute score against the paper's.

Ties: a subject equal (within :data:`TIE_TOLERANCE`) to the best competitor counts as best, and the
evidence says "tied"."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from duotok.reporting.pareto import pareto_mel_l1

TIE_TOLERANCE = 1e-9
CONFIRMED, NOT_CONFIRMED, NOT_TESTABLE = "confirmed", "not confirmed", "not testable"
#: Metrics of :func:`head_to_head` → whether higher is better.
HIGHER_IS_BETTER: dict[str, bool] = {"ap": True, "ppl_1024": False, "bits_per_second": False, "mel_l1": False}
LABELS: dict[str, str] = {"ap": "AP", "ppl_1024": "PPL@1024", "bits_per_second": "bits/s", "mel_l1": "Mel L1"}


def metric_value(row: Mapping[str, Any], metric: str) -> float | None:
    """A row's value of ``metric``; ``mel_l1`` is the per-codec Mel L1 of the Pareto figure (mean of
    vocal and accompaniment for dual-track codecs, mixture otherwise). ``None`` if missing or NaN."""
    value = pareto_mel_l1(row) if metric == "mel_l1" else row.get(metric)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _split(rows: Sequence[Mapping[str, Any]], subject: str) -> tuple[Mapping[str, Any] | None,
                                                                      list[Mapping[str, Any]]]:
    matches = [row for row in rows if row["codec"] == subject]
    if len(matches) > 1:
        raise ValueError(f"{len(matches)} rows are named {subject!r}; a comparison needs exactly one")
    return (matches[0] if matches else None), [row for row in rows if row["codec"] != subject]


def combined_spread(*stds: Any) -> float:
    """How far apart two means measured over seeds may be and still not differ: ``std_a + std_b``
    (population std over seeds, as the probe and the LM report it). A side without a spread (one seed,
    or none reported: ``None`` / NaN) adds 0. The one rule behind Table 2's head-to-head and the
    ablation tables (:mod:`duotok.reporting.ablations`)."""
    return sum(0.0 if s is None or math.isnan(float(s)) else float(s) for s in stds)


def tie_margin(a: Mapping[str, Any], b: Mapping[str, Any], metric: str) -> float:
    """How far apart two rows' ``metric`` may be and still tie: their :func:`combined_spread` where the
    rows carry ``<metric>_std`` (the probe's AP), else :data:`TIE_TOLERANCE`. A difference smaller than
    the spread between seeds of the same codec is not a win."""
    return max(combined_spread(a.get(f"{metric}_std"), b.get(f"{metric}_std")), TIE_TOLERANCE)


def _num(value: float) -> str:
    return f"{value:.4g}"


def _best_claim(claim: str, rows: Sequence[Mapping[str, Any]], subject: str, metric: str) -> dict[str, str]:
    """Is the subject the best (highest or lowest per :data:`HIGHER_IS_BETTER`) on ``metric`` among
    all rows that report it?"""
    label, higher = LABELS[metric], HIGHER_IS_BETTER[metric]
    own, others = _split(rows, subject)
    mine = None if own is None else metric_value(own, metric)
    rivals = [(r, v) for r in others if (v := metric_value(r, metric)) is not None]
    if mine is None or not rivals:
        who = (f"no row named {subject!r}" if own is None else f"{subject} has no {label}" if mine is None
               else f"no other codec has {label}")
        return {"claim": claim, "verdict": NOT_TESTABLE, "evidence": who}
    pick: Callable[..., tuple[Mapping[str, Any], float]] = max if higher else min
    best_row, best = pick(rivals, key=lambda item: item[1])
    margin = tie_margin(own, best_row, metric)  # type: ignore[arg-type]  # own is set: mine is not None
    diff = (mine - best) if higher else (best - mine)  # > 0: subject better
    verdict = CONFIRMED if diff >= -margin else NOT_CONFIRMED
    relation = "tied with" if abs(diff) <= margin else ("better than" if diff > 0 else "worse than")
    spread = f", within the seed spread {_num(margin)}" if relation == "tied with" and margin > TIE_TOLERANCE else ""
    evidence = (f"{subject} {label} {_num(mine)} {relation} best other {best_row['codec']} {_num(best)}{spread} "
                f"({len(rivals)} other codec(s) with {label}; {'higher' if higher else 'lower'} is better)")
    return {"claim": claim, "verdict": verdict, "evidence": evidence}


def _reconstruction_claim(rows: Sequence[Mapping[str, Any]], subject: str,
                          tolerance: float) -> dict[str, str]:
    """Is the subject's Mel L1 within ``tolerance`` (absolute) of the best codec with a higher bitrate?"""
    claim = f"reconstruction (Mel L1) within {tolerance:g} of the best costlier codec"
    own, others = _split(rows, subject)
    mel = None if own is None else metric_value(own, "mel_l1")
    kbps = None if own is None else metric_value(own, "kbps")
    if mel is None or kbps is None:
        missing = "Mel L1" if mel is None else "kbps"
        who = f"no row named {subject!r}" if own is None else f"{subject} has no {missing}"
        return {"claim": claim, "verdict": NOT_TESTABLE, "evidence": who}
    costlier = [(str(r["codec"]), m, k) for r in others
                if (k := metric_value(r, "kbps")) is not None and k > kbps
                and (m := metric_value(r, "mel_l1")) is not None]
    if not costlier:
        return {"claim": claim, "verdict": NOT_TESTABLE,
                "evidence": f"no codec above {_num(kbps)} kbps has a Mel L1"}
    name, best, best_kbps = min(costlier, key=lambda item: item[1])
    gap = mel - best
    verdict = CONFIRMED if gap <= tolerance + TIE_TOLERANCE else NOT_CONFIRMED
    evidence = (f"{subject} Mel L1 {mel:.3f} at {_num(kbps)} kbps vs best costlier {name} {best:.3f} "
                f"at {_num(best_kbps)} kbps: gap {gap:+.3f}, tolerance {tolerance:g}")
    return {"claim": claim, "verdict": verdict, "evidence": evidence}


def claim_verdicts(rows: Sequence[Mapping[str, Any]], subject: str = "Duo-Tok",
                   mel_tolerance: float = 0.15) -> list[dict[str, str]]:
    """One ``{"claim", "verdict", "evidence"}`` per part of the claim, in order: (a) best AP among
    token codecs (rows with an AP), (b) lowest PPL@1024, (c) lowest LM bits/s (the codec-independent
    form of (b)), (d) Mel L1 within ``mel_tolerance`` (absolute) of the best codec with a higher kbps.
    Per-baseline wins and losses are :func:`head_to_head`."""
    return [
        _best_claim("best tagging AP among token codecs", rows, subject, "ap"),
        _best_claim("lowest normalised LM perplexity (PPL@1024)", rows, subject, "ppl_1024"),
        _best_claim("lowest LM bits per second", rows, subject, "bits_per_second"),
        _reconstruction_claim(rows, subject, mel_tolerance),
    ]


def head_to_head(rows: Sequence[Mapping[str, Any]], subject: str = "Duo-Tok",
                 metrics: str | Sequence[str] = tuple(HIGHER_IS_BETTER)) -> pd.DataFrame:
    """Subject against each other codec: index = codec (input order), one column per metric key
    (``ap``, ``ppl_1024``, ``bits_per_second``, ``mel_l1``), cells "beat" / "lost" / "tie" (equal
    within :func:`tie_margin`: the seed spread where the rows carry one) / "n/a" (either side lacks the metric, or no subject row)."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = set(metrics) - set(HIGHER_IS_BETTER)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; expected some of {list(HIGHER_IS_BETTER)}")
    own, others = _split(rows, subject)
    table: dict[str, dict[str, str]] = {}
    for row in others:
        cells = {}
        for metric in metrics:
            mine = None if own is None else metric_value(own, metric)
            theirs = metric_value(row, metric)
            if mine is None or theirs is None:
                cells[metric] = "n/a"
                continue
            diff = (mine - theirs) if HIGHER_IS_BETTER[metric] else (theirs - mine)
            tie = abs(diff) <= tie_margin(own, row, metric)  # type: ignore[arg-type]
            cells[metric] = "tie" if tie else ("beat" if diff > 0 else "lost")
        table[str(row["codec"])] = cells
    frame = pd.DataFrame.from_dict(table, orient="index", columns=metrics)
    frame.index.name = "codec"
    return frame
