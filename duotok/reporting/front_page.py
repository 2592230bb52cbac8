"""The results front page, ``reports/README.md``: every claim of both papers checked on this run, with its
verdict and the evidence behind it (training seeds, spread, bootstrap interval over test songs), gathered
from the records the stages write — Table 2's (``reports/metrics/claims.json``, stage ``report``), the
ablations' (``reports/metrics/ablation_claims.json``, stage ``ablations``) and the separation benchmark's
findings (``reports/metrics/separation.json``, stage ``separation``).

Why a stage of its own and not a section of the Table-2 report: the ablations and the separation benchmark
are hours of training that Table 2 must not wait for, and a page one stage writes stays that stage's output.
So each stage writes its own page and a structured record, and this last, cheap stage (stage ``results``,
notebook ``11_results``) states all the verdicts in one place without recomputing any of them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: What the run is and is not, for every results page (the paper's scale against this run's).
SCALE_NOTE = (
    "**Scale.** The paper trains on real music at 48 kHz with a 24-layer encoder and 2 × 32768 codebooks; "
    "this run uses the synthetic duosynth corpus (16 kHz, 160 songs), an 8-layer encoder, 2 × 1024 codebooks and "
    "minutes of CPU training per stage. Published numbers are shown for orientation only; what can be checked "
    "here is the *comparison* — the same data, budget and evaluation for every codec.")

#: The records the front page reads, each with the stage that writes it (named in a missing file's error).
RECORDS = {
    "table2": ("claims.json", "report"),
    "ablations": ("ablation_claims.json", "ablations"),
    "separation": ("separation.json", "separation"),
}

#: The pages the front page links, ``(title, path relative to reports/, what it holds)``.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("Tokenizers compared", "tokenizers.md",
     "Table 2 (measured and published), Figure 1, the claims with their head-to-head, the LM protocols"),
    ("Ablations", "tables/ablation_claims.md",
     "the ablation claims; the numbers per family in `tables/ablation_{noise,routing,heads}.md`"),
    ("Source separation (the second paper)", "separation.md",
     "every separator against the codec ceiling and the oracle mask; the findings' rules"),
    ("Wall time", "tables/pipeline.md", "every stage's wall time, machine and CPU sharing (stage `pipeline`)"),
)


def load_records(metrics_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The three records of :data:`RECORDS` from ``metrics_dir``; a missing one names the stage to run."""
    metrics_dir = Path(metrics_dir)
    records = {}
    for key, (name, stage) in RECORDS.items():
        path = metrics_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing — run the stage that writes it (dvc repro {stage})")
        records[key] = json.loads(path.read_text())
    return records


def _cell(text: Any) -> str:
    """One Markdown table cell: pipes escaped, on one line."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict_table(header: Sequence[str], rows: Sequence[Sequence[Any]], bold: int) -> list[str]:
    """The lines of a pipe table of claims whose column ``bold`` (the verdict) is set in bold, every cell
    escaped (evidence text may hold pipes); an empty header cell stays ``| |``. The one writer of the
    claims tables on the results pages (front page, Table-2 page, ablation claims)."""
    lines = ["|" + "|".join(f" {h} " if h else " " for h in header) + "|", "|" + "---|" * len(header)]
    for row in rows:
        cells = [_cell(c) for c in row]
        cells[bold] = f"**{cells[bold]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _seeds_line(counts: Mapping[str, int], what: str) -> str:
    """``what``: ``name n, …`` — how many trainings stand behind each system."""
    parts = [f"{name} {int(n)}" for name, n in counts.items()]
    return f"{what}: {', '.join(parts)}." if parts else f"{what}: none recorded."


def tally(records: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """How many claims of each section got each verdict (the front page's first table)."""
    sections = {"Duo-Tok: Table 2": records["table2"]["claims"],
                "Duo-Tok: ablations": records["ablations"]["claims"],
                "Separation: findings": records["separation"].get("findings", [])}
    out: dict[str, dict[str, int]] = {}
    for section, claims in sections.items():
        counts: dict[str, int] = {}
        for claim in claims:
            counts[claim["verdict"]] = counts.get(claim["verdict"], 0) + 1
        out[section] = counts
    return out


def render_front_page(records: Mapping[str, Mapping[str, Any]], *, profile: str) -> str:
    """``reports/README.md`` from :func:`load_records`' records: a count of the verdicts, then every claim
    with its verdict and evidence, section by section, then the pages holding the numbers."""
    table2, ablations, separation = records["table2"], records["ablations"], records["separation"]
    lines = [
        "# Results",
        "",
        f"Measured by `dvc repro` on the **{profile}** profile. This page states every claim of the two papers "
        "checked on this run, with the evidence behind each verdict; it is assembled by the last stage, `results` "
        "(notebook `notebooks/11_results.py`), from the records the `report`, `ablations` and `separation` stages "
        "write, and recomputes nothing. The numbers, figures and published values (separate, labelled) are on "
        "the pages linked below.",
        "",
    ]
    lines += [SCALE_NOTE, "", "| claims | verdicts |", "|---|---|"]
    for section, counts in tally(records).items():
        summary = ", ".join(f"{n} {verdict}" for verdict, n in counts.items()) or "none checked"
        lines.append(f"| {section} | {_cell(summary)} |")
    lines += [
        "",
        "## Duo-Tok: Table 2 claims",
        "",
        f"From stage `report` ([`tokenizers.md`](tokenizers.md) has Table 2, Figure 1 and the head-to-head). "
        f"Subject: {table2.get('subject', 'Duo-Tok')}.",
        "",
        *table2.get("rules", []),
        "",
        *verdict_table(["claim", "verdict", "evidence"],
                [(c["claim"], c["verdict"], c["evidence"]) for c in table2["claims"]], bold=1),
        "",
        "## Duo-Tok: ablation claims",
        "",
        "From stage `ablations` ([`tables/ablation_claims.md`](tables/ablation_claims.md); the numbers per "
        "family in `tables/ablation_{noise,routing,heads}.md`). " + str(ablations.get("rules", "")),
        "",
        _seeds_line(ablations.get("n_train_seeds", {}), "Trainings per variant"),
        "",
        *verdict_table(["", "claim", "verdict", "evidence"],
                [(c.get("id", ""), c["claim"], c["verdict"], c["evidence"]) for c in ablations["claims"]], bold=2),
        "",
        "## Source separation (the second paper): findings",
        "",
        "From stage `separation` ([`separation.md`](separation.md) says how each finding is decided and holds the "
        "numbers).",
        "",
    ]
    findings = separation.get("findings", [])
    if findings:
        lines += verdict_table(["finding", "verdict", "evidence"],
                        [(f["finding"], f["verdict"], f["evidence"]) for f in findings], bold=1)
    else:
        lines.append("No findings recorded by this run's separation stage.")
    lines += ["", "## Pages", ""]
    lines += [f"- **{title}**: [`{path}`]({path}) — {what}" for title, path, what in PAGES]
    lines += [
        "",
        "## How to regenerate",
        "",
        "```bash",
        "make repro            # = duotok data ensure && dvc repro (profile in params.yaml)",
        "dvc repro results     # this page from the stages' records (runs whatever they need first)",
        "dvc metrics diff      # compare your rerun with the committed numbers",
        "```",
    ]
    return "\n".join(lines) + "\n"
