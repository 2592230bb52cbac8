"""The paper's Table 2 regenerated from numbers measured in this repository, with the published table
kept beside it in a separate, clearly labelled section: the published rows come from other data at
another scale, so they are context, never a column of the measured table.

A *row* is the plain dict the pipeline produces (``codec``, ``kind``, ``token_rate``, ``codebooks``,
``kbps``, ``ap``/``ap_std``, ``auc``/``auc_std``, ``ppl_1024``, ``bits_per_second``, ``entropy_rate_bps``
(the test tokens' unigram entropy rate, bits/s), ``codebook_usage`` (used fraction of the codebook
entries, mean over codebooks) and ``reconstruction = {track: {metric: value}}``); any value may be ``None``. Two shapes are derived:

* :func:`measured_frame` — numeric, one column per (metric, track) pair: what goes to CSV, so the
  numbers survive a round trip without parsing display strings;
* :func:`format_table` — display strings in the paper's layout ("vocal / accompaniment" cells for
  dual-track codecs, the mixture for single-stream ones, "—" for missing).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from duotok.eval.published import DUOTOK, TABLE2
from duotok.io.files import atomic_write

#: Display columns, in the paper's order (the codec is the index).
TABLE2_COLUMNS: tuple[str, ...] = ("Token rate", "Codebooks", "kbps", "AP", "AUC", "PPL@1024", "bits/s",
                                   "Token H bits/s", "Code usage", "PESQ", "STOI", "Mel L1", "ViSQOL")

#: Reconstruction tracks a row may report; dual-track codecs report vocal + accompaniment (+ mixture).
TRACKS: tuple[str, ...] = ("vocal", "accompaniment", "mixture")
#: Reconstruction metrics → display column.
RECON_METRICS: dict[str, str] = {"pesq": "PESQ", "stoi": "STOI", "mel_l1": "Mel L1", "visqol": "ViSQOL"}
#: Scalar (per-codec) numeric fields of a row, in CSV order.
SCALAR_FIELDS: tuple[str, ...] = ("token_rate", "kbps", "ap", "ap_std", "auc", "auc_std", "ppl_1024",
                                  "bits_per_second", "entropy_rate_bps", "codebook_usage")

#: What the two information columns are, for the table's notes (Table 2 md and reports/README.md).
INFORMATION_NOTE = (
    "*Token H bits/s*: unigram entropy rate of the codec's test tokens (Shannon entropy of each codebook's "
    "code frequencies × token rate, summed over codebooks) — how much the tokens could say per second, "
    "an upper bound that ignores order; *Code usage*: share of the codebook entries used on the test songs "
    "(mean over codebooks). Read PPL@1024 and LM bits/s beside them: a low perplexity from tokens that carry "
    "few bits per second is predictability bought by saying less.")

MISSING = "—"
PUBLISHED_TITLE = "Published (paper Table 2) — different data and scale, not comparable number-for-number"


def recon_column(metric: str, track: str) -> str:
    """Long numeric column name of one reconstruction metric on one track, e.g. ``pesq_vocal``."""
    return f"{metric}_{track}"


def _number(value: Any) -> float:
    """``None`` (and anything NaN-like) becomes NaN so the frame stays numeric."""
    return math.nan if value is None else float(value)


def measured_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Numeric frame, one row per codec (in input order): ``codec``, ``kind``, ``codebooks`` and the
    scalar fields, then ``<metric>_<track>`` for every reconstruction metric and track (NaN where not
    measured). Extra metrics inside ``reconstruction`` are ignored; an unknown *track* name raises,
    because a typo ("vocals") would silently turn a dual-track codec into a single-stream one."""
    records = []
    for row in rows:
        record: dict[str, Any] = {"codec": str(row["codec"]), "kind": row.get("kind"),
                                  "codebooks": row.get("codebooks")}
        record.update({field: _number(row.get(field)) for field in SCALAR_FIELDS})
        recon = row.get("reconstruction") or {}
        unknown = set(recon) - set(TRACKS)
        if unknown:
            raise ValueError(f"{row['codec']}: unknown reconstruction track(s) {sorted(unknown)}; "
                             f"expected some of {TRACKS}")
        for metric in RECON_METRICS:
            for track in TRACKS:
                record[recon_column(metric, track)] = _number((recon.get(track) or {}).get(metric))
        records.append(record)
    columns = ["codec", "kind", "codebooks", *SCALAR_FIELDS,
               *(recon_column(m, t) for m in RECON_METRICS for t in TRACKS)]
    return pd.DataFrame.from_records(records, columns=columns)


def _fmt(value: Any, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{float(value):.{decimals}f}"


def _fmt_rate(value: Any) -> str:
    """Token rates are usually integers (25, 75) but may be fractional (12.5): shortest exact form."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{float(value):g}"


def _fmt_percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{100.0 * float(value):.1f} %"


def _fmt_std(value: Any, std: Any) -> str:
    """``0.41 ± 0.02`` when a standard deviation was measured, else just the mean."""
    text = _fmt(value, 2)
    if text == MISSING or std is None or (isinstance(std, float) and math.isnan(std)):
        return text
    return f"{text} ± {float(std):.2f}"


def _is_dual(record: pd.Series) -> bool:
    """A codec is dual-track when it reports anything for vocal or accompaniment."""
    return any(pd.notna(record.get(recon_column(m, t))) for m in RECON_METRICS
               for t in ("vocal", "accompaniment"))


def _fmt_recon(record: pd.Series, metric: str, dual: bool) -> str:
    """Paper format: "v / a" for dual-track codecs, the mixture for single-stream ones. A dual-track
    codec with neither vocal nor accompaniment value for this metric falls back to its mixture."""
    vocal, accomp, mixture = (record.get(recon_column(metric, t)) for t in TRACKS)
    if dual and (pd.notna(vocal) or pd.notna(accomp)):
        return f"{_fmt(vocal, 2)} / {_fmt(accomp, 2)}"
    return _fmt(mixture, 2)


def format_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Display strings (index: codec, columns: :data:`TABLE2_COLUMNS`) from a :func:`measured_frame`."""
    out = []
    for _, record in frame.iterrows():
        dual = _is_dual(record)
        codebooks = record.get("codebooks")
        cells = {
            "Token rate": _fmt_rate(record.get("token_rate")),
            "Codebooks": MISSING if codebooks is None or pd.isna(codebooks) else str(codebooks),
            "kbps": _fmt(record.get("kbps"), 2),
            "AP": _fmt_std(record.get("ap"), record.get("ap_std")),
            "AUC": _fmt_std(record.get("auc"), record.get("auc_std")),
            "PPL@1024": _fmt(record.get("ppl_1024"), 2),
            "bits/s": _fmt(record.get("bits_per_second"), 0),
            "Token H bits/s": _fmt(record.get("entropy_rate_bps"), 0),
            "Code usage": _fmt_percent(record.get("codebook_usage")),
        }
        cells.update({col: _fmt_recon(record, metric, dual) for metric, col in RECON_METRICS.items()})
        out.append(cells)
    index = pd.Index(frame["codec"].tolist(), name="Codec")
    return pd.DataFrame(out, index=index, columns=list(TABLE2_COLUMNS))


def measured_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Formatted table of measured rows (:func:`format_table` of :func:`measured_frame`)."""
    return format_table(measured_frame(rows))


def published_rows() -> list[dict[str, Any]]:
    """The paper's Table 2 (:mod:`duotok.eval.published`) as pipeline-style rows: baselines'
    reconstruction is on the mixture, Duo-Tok's per track; bits/s, the token information columns and
    ViSQOL were not published."""
    rows: list[dict[str, Any]] = []
    for codec, entry in TABLE2.items():
        rows.append({"codec": codec, "token_rate": entry["token_rate"], "codebooks": entry["codebooks"],
                     "kbps": entry["kbps"], "ap": entry["mtt_ap"], "auc": entry["mtt_auc"],
                     "ppl_1024": entry["ppl_1024"],
                     "reconstruction": {"mixture": {m: entry[m] for m in ("pesq", "stoi", "mel_l1")}}})
    rows.append({"codec": "Duo-Tok", "token_rate": DUOTOK["token_rate"], "codebooks": DUOTOK["codebooks"],
                 "kbps": DUOTOK["kbps"], "ap": DUOTOK["mtt_ap"], "auc": DUOTOK["mtt_auc"],
                 "ppl_1024": DUOTOK["ppl_1024"], "reconstruction": DUOTOK["reconstruction"]})
    return rows


def published_frame() -> pd.DataFrame:
    """Numeric frame of the published rows (same columns as :func:`measured_frame`)."""
    return measured_frame(published_rows())


def published_table() -> pd.DataFrame:
    """Formatted published table, same columns as :func:`measured_table` ("—" for bits/s, ViSQOL)."""
    return format_table(published_frame())


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub-flavoured pipe table (hand-written: no optional ``tabulate`` dependency)."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    header = [table.index.name or "", *table.columns]
    align = [":--", *(":--" if column == "Codebooks" else "--:" for column in table.columns)]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in (idx, *values)) + " |"
              for idx, values in zip(table.index, table.itertuples(index=False), strict=True)]
    return "\n".join(lines)


#: LaTeX replacements, applied per character so an inserted backslash is never escaped again.
_LATEX_ESCAPES: dict[str, str] = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "—": "---",
}


def latex_escape(text: Any) -> str:
    """Escape LaTeX specials in a cell; ``±`` becomes ``$\\pm$`` and the missing-value dash ``---``."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), written by hand so it does not
    depend on pandas' optional jinja2 backend and every cell is escaped the same way."""
    spec = "l" + "".join("l" if col == "Codebooks" else "r" for col in table.columns)
    header = [table.index.name or "", *table.columns]
    lines = ["% generated by duotok.reporting.table2; requires \\usepackage{booktabs}",
             f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(v) for v in (idx, *values)) + r" \\"
              for idx, values in zip(table.index, table.itertuples(index=False), strict=True)]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _markdown_report(measured: pd.DataFrame, published: pd.DataFrame, note: str) -> str:
    parts = [
        "# Table 2 — tokenizer comparison", "",
        "## Measured in this repository", "",
        to_markdown(measured), "",
        "Reconstruction cells of dual-track codecs read *vocal / accompaniment*; single-stream codecs "
        f"show the mixture. AP/AUC: mean ± std where measured. {MISSING}: not measured.", "",
        INFORMATION_NOTE, "",
        "---", "",
        f"## {PUBLISHED_TITLE}", "",
        to_markdown(published), "",
        "Copied from the paper (baselines from the evaluation toolkit's README); bits/s, token entropy, "
        "code usage and ViSQOL were not published. Baselines' reconstruction is on the toolkit's music test set, Duo-Tok's per track.",
    ]
    if note:
        parts += ["", "## Note", "", note.strip()]
    return "\n".join(parts) + "\n"


def _write_text(path: Path, text: str) -> Path:
    with atomic_write(path) as fh:
        fh.write(text)
    return path


def write_table2(rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike[str], stem: str = "table2",
                 note: str = "") -> dict[str, Path]:
    """Write ``<stem>.md`` (measured table, then the separated published section, then ``note``),
    ``<stem>.csv`` (numeric; ``source`` = "measured" rows then "published" rows) and ``<stem>.tex``
    (booktabs table of the measured rows). Each file goes through a temp file in ``out_dir`` and a
    rename, so a reader never sees half a table. Returns ``{"md": ..., "csv": ..., "tex": ...}``."""
    out = Path(out_dir)
    frame = measured_frame(rows)
    measured = format_table(frame)
    published_numeric = published_frame()

    csv = pd.concat([frame.assign(source="measured"), published_numeric.assign(source="published")],
                    ignore_index=True)
    csv = csv[["codec", "source", *(c for c in csv.columns if c not in ("codec", "source"))]]
    report = _markdown_report(measured, format_table(published_numeric), note)
    return {
        "md": _write_text(out / f"{stem}.md", report),
        "csv": _write_text(out / f"{stem}.csv", csv.to_csv(index=False)),
        "tex": _write_text(out / f"{stem}.tex", to_latex(measured)),
    }
