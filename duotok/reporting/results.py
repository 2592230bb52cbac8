"""Assemble Table 2's measured rows from the pipeline's metric files, and render from them the Table-2
page ``reports/tokenizers.md`` and the claims record ``reports/metrics/claims.json`` that the front page
(``reports/README.md``, :mod:`duotok.reporting.front_page`) states. Kept out of the notebook so a test can
reach every number the page states."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from duotok.eval.records import RECONSTRUCTION_SYSTEMS
from duotok.reporting.claims import claim_verdicts, head_to_head, training_seeds
from duotok.reporting.front_page import SCALE_NOTE, verdict_table
from duotok.reporting.markdown import markdown_table
from duotok.reporting.pareto import QUANTITY, pareto_mel_l1
from duotok.reporting.table2 import INFORMATION_NOTE

#: Table-2 display names and what kind of codec each row is.
DISPLAY = {
    "duotok": ("Duo-Tok", "dual-track semantic (this repository)"),
    "rvq": ("RVQ codec", "acoustic RVQ (EnCodec/DAC-style)"),
    "mixture_vq": ("single codebook", "semantic, mixture, 1 codebook"),
    "mucodec": ("MuCodec-style", "semantic, per stem, no stage 2"),
    "kmeans": ("k-means", "SSL features + k-means (HuBERT-style)"),
    "opus": ("Opus", "waveform codec (reconstruction only)"),
}


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing — run the stage that writes it (dvc repro)")
    return json.loads(path.read_text())


def _recon(tracks: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    return {t: {m: v for m, v in d.items() if m != "n" and v is not None} for t, d in tracks.items()}


def collect_rows(metrics_dir: str | Path, codecs: Sequence[str], source: str = "oracle") -> list[dict[str, Any]]:
    """One Table-2 row per codec from ``reconstruction.json``, ``baselines/*.json``, ``lm.json`` and
    ``probe.json`` under ``metrics_dir``. ``source``: which round trip of dual-track codecs to show."""
    metrics_dir = Path(metrics_dir)
    lm = _read(metrics_dir / "lm.json")["codecs"]
    probe = _read(metrics_dir / "probe.json")["codecs"]
    rows = []
    for codec in codecs:
        name, kind = DISPLAY.get(codec, (codec, ""))
        row: dict[str, Any] = {"codec": name, "kind": kind, "key": codec}
        if codec == "duotok":
            recon = _read(metrics_dir / "reconstruction.json")["measured"][RECONSTRUCTION_SYSTEMS[source]]
            row["reconstruction"] = _recon(recon)
        else:
            b = _read(metrics_dir / "baselines" / f"{codec}.json")
            rec = b["reconstruction"]
            row["reconstruction"] = _recon(rec.get(source, rec.get("oracle", {})))
            row["kbps"] = b["kbps"]
            if b.get("token_rate") is not None:
                row.update(token_rate=b["token_rate"], codebooks=b["codebooks"])
        if codec in lm:
            entry = lm[codec]
            row.update(token_rate=entry["frame_rate"], ppl_1024=entry["ppl_1024"],
                       bits_per_second=entry["bits_per_second"], kbps=entry["kbps"], codebooks=entry["codebooks"])
            # Issue 18: what the tokens could carry, and the per-song values keyed by training seed.
            for key in ("entropy_rate_bps", "codebook_usage", "per_song_by_seed", "per_training_seed"):
                if entry.get(key) is not None:
                    row[key] = entry[key]
        if codec in probe:
            p = probe[codec]
            row.update(ap=p["ap_mean"], ap_std=p["ap_std"], auc=p["auc_mean"], auc_std=p["auc_std"],
                       probe_seeds=len(p.get("per_seed") or []))
            if p.get("per_song_by_seed"):     # each test song's tag AP per codec-training seed
                row["probe_per_song_by_seed"] = p["per_song_by_seed"]
            if "tags_dropped" in p:
                row.update(tags_dropped=p["tags_dropped"], tags_kept=p.get("tags_kept"),
                           min_positive_test_songs=p.get("min_positive_test_songs"))
        rows.append(row)
    return rows


def verdict_rules(rows: Sequence[Mapping[str, Any]], subject: str) -> list[str]:
    """What each verdict requires, and how many codec-training seeds this run has (Markdown lines)."""
    seeds = {str(r["codec"]): len(training_seeds(r)) for r in rows if r.get("ppl_1024") is not None}
    if not seeds or max(seeds.values()) < 2:
        run = ("Every codec here was trained **once** (one training seed), so no claim can be confirmed on this run. "
               "The ± of AP/AUC is the spread over probe seeds on one trained codec and the LM is trained with one "
               "seed: both measure the evaluation's noise, not that of training the codec again.")
    else:
        run = (f"Codec-training seeds per codec: {', '.join(f'{k} {v}' for k, v in seeds.items())}; a comparison "
               "with a codec trained once stays *not testable here (one training seed)*.")
    return [
        "Verdicts: **confirmed** — the subject is ahead of every rival with ≥ 2 codec-training seeds of each, the "
        "difference exceeds the spread over those seeds and a paired bootstrap over test songs (95 %) excludes 0; "
        "for PPL@1024 and LM bits/s also its tokens must not carry less information (unigram entropy rate) than "
        "a rival's. **confounded** — it wins on PPL@1024 or LM bits/s with tokens that carry fewer bits per second "
        "than a rival it beats: predictability bought by saying less. **not confirmed** — a rival is ahead on "
        "the measured numbers, or the seed-and-song test finds no difference. **not testable here** — numbers are "
        "missing; **(one training seed)** — the subject is ahead on this run but each codec was trained once; "
        "the evidence then gives the bootstrap interval over test songs for that one seed where per-song values "
        "exist (the LM's; for AP each song's own tag AP, averaged over probe seeds).",
        "",
        run,
    ]


def dropped_tags_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """Which tags the mean AP/AUC leaves out (too few positive test songs, ``probe.min_positive_test_songs``)
    and why, from the first row that records it (every codec is probed on the same test songs and tags);
    "" when no row does."""
    for row in rows:
        dropped = row.get("tags_dropped")
        if dropped is None:
            continue
        kept = row.get("tags_kept") or []
        threshold = row.get("min_positive_test_songs")
        if not dropped:
            return f"AP/AUC average over all {len(kept)} tags (each has ≥ {threshold} positive test songs)."
        names = ", ".join(f"{tag} ({why})" for tag, why in dropped.items())
        return (f"AP/AUC average over the {len(kept)} tags with ≥ {threshold} positive test songs; "
                f"{len(dropped)} tag(s) are left out, their AP turning on one or two songs: {names}.")
    return ""


def _dropped_tags_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    note = dropped_tags_note(rows)
    return [note, ""] if note else []


def _fmt(x: Any, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def claims_record(rows: Sequence[Mapping[str, Any]], *, profile: str, mel_tolerance: float,
                  subject: str = "Duo-Tok") -> dict[str, Any]:
    """``reports/metrics/claims.json``: Table 2's claims checked on ``rows`` — each ``{claim, verdict,
    evidence}`` (:func:`~duotok.reporting.claims.claim_verdicts`), the rules behind the verdicts and each
    codec's training seeds — what the front page states without recomputing anything."""
    return {
        "profile": profile,
        "subject": subject,
        "training_seeds": {str(r["codec"]): training_seeds(r) for r in rows if r.get("ppl_1024") is not None},
        "rules": verdict_rules(rows, subject),
        "claims": claim_verdicts(list(rows), subject=subject, mel_tolerance=mel_tolerance),
    }


def render_tokenizer_page(rows: Sequence[Mapping[str, Any]], lm_protocols: pd.DataFrame,
                          record: Mapping[str, Any], *, source: str) -> str:
    """``reports/tokenizers.md``: Table 2, Figure 1, the paper's Table-2 claims and the LM protocols, every
    number from ``rows`` / ``lm_protocols``; the claims, their rules, the profile and the subject from
    ``record`` (:func:`claims_record`, so the verdicts are decided once for the page and the front page)."""
    profile, subject = record["profile"], record["subject"]
    h2h = head_to_head(list(rows), subject=subject)
    subject_row = next(r for r in rows if r["codec"] == subject)
    lines = [
        "# Tokenizers compared: Table 2, Figure 1 and the paper's claims",
        "",
        f"Everything below was measured by `dvc repro` on the **{profile}** profile and is regenerated by it "
        "(stage `report`, notebook `notebooks/08_report.py`; executed copy in `reports/notebooks/08_report.ipynb`). "
        "Compare a rerun with `dvc metrics diff`. The front page, [`README.md`](README.md), gathers these verdicts "
        "with the ablations' and the separation benchmark's.",
        "",
        SCALE_NOTE,
        "",
        "## Table 2 — tokenizers compared",
        "",
        "[`tables/table2.md`](tables/table2.md) (also `.csv`, `.tex`): token rate, codebooks, kbps, tagging "
        "AP/AUC (probe, mean ± std over probe seeds on one trained codec), PPL@1024 and bits/s (LM), the test "
        "tokens' entropy rate and codebook usage, and PESQ / STOI / Mel L1 / ViSQOL "
        f"(dual-track codecs: vocal / accompaniment, from the **{source}** stems). The paper's own table follows it, "
        "separately, labelled as published.",
        "",
        INFORMATION_NOTE,
        "",
        *_dropped_tags_lines(rows),
        "Mel L1 is the evaluation toolkit's Mel distance (Codec-Evaluation `calculate_mel_distance`: HTK mel, no "
        "area normalisation, ln of the mel power clamped at 1e-5, mean over 7 scales; "
        "`duotok.eval.mel_distance`), the definition of the published baselines' Mel L1 — same definition, "
        "different data. ViSQOL (audio mode, 48 kHz) barely reacts to phase on this corpus: in an audit, the "
        "exact magnitudes with random phase scored 4.29–4.53 while a 4 kHz low-pass with perfect phase scored "
        "3.54–4.43; read it next to PESQ and STOI, which do react to phase.",
        "",
        "## Figure 1 — the trade-off",
        "",
        "![Figure 1](figures/fig1_pareto.png)",
        "",
        "[`figures/fig1_pareto.png`](figures/fig1_pareto.png) (+ `.svg`): x = PPL@1024 (log), y = "
        f"{QUANTITY} — one quantity for every codec; bubble area ∝ kbps; lower-left is better. Published "
        "points (hollow, for orientation) are the baselines' mixture Mel L1 from the toolkit's README, the same "
        "quantity on other data.",
        f"Here {subject} sits at ({_fmt(subject_row.get('ppl_1024'))}, {_fmt(pareto_mel_l1(subject_row))}). "
        "The paper draws Duo-Tok at (4.75, 0.93), where 0.93 is the mean of its *per-track* Mel L1 (vocal 0.74, "
        "accompaniment 1.12) — a different quantity (no mixture Mel L1 was published), so that point is not drawn.",
        "",
        "## The paper's claims, checked on this run",
        "",
        *record["rules"],
        "",
        *verdict_table(["claim", "verdict", "evidence"],
                       [(v["claim"], v["verdict"], v["evidence"]) for v in record["claims"]], bold=1),
    ]
    lines += ["", f"Head to head ({subject} vs each baseline on this one training run — point comparisons, not "
              "verdicts; AP higher is better, the rest lower; \"beat (confounded)\": a PPL@1024 or bits/s win by "
              "tokens with a lower entropy rate):", ""]
    lines += [markdown_table(h2h)]
    lines += [
        "",
        "## LM protocols",
        "",
        "[`tables/lm_protocols.md`](tables/lm_protocols.md): (i) the unconditional LM over all of a codec's "
        "codebooks; (ii) accompaniment tokens given the vocal tokens and an accompaniment prefix, against the "
        "same accompaniment LM without the vocal condition (same prefix, same scored frames).",
        "",
        markdown_table(lm_protocols),
        "",
        "## How to regenerate",
        "",
        "```bash",
        "dvc repro report      # this page, Table 2 and Figure 1 from the existing metrics",
        "dvc metrics diff      # compare your rerun with the committed numbers",
        "```",
    ]
    return "\n".join(lines) + "\n"
