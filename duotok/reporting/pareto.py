"""Figure 1 of the paper: each codec as a bubble at (LM perplexity, reconstruction error), bubble area
proportional to its bitrate — the trade-off the paper argues Duo-Tok improves (lower-left is better on
both axes, and a small bubble there means it is also cheap).

Reconstruction error is ONE quantity for every codec: the **mixture Mel L1** — the toolkit's Mel
distance (:func:`duotok.eval.mel_distance.toolkit_mel_distance`, what
:func:`duotok.eval.reconstruction.reconstruction_metrics` reports as ``mel_l1``) between the true
mixture and the codec's mixture. A single-stream codec decodes the mixture itself; for a dual-track
codec it is the sum of its decoded vocal and accompaniment (:mod:`duotok.eval.roundtrip`). This is also
the quantity the toolkit's README publishes for the baselines, so the published points share the axis
(on other data). A row without a mixture Mel L1 has no point (``None``): the mean of a dual-track codec's
per-track values is a different quantity and is never substituted. That is why the paper's own Duo-Tok
point — (4.75, 0.93), 0.93 being the mean of its vocal 0.74 and accompaniment 1.12, the paper's Figure-1
convention — is not drawn: the paper publishes no mixture Mel L1 for Duo-Tok."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from duotok.reporting.figures import plt, save_figure
from duotok.reporting.table2 import published_rows

#: Bubble area in points² per kbps: area (not radius) is proportional to bitrate, so a 6 kbps codec
#: covers 8x the ink of a 0.75 kbps one, as its bitrate says (radius would exaggerate it to 64x).
AREA_PT2_PER_KBPS = 150.0
#: Reference bitrates of the size legend.
SIZE_REFERENCES_KBPS: tuple[float, ...] = (0.5, 2.0, 6.0)
#: Marker area for a codec without a known bitrate (drawn as a cross, not a bubble).
UNKNOWN_KBPS_AREA = 60.0
MEASURED_COLOR = "#4c72b0"
#: What the y axis is, for the axis label and for texts that describe Figure 1.
Y_LABEL = "mixture Mel L1 (toolkit definition) ↓"
QUANTITY = ("mixture Mel L1: the evaluation toolkit's Mel distance between the true mixture and the "
            "codec's mixture (dual-track codecs: the sum of the two decoded tracks)")
#: Legend entry of the published points: the toolkit README's mixture Mel L1 of each baseline.
PUBLISHED_LABEL = "published (toolkit README, mixture Mel L1; different data)"
PUBLISHED_COLOR = "0.55"


def _value(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def pareto_mel_l1(row: Mapping[str, Any]) -> float | None:
    """The codec's mixture Mel L1 (:data:`QUANTITY`), the same quantity for single-stream and
    dual-track codecs; ``None`` when the row has none (missing or NaN). Per-track values are never
    used in its place, so a row without a mixture is left out rather than placed on another scale."""
    recon = row.get("reconstruction") or {}
    return _value((recon.get("mixture") or {}).get("mel_l1"))


def pareto_points(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Columns ``codec``, ``ppl_1024``, ``mel_l1`` (the mixture's, :func:`pareto_mel_l1`), ``kbps`` (NaN if
    unknown). Rows without PPL@1024 or Mel L1 cannot be placed and are dropped; they are listed in
    ``points.attrs["dropped"]`` (``{codec: reason}``) so the caller can say which were left out."""
    points, dropped = [], {}
    for row in rows:
        ppl, mel = _value(row.get("ppl_1024")), pareto_mel_l1(row)
        missing = [name for name, v in (("PPL@1024", ppl), ("mixture Mel L1", mel)) if v is None]
        if missing:
            reason = "no " + " and no ".join(missing)
            recon = row.get("reconstruction") or {}
            if mel is None and any(_value((recon.get(t) or {}).get("mel_l1")) is not None
                                   for t in ("vocal", "accompaniment")):
                reason += " (per-track Mel L1 only: a different quantity)"
            dropped[str(row["codec"])] = reason
            continue
        kbps = _value(row.get("kbps"))
        points.append({"codec": str(row["codec"]), "ppl_1024": ppl, "mel_l1": mel,
                       "kbps": math.nan if kbps is None else kbps})
    frame = pd.DataFrame(points, columns=["codec", "ppl_1024", "mel_l1", "kbps"])
    frame.attrs["dropped"] = dropped
    return frame


def published_points() -> pd.DataFrame:
    """The published points, from the paper's Table 2 (:mod:`duotok.eval.published`), on the figure's
    quantity: the baselines' mixture Mel L1 as the toolkit's README publishes it. Duo-Tok's published
    row has per-track values only, so it is in ``attrs["dropped"]``, not drawn (see the module docstring)."""
    return pareto_points(published_rows())


def bubble_area(kbps: float) -> float:
    """Marker area (points², matplotlib's ``s``) of a bitrate: linear in kbps."""
    return AREA_PT2_PER_KBPS * kbps


def _draw(ax: plt.Axes, points: pd.DataFrame, published: bool) -> None:
    face = "none" if published else MEASURED_COLOR
    edge = PUBLISHED_COLOR if published else "k"
    for point in points.itertuples(index=False):
        known = not math.isnan(point.kbps)
        area = bubble_area(point.kbps) if known else UNKNOWN_KBPS_AREA
        if known:
            ax.scatter(point.ppl_1024, point.mel_l1, s=area, facecolors=face, edgecolors=edge, linewidths=1.2,
                       alpha=1.0 if published else 0.75, zorder=2 if published else 3)
        else:
            ax.scatter(point.ppl_1024, point.mel_l1, s=area, marker="x",
                       color=PUBLISHED_COLOR if published else MEASURED_COLOR, zorder=3)
        offset = math.sqrt(area / math.pi) + 3  # label just right of the bubble's edge
        ax.annotate(point.codec if known else f"{point.codec} (kbps n/a)", (point.ppl_1024, point.mel_l1),
                    xytext=(offset, 0), textcoords="offset points", va="center", fontsize=8,
                    color=PUBLISHED_COLOR if published else "k", style="italic" if published else "normal",
                    zorder=4 if published else 5,  # measured labels stay readable over published ones
                    bbox=None if published else {"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                                                 "alpha": 0.8})


def _padded_log_limits(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    return low / 1.6, high * 1.6


def plot_pareto(points: pd.DataFrame, title: str = "LM perplexity vs reconstruction (bubble area ∝ kbps)",
                published: pd.DataFrame | None = None, ax: plt.Axes | None = None,
                size_references: Sequence[float] = SIZE_REFERENCES_KBPS) -> plt.Figure:
    """Bubble chart of :func:`pareto_points`: x = PPL@1024 (log), y = mixture Mel L1, area ∝ kbps
    (:data:`AREA_PT2_PER_KBPS`), each labelled with its codec. ``published`` (e.g.
    :func:`published_points`) is drawn as hollow grey bubbles under a separate legend entry, since it
    was measured on different data. Draws into ``ax`` when given; returns the figure."""
    own_figure = ax is None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
    else:
        fig = ax.figure  # the caller owns its layout: no tight_layout on it
    if published is not None and len(published):
        _draw(ax, published, published=True)
    _draw(ax, points, published=False)

    ax.set_xscale("log")
    xs = [*points["ppl_1024"], *([] if published is None else published["ppl_1024"])]
    ys = [*points["mel_l1"], *([] if published is None else published["mel_l1"])]
    if xs:
        ax.set_xlim(*_padded_log_limits(xs))
        span = max(max(ys) - min(ys), 0.1)
        ax.set_ylim(min(ys) - 0.25 * span, max(ys) + 0.25 * span)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("PPL@1024 (normalised LM perplexity, log scale) ↓")
    ax.set_ylabel(Y_LABEL)
    ax.grid(alpha=0.3, which="both")
    ax.annotate("better", xy=(0.03, 0.04), xytext=(0.17, 0.2), xycoords="axes fraction",
                textcoords="axes fraction", fontsize=9, ha="center", color="0.3",
                arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 1.2})
    if title:
        ax.set_title(title, fontsize=10)

    source_handles = [Line2D([], [], marker="o", linestyle="none", markerfacecolor=MEASURED_COLOR,
                             markeredgecolor="k", markersize=8, label="measured (this repository)")]
    if published is not None and len(published):
        source_handles.append(Line2D([], [], marker="o", linestyle="none", markerfacecolor="none",
                                     markeredgecolor=PUBLISHED_COLOR, markersize=8,
                                     label=PUBLISHED_LABEL))
    # Figure-level legends anchored to the axes: they sit outside the plot and, unlike a second
    # axes legend added with add_artist, count for bbox_inches="tight", so they are never clipped.
    fig.legend(handles=source_handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
               bbox_transform=ax.transAxes, fontsize=8, frameon=False)
    size_handles = [ax.scatter([], [], s=bubble_area(k), facecolors="none", edgecolors="0.3",
                               label=f"{k:g} kbps") for k in size_references]
    fig.legend(handles=size_handles, loc="lower left", bbox_to_anchor=(1.02, 0.0),
               bbox_transform=ax.transAxes, fontsize=8, frameon=False, title="bubble area ∝ kbps",
               title_fontsize=8, labelspacing=1.8, borderpad=1.0, handlelength=3.0, handletextpad=1.2)
    if own_figure:
        fig.tight_layout()
    return fig


def save_pareto(fig: plt.Figure, out_stem: str | Path) -> list[Path]:
    """Write ``<out_stem>.png`` (dpi 150) and ``<out_stem>.svg`` reproducibly (temp file + rename)."""
    return save_figure(fig, out_stem, formats=("png", "svg"), dpi=150)
