"""The domain-gap report (:mod:`duotok.eval.domain_gap`) as tables, a figure and files.

Everything here reads the JSON record (:meth:`duotok.eval.domain_gap.DomainGapResult.to_dict`), so a
report can be redrawn from ``domain_gap.json`` without the models. Each number of the user's folder
stands next to the same number of the generated corpus and their difference ``Δ = folder − corpus``;
whether a positive Δ is good depends on the metric (SDR, PESQ, STOI, ViSQOL, entropy, usage: higher is
better; Mel L1: lower is better), which the tables say in their column names.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from duotok.io.files import atomic_write
from duotok.reporting.table2 import to_markdown

if TYPE_CHECKING:
    import matplotlib.pyplot as plt

    from duotok.eval.domain_gap import DomainGapResult

__all__ = ["FILES", "comparison_frame", "markdown_report", "plot_domain_gap", "render_domain_gap",
           "view_table", "write_domain_gap"]

#: File names written by :func:`write_domain_gap` (inside its ``out_dir``).
FILES: dict[str, str] = {"json": "domain_gap.json", "markdown": "domain_gap.md", "figure": "domain_gap.png"}
SIDES = ("folder", "corpus")
STEMS = ("vocals", "drums", "bass", "other")
#: Arrows in column names: the direction in which each number improves.
_ARROW = {"sdr": "↑", "sir": "↑", "sar": "↑", "mel_l1": "↓", "pesq": "↑", "stoi": "↑", "visqol": "↑",
          "entropy_rate_bps": "↑", "usage": "↑", "perplexity": "↑", "used": "↑", "entropy_bits": "↑",
          "entropy_fraction": "↑", "frames": ""}
#: Token statistics shown in the table (all are in the JSON).
TOKEN_COLUMNS = ("entropy_rate_bps", "entropy_bits", "used", "usage", "perplexity")


def _record(result: DomainGapResult | Mapping[str, Any]) -> Mapping[str, Any]:
    return result if isinstance(result, Mapping) else result.to_dict()


def _mean(stats: Any) -> tuple[float | None, int]:
    """``(mean, n)`` of a ``{"mean", "n"}`` summary entry (None when absent or undefined)."""
    if not isinstance(stats, Mapping):
        return None, 0
    mean = stats.get("mean")
    ok = mean is not None and math.isfinite(float(mean))
    return (float(mean) if ok else None), int(stats.get("n") or 0)


def comparison_frame(result: DomainGapResult | Mapping[str, Any]) -> pd.DataFrame:
    """Every summarised number of both sides, one row each: ``view, group`` (system / stream / track),
    ``item`` (stem, ``mean`` over stems, or ``-``), ``metric``, ``folder``, ``folder_n``, ``corpus``,
    ``corpus_n``, ``gap`` (folder − corpus; None when either side is missing). The means are the
    summaries' (means over tracks), so the table and the JSON never disagree."""
    record = _record(result)
    summaries = record.get("summaries", {})
    keyed: dict[tuple[str, str, str, str], dict[str, Any]] = {}

    def put(side: str, key: tuple[str, str, str, str], stats: Any) -> None:
        mean, n = _mean(stats)
        row = keyed.setdefault(key, {"view": key[0], "group": key[1], "item": key[2], "metric": key[3]})
        row[side], row[f"{side}_n"] = mean, n

    for side in SIDES:
        s = summaries.get(side, {})
        for system, summary in s.get("separation", {}).items():
            for stem, metrics in summary.get("stems", {}).items():
                for metric, stats in metrics.items():
                    put(side, ("separation", system, stem, metric), stats)
            for metric, stats in summary.get("average", {}).items():
                n = min((summary["stems"][st][metric].get("n", 0) for st in summary.get("stems", {})), default=0)
                put(side, ("separation", system, "mean", metric), {"mean": stats.get("mean"), "n": n})
        for stream, stats in s.get("tokens", {}).items():
            for metric, value in stats.items():
                put(side, ("tokens", stream, "-", metric), value)
        for track, stats in s.get("reconstruction", {}).items():
            for metric, value in stats.items():
                put(side, ("reconstruction", track, "-", metric), value)
    rows = []
    for row in keyed.values():
        for side in SIDES:
            row.setdefault(side, None)
            row.setdefault(f"{side}_n", 0)
        a, b = row["folder"], row["corpus"]
        row["gap"] = a - b if a is not None and b is not None else None
        rows.append(row)
    columns = ["view", "group", "item", "metric", "folder", "folder_n", "corpus", "corpus_n", "gap"]
    return pd.DataFrame(rows, columns=columns)


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _cell(row: Mapping[str, Any]) -> str:
    gap = row["gap"]
    sign = "+" if gap is not None and math.isfinite(gap) and gap >= 0 else ""    # a frame holds None as NaN
    return f"{_fmt(row['folder'])} / {_fmt(row['corpus'])} ({sign}{_fmt(gap)})"


def view_table(frame: pd.DataFrame, view: str, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One view of :func:`comparison_frame` as people read it: a row per system · stem (separation),
    stream (tokens) or track (reconstruction), a column per metric holding ``folder / corpus (Δ)``, and
    ``n`` (tracks behind the numbers, folder / corpus)."""
    part = frame[frame["view"] == view]
    if metrics is not None:
        part = part[part["metric"].isin(metrics)]
    if part.empty:
        return pd.DataFrame()
    present = list(dict.fromkeys(part["metric"]))
    order = [m for m in metrics if m in present] if metrics is not None else present   # the caller's order
    table: dict[str, dict[str, str]] = {}
    for row in part.to_dict("records"):
        label = f"{row['group']} · {row['item']}" if row["item"] != "-" else row["group"]
        entry = table.setdefault(label, {})
        entry[f"{row['metric']} {_ARROW.get(row['metric'], '')}".strip()] = _cell(row)
        entry.setdefault("n (folder / corpus)", f"{row['folder_n']} / {row['corpus_n']}")
    out = pd.DataFrame.from_dict(table, orient="index")
    columns = [c for m in order for c in out.columns if c.split(" ")[0] == m] + ["n (folder / corpus)"]
    out = out[list(dict.fromkeys(columns))]
    out.index.name = {"separation": "system · stem", "tokens": "stream", "reconstruction": "track"}[view]
    return out.fillna("—")


def markdown_report(result: DomainGapResult | Mapping[str, Any]) -> str:
    """The report as Markdown: what was compared, one table per view, and every skipped folder and failure
    (each named), so a reader sees what the numbers rest on."""
    record = _record(result)
    settings, datasets = record.get("settings", {}), record.get("datasets", {})
    frame = comparison_frame(record)
    lines = ["# Domain gap: the user's folder vs the generated corpus", ""]
    for side in SIDES:
        d = datasets.get(side, {})
        t = record.get("summaries", {}).get(side, {}).get("tracks", {})
        lines.append(f"* **{side}**: `{d.get('root')}` ({d.get('layout')}, split(s) {', '.join(d.get('splits', []))}): "
                     f"{t.get('considered', 0)} of {t.get('found', 0)} track(s) considered, {t.get('ok', 0)} ok, "
                     f"{t.get('partial', 0)} partial, {t.get('failed', 0)} failed")
    lines += [f"* excerpts: the centre {settings.get('excerpt_seconds')} s of each track "
              f"({settings.get('sample_rate')} Hz mono); models: `{settings.get('models_dir')}`",
              "", "Cells read `folder / corpus (Δ = folder − corpus)`, each a mean over tracks; ↑ / ↓: the "
              "direction in which the metric improves.", ""]
    titles = {"separation": "Separation (museval, per stem; `mean`: over stems)",
              "tokens": "Duo-Tok tokens of the true stems (per track: ~25 tokens/s, entropy in bits)",
              "reconstruction": "Codec round trip of the true stems"}
    for view, title in titles.items():
        metrics = TOKEN_COLUMNS if view == "tokens" else None
        table = view_table(frame, view, metrics)
        lines += [f"## {title}", ""]
        lines += [to_markdown(table), ""] if not table.empty else ["Not computed.", ""]
        if view == "tokens":
            pooled = {side: record.get("summaries", {}).get(side, {}).get("tokens_pooled", {}) for side in SIDES}
            streams = list(dict.fromkeys(s for p in pooled.values() for s in p))
            if streams:
                rows = {s: {f"{side}: used codes (all tracks)": (f"{pooled[side][s]['used']} / "
                                                                  f"{pooled[side][s]['codebook_size']}"
                                                                  if s in pooled[side] else "—")
                            for side in SIDES} for s in streams}
                pooled_table = pd.DataFrame.from_dict(rows, orient="index")
                pooled_table.index.name = "stream"
                lines += [to_markdown(pooled_table), ""]
    skipped, failures = record.get("skipped", []), record.get("failures", [])
    if skipped:
        lines += ["## Skipped folders", ""] + [f"* `{s['path']}`: {s['reason']}" for s in skipped] + [""]
    lines += ["## Failures", ""]
    lines += ([f"* {f['dataset']} `{f['song']}` ({f['stage']}): {f['error']}" for f in failures]
              if failures else ["None: every track was scored in every view."])
    return "\n".join(lines) + "\n"


def plot_domain_gap(result: DomainGapResult | Mapping[str, Any]) -> plt.Figure:
    """Three panels, folder (solid) next to corpus (hatched): per-stem SDR of each separator, the token
    entropy rate of each stream (with the codebook's ceiling ``log2 V × frame rate``), and the round
    trip's Mel L1 per track. A view that was not computed says so in its panel."""
    from duotok.reporting.figures import plt

    record = _record(result)
    frame = comparison_frame(record)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def bars(ax: Any, part: pd.DataFrame, groups: Sequence[str], items: Sequence[str], ylabel: str) -> None:
        width = 0.8 / max(1, 2 * len(groups))
        for g, group in enumerate(groups):
            for s, side in enumerate(SIDES):
                values = []
                for item in items:
                    hit = part[(part["group"] == group) & (part["item"] == item)]
                    v = hit[side].iloc[0] if not hit.empty else None
                    values.append(float("nan") if v is None else float(v))
                x = [i + (2 * g + s - len(groups) + 0.5) * width for i in range(len(items))]
                ax.bar(x, values, width, color=colors[g % len(colors)], alpha=1.0 if side == "folder" else 0.45,
                       hatch=None if side == "folder" else "//", edgecolor="black", linewidth=0.4,
                       label=f"{group} · {side}")
        ax.set_xticks(range(len(items)), items)
        ax.set_ylabel(ylabel)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.legend(fontsize=7, ncol=2)

    def empty(ax: Any, what: str) -> None:
        ax.text(0.5, 0.5, f"{what}: not computed", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])

    sep = frame[(frame["view"] == "separation") & (frame["metric"] == "sdr")]
    if sep.empty:
        empty(axes[0], "separation")
    else:
        items = [s for s in (*STEMS, "mean") if s in set(sep["item"])]
        bars(axes[0], sep, list(dict.fromkeys(sep["group"])), items, "SDR (dB, mean over tracks) ↑")
        axes[0].set_title("separation: folder (solid) vs corpus (hatched)")
    tok = frame[(frame["view"] == "tokens") & (frame["metric"] == "entropy_rate_bps")]
    if tok.empty:
        empty(axes[1], "tokens")
    else:
        streams = list(dict.fromkeys(tok["group"]))
        bars(axes[1], tok.assign(group="Duo-Tok", item=tok["group"]), ["Duo-Tok"], streams,
             "unigram entropy rate (bits/s) ↑")
        settings = record.get("settings", {})
        if settings.get("frame_rate") and settings.get("codebook_sizes"):
            ceiling = float(settings["frame_rate"]) * math.log2(max(settings["codebook_sizes"]))
            axes[1].axhline(ceiling, color="grey", linestyle="--", linewidth=0.8)
            axes[1].text(len(streams) - 0.5, ceiling, "log2 V × rate", ha="right", va="bottom", fontsize=7)
        axes[1].set_title("tokens of the true stems")
    rec = frame[(frame["view"] == "reconstruction") & (frame["metric"] == "mel_l1")]
    if rec.empty:
        empty(axes[2], "reconstruction (Mel L1)")
    else:
        tracks = list(dict.fromkeys(rec["group"]))
        bars(axes[2], rec.assign(group="Duo-Tok", item=rec["group"]), ["Duo-Tok"], tracks, "Mel L1 ↓")
        axes[2].set_title("codec round trip")
    fig.tight_layout()
    return fig


def _figure_bytes(fig: plt.Figure, dpi: int = 110) -> bytes:
    """The PNG of ``fig`` without a timestamp (as :func:`duotok.reporting.figures.save_figure` writes
    them), rendered in memory so a failure leaves no file behind."""
    from duotok.reporting.figures import plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def render_domain_gap(result: DomainGapResult | Mapping[str, Any]) -> dict[str, bytes]:
    """The three files' contents, keyed as :data:`FILES`: JSON, Markdown, PNG."""
    record = _record(result)
    text = json.dumps(record, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    return {"json": text.encode("utf-8"), "markdown": markdown_report(record).encode("utf-8"),
            "figure": _figure_bytes(plot_domain_gap(record))}


def write_domain_gap(result: DomainGapResult | Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write :data:`FILES` into ``out_dir`` (created if needed). Everything is rendered before the first
    byte is written, and each file replaces the old one atomically (a temp file beside it, then a rename):
    a failed report leaves the previous files as they were, never half a file. Returns the paths."""
    contents = render_domain_gap(result)
    out = Path(out_dir)
    written = {}
    for key, name in FILES.items():
        with atomic_write(out / name, "wb") as fh:
            fh.write(contents[key])
        written[key] = out / name
    return written
