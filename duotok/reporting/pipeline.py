"""The pipeline's wall time, stage by stage: every stage's timing record (:mod:`duotok.timing`) gathered in
``dvc.yaml``'s order into ``reports/metrics/pipeline.json``, and rendered as a Markdown table.

The ``pipeline`` stage of ``dvc.yaml`` runs ``duotok timing collect``: it depends on every other stage's
``reports/metrics/timing/<stage>.json`` (a test keeps that list equal to :func:`pipeline_stages`, in
order), so it runs last and sees one run's records. A stage without a record is listed as missing, never
dropped, and the sums say whether they are complete. The budget is issue 18's for the ``default``
profile on 2 CPU cores: the stages through ``report`` (those listed before it in ``dvc.yaml``, ``report``
included: corpus, stages 1–4, the baselines, the replicas, LM, probe — Duo-Tok's Table 2) within 2.5 h, the
whole pipeline within 4 h. The separation benchmark of the second paper (issue 19) and the ablations come
after ``report`` in ``dvc.yaml``, so they count in the whole pipeline only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from duotok.io.files import atomic_write, write_json_atomic
from duotok.paths import project_root
from duotok.timing import SHARED_CPU_THRESHOLD, timing_path

FORMAT = "duotok-pipeline-timing"
VERSION = 1
#: A stage whose command contains this gathers the records; it has none of its own.
COLLECT_COMMAND = "duotok timing collect"
#: The last stage of the budget's first part.
THROUGH_STAGE = "report"
BUDGET_SECONDS = {"through_report": 2.5 * 3600, "whole": 4 * 3600}


def _cmd(body: Mapping[str, Any]) -> str:
    cmd = body.get("cmd", "")
    return " ".join(cmd) if isinstance(cmd, list) else " ".join(str(cmd).split())


def pipeline_stages(dvc: Mapping[str, Any]) -> list[str]:
    """The stage names of a parsed ``dvc.yaml`` in file order, ``foreach`` stages expanded as DVC names
    them (``name@item`` for a list, ``name@key`` for a mapping), ``matrix`` stages as
    ``name@v1-v2-…`` (the product of the axes in the order written, the first axis outermost), without
    the stage that collects them."""
    names: list[str] = []
    for name, stage in (dvc.get("stages") or {}).items():
        if "matrix" in stage:
            if COLLECT_COMMAND not in _cmd(stage):
                names += [f"{name}@{combo}" for combo in _matrix_names(name, stage["matrix"])]
            continue
        body = stage.get("do", stage)
        if COLLECT_COMMAND in _cmd(body):
            continue
        if "foreach" not in stage:
            names.append(name)
            continue
        items = stage["foreach"]
        if isinstance(items, Mapping):
            names += [f"{name}@{key}" for key in items]
        elif isinstance(items, Sequence) and not isinstance(items, str) and all(
                isinstance(i, str | int | float) for i in items):
            names += [f"{name}@{item}" for item in items]
        else:
            raise ValueError(f"dvc.yaml stage {name}: foreach over {items!r} is not supported by the timing "
                             "collector (a list of scalars or a mapping is)")
    return names


def _matrix_names(name: str, matrix: Any) -> list[str]:
    """``v1-v2-…`` of every combination of a matrix of scalar lists, as DVC names them."""
    import itertools

    if not isinstance(matrix, Mapping) or not matrix:
        raise ValueError(f"dvc.yaml stage {name}: matrix must map axis names to lists, got {matrix!r}")
    axes = []
    for axis, values in matrix.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or not all(
                isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            raise ValueError(f"dvc.yaml stage {name}: matrix axis {axis!r} must be a list of scalars for the "
                             f"timing collector, got {values!r}")
        axes.append([str(v) for v in values])
    return ["-".join(combo) for combo in itertools.product(*axes)]


def load_dvc(root: Path | None = None) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(((root or project_root()) / "dvc.yaml").read_text(encoding="utf-8"))


def summarize(records: Sequence[tuple[str, Mapping[str, Any] | None]],
              through: str = THROUGH_STAGE, budget: Mapping[str, float] = BUDGET_SECONDS) -> dict[str, Any]:
    """The pipeline summary of ``(stage, record or None)`` pairs in pipeline order: the records (a missing
    one as ``{"stage": name, "missing": true}``), the wall-time sums (whole, and through ``through``),
    whether each sum is complete and within ``budget``, the missing stages and those that shared the CPU."""
    names = [name for name, _ in records]
    cut = names.index(through) + 1 if through in names else None
    stages, missing, shared, unknown = [], [], [], []
    for name, record in records:
        if record is None:
            stages.append({"stage": name, "missing": True})
            missing.append(name)
            continue
        stages.append(dict(record))
        if record.get("shared_cpu") is None:
            unknown.append(name)
        elif record["shared_cpu"]:
            shared.append(name)

    def total(subset: Sequence[tuple[str, Mapping[str, Any] | None]]) -> float:
        return round(sum(float(r["wall_seconds"]) for _, r in subset if r is not None), 2)

    head = records[:cut] if cut is not None else []
    complete_head = cut is not None and all(r is not None for _, r in head)
    sums = {"through_report": total(head) if cut is not None else None, "whole": total(records)}
    complete = {"through_report": complete_head, "whole": not missing}
    machines = []
    for _, record in records:
        if record is not None and record.get("machine") not in machines:
            machines.append(record.get("machine"))
    return {
        "format": FORMAT, "version": VERSION,
        "profiles": sorted({str(r.get("profile")) for _, r in records if r is not None}),
        "wall_seconds_total": sums["whole"],
        "wall_seconds_through_report": sums["through_report"],
        "complete": complete["whole"], "complete_through_report": complete["through_report"],
        "budget_seconds": dict(budget),
        "within_budget": {k: (sums[k] <= budget[k] if complete[k] and sums[k] is not None else None)
                          for k in budget},
        "n_stages": len(records), "missing": missing,
        "shared_cpu_stages": shared, "shared_cpu_unknown": unknown,
        "shared_cpu_threshold": SHARED_CPU_THRESHOLD,
        "machines": machines,
        "stages": stages,
    }


def collect_pipeline(root: Path | None = None, dvc: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:func:`summarize` of the records in ``reports/metrics/timing/`` for every stage of ``dvc.yaml``."""
    root = root or project_root()
    dvc = load_dvc(root) if dvc is None else dvc
    records = []
    for name in pipeline_stages(dvc):
        path = timing_path(name, root)
        records.append((name, json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None))
    return summarize(records)


def format_duration(seconds: float | None) -> str:
    """``42 s``, ``18.3 min``, ``2 h 05 min``; ``—`` for None."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h {rest:02d} min"


def _describe_machine(machine: Mapping[str, Any] | None) -> str:
    if not machine:
        return "unknown machine"
    bf16 = {True: "native bf16", False: "no native bf16", None: "bf16 unknown"}[machine.get("native_bf16")]
    gpu = machine.get("gpu")
    gpu_text = f"GPU {gpu['name']}" + (f" × {gpu['count']}" if gpu.get("count", 1) > 1 else "") if gpu else "no GPU"
    cores = machine.get("usable_cores") or machine.get("logical_cores")
    return f"{machine.get('cpu_model') or 'unknown CPU'}, {cores} logical cores, {bf16}, {gpu_text}"


def render_pipeline_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: one row per stage in pipeline order (wall time, start, other processes'
    share of the CPU, whether that counts as shared), the two sums against the budget, the machine(s)."""
    threshold = summary.get("shared_cpu_threshold", SHARED_CPU_THRESHOLD)
    lines = ["| stage | wall time | started (UTC) | other processes' CPU | shared CPU |",
             "|---|---|---|---|---|"]
    for record in summary["stages"]:
        if record.get("missing"):
            lines.append(f"| `{record['stage']}` | **missing** (no timing record) | | | |")
            continue
        fraction = record.get("other_cpu_fraction")
        other = "—" if fraction is None else f"{100 * fraction:.1f} %"
        shared = {True: "**yes**", False: "no", None: "unknown"}[record.get("shared_cpu")]
        lines.append(f"| `{record['stage']}` | {format_duration(record['wall_seconds'])} | "
                     f"{record.get('start_utc') or '—'} | {other} | {shared} |")

    def total_row(label: str, key: str, complete_key: str, budget_key: str) -> str:
        budget = summary["budget_seconds"][budget_key]
        verdict = summary["within_budget"][budget_key]
        state = ("within" if verdict else "**over**") if verdict is not None else "incomplete sum, not judged against"
        note = "" if summary[complete_key] else " (stages missing)"
        return f"| **{label}** | **{format_duration(summary[key])}**{note} | {state} the {format_duration(budget)} budget | | |"

    if summary.get("wall_seconds_through_report") is not None:
        lines.append(total_row(f"through `{THROUGH_STAGE}`", "wall_seconds_through_report",
                               "complete_through_report", "through_report"))
    lines.append(total_row("whole pipeline", "wall_seconds_total", "complete", "whole"))
    machines = summary.get("machines") or []
    text = "\n".join(lines) + "\n\n"
    text += ("Machine: " + "; ".join(_describe_machine(m) for m in machines) + ".\n") if machines else ""
    text += (f"*Other processes' CPU*: the machine's busy CPU time during the stage (`/proc/stat`) less the stage's "
             f"own process tree's, as a share of wall time × cores; *shared* above {100 * threshold:.0f} %.\n")
    if summary["missing"]:
        text += f"Missing timing records: {', '.join(f'`{s}`' for s in summary['missing'])}.\n"
    return text


def write_pipeline(summary: Mapping[str, Any], json_path: str | Path, table_path: str | Path) -> tuple[Path, Path]:
    """``summary`` as JSON and as the Markdown table, each written atomically."""
    write_json_atomic(json_path, summary)
    with atomic_write(table_path) as fh:
        fh.write("# Pipeline wall time, stage by stage\n\n" + render_pipeline_markdown(summary))
    return Path(json_path), Path(table_path)
