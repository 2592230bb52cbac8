"""reports/metrics/pipeline.json: every stage's timing record in dvc.yaml's order, the sums (through
``report`` and whole), missing records reported as missing; and dvc.yaml itself: every stage times
itself into its own declared output, and the ``pipeline`` stage depends on all of them, in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from duotok.cli import main
from duotok.paths import project_root
from duotok.reporting.pipeline import (
    COLLECT_COMMAND,
    collect_pipeline,
    format_duration,
    pipeline_stages,
    render_pipeline_markdown,
    summarize,
)
from duotok.timing import TIMING_DIR

MACHINE = {"cpu_model": "AMD EPYC", "logical_cores": 2, "usable_cores": 2, "system": "Linux x86_64",
           "native_bf16": True, "native_bf16_reason": "x86 CPU with avx512_bf16", "gpu": None}


def _record(stage: str, wall: float, shared: bool | None = False, fraction: float | None = 0.01) -> dict:
    return {"format": "duotok-stage-timing", "version": 1, "stage": stage, "profile": "default",
            "wall_seconds": wall, "start_utc": "2026-12-01T10:00:00+00:00", "end_utc": "2026-12-01T11:00:00+00:00",
            "other_cpu_fraction": fraction, "shared_cpu": shared, "machine": MACHINE}


TOY_DVC = textwrap.dedent("""
    stages:
      corpus:
        cmd: duotok notebook run 00_corpus --stage corpus
      baseline:
        foreach: [rvq, kmeans]
        do:
          cmd: duotok notebook run 05_baseline -p codec ${item} --stage baseline@${item}
      tokens:
        foreach:
          duotok: models/codec
          rvq: models/baselines/rvq
        do:
          cmd: duotok tokens --codec ${key} --stage tokens@${key}
      report:
        cmd: duotok notebook run 08_report --stage report
      ablations:
        cmd: duotok notebook run 05_ablations --stage ablations
      pipeline:
        cmd: mkdir -p reports/metrics && duotok timing collect
    """)
TOY_ORDER = ["corpus", "baseline@rvq", "baseline@kmeans", "tokens@duotok", "tokens@rvq", "report", "ablations"]


def test_stages_in_file_order_foreach_expanded_collector_left_out():
    assert pipeline_stages(yaml.safe_load(TOY_DVC)) == TOY_ORDER


def test_matrix_stages_are_named_as_dvc_names_them(tmp_path):
    """The expected names come from DVC itself (``dvc stage list`` in a scratch repository), not from
    the collector's own rule: a DVC upgrade that renamed them would fail here, not silently in
    ``pipeline.json``."""
    dvc = {"stages": {"m": {"matrix": {"seed": [1, 2], "variant": ["a", "b_c"]}, "cmd": "echo ${item.seed}"}}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True, env=env)
    listed = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], cwd=tmp_path,
                            check=True, env=env, capture_output=True, text=True).stdout.split()
    assert pipeline_stages(dvc) == listed == ["m@1-a", "m@1-b_c", "m@2-a", "m@2-b_c"]


def test_unsupported_stage_forms_are_errors():
    with pytest.raises(ValueError, match="matrix"):
        pipeline_stages({"stages": {"m": {"matrix": {"a": [{"x": 1}]}, "cmd": "x"}}})
    with pytest.raises(ValueError, match="foreach"):
        pipeline_stages({"stages": {"f": {"foreach": [{"a": 1}], "do": {"cmd": "x"}}}})


def test_sums_order_and_shared_stages():
    records = [("corpus", _record("corpus", 300.0)), ("pretrain", _record("pretrain", 1200.0, True, 0.2)),
               ("report", _record("report", 60.0, None, None)), ("ablations", _record("ablations", 7200.0))]
    s = summarize(records)
    assert [r["stage"] for r in s["stages"]] == ["corpus", "pretrain", "report", "ablations"]
    assert s["wall_seconds_through_report"] == 1560.0 and s["wall_seconds_total"] == 8760.0
    assert s["complete"] and s["complete_through_report"] and s["missing"] == []
    assert s["within_budget"] == {"through_report": True, "whole": True}
    assert s["shared_cpu_stages"] == ["pretrain"] and s["shared_cpu_unknown"] == ["report"]
    assert s["machines"] == [MACHINE] and s["profiles"] == ["default"]
    over = summarize([("report", _record("report", 3 * 3600.0)), ("ablations", _record("ablations", 5400.0))])
    assert over["within_budget"] == {"through_report": False, "whole": False}


def test_missing_records_are_reported_not_dropped():
    s = summarize([("corpus", _record("corpus", 300.0)), ("pretrain", None), ("report", _record("report", 60.0)),
                   ("ablations", None)])
    assert s["missing"] == ["pretrain", "ablations"] and s["n_stages"] == 4
    assert s["stages"][1] == {"stage": "pretrain", "missing": True}
    assert s["wall_seconds_through_report"] == 360.0 and not s["complete_through_report"] and not s["complete"]
    assert s["within_budget"] == {"through_report": None, "whole": None}, "an incomplete sum is not judged"
    table = render_pipeline_markdown(s)
    assert "| `pretrain` | **missing**" in table and "(stages missing)" in table
    assert "Missing timing records: `pretrain`, `ablations`" in table


def test_the_table_lists_stages_in_order_with_the_sums():
    s = summarize([("corpus", _record("corpus", 42.0)), ("pretrain", _record("pretrain", 1098.0, True, 0.123)),
                   ("report", _record("report", 60.0)), ("ablations", _record("ablations", 7500.0))])
    table = render_pipeline_markdown(s)
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == ["corpus", "pretrain", "report", "ablations"]
    assert "| `pretrain` | 18.3 min | 2026-12-01T10:00:00+00:00 | 12.3 % | **yes** |" in table
    assert "| **through `report`** | **20.0 min** | within the 2 h 30 min budget |" in table
    assert "| **whole pipeline** | **2 h 25 min** | within the 4 h 00 min budget |" in table
    assert "AMD EPYC, 2 logical cores, native bf16, no GPU" in table


def test_format_duration():
    assert [format_duration(x) for x in (None, 42, 90, 3599, 3600, 9000)] == \
        ["—", "42 s", "1.5 min", "60.0 min", "1 h 00 min", "2 h 30 min"]


def test_collect_reads_the_records_of_every_stage(tmp_path, monkeypatch, capsys):
    (tmp_path / "dvc.yaml").write_text(TOY_DVC)
    timing = tmp_path / TIMING_DIR
    timing.mkdir(parents=True)
    for i, name in enumerate(TOY_ORDER):
        if name != "tokens@rvq":
            (timing / f"{name}.json").write_text(json.dumps(_record(name, 10.0 * (i + 1))))
    s = collect_pipeline(tmp_path)
    assert [r["stage"] for r in s["stages"]] == TOY_ORDER
    assert s["missing"] == ["tokens@rvq"]
    assert s["wall_seconds_through_report"] == 10 + 20 + 30 + 40 + 60 and s["wall_seconds_total"] == 230

    monkeypatch.setenv("DUOTOK_ROOT", str(tmp_path))
    assert main(["timing", "collect"]) == 0
    out = capsys.readouterr()
    assert "no timing record for 1 stage(s): tokens@rvq" in out.err
    written = json.loads((tmp_path / "reports" / "metrics" / "pipeline.json").read_text())
    assert written == json.loads(json.dumps(s))
    assert "| `tokens@rvq` | **missing**" in (tmp_path / "reports" / "tables" / "pipeline.md").read_text()


# ------------------------------------------------------------------------------- the real dvc.yaml

def _dvc() -> dict:
    return yaml.safe_load((project_root() / "dvc.yaml").read_text())


def _outs(body: dict) -> dict[str, dict]:
    return {(next(iter(o)) if isinstance(o, dict) else o): (next(iter(o.values())) if isinstance(o, dict) else {})
            for o in body.get("outs", [])}


def test_every_stage_times_itself_into_its_declared_output():
    for name, stage in _dvc()["stages"].items():
        body = stage.get("do", stage)
        cmd = " ".join(str(body["cmd"]).split())
        if COLLECT_COMMAND in cmd:
            continue
        if "matrix" in stage:
            var = "-".join(f"${{item.{axis}}}" for axis in stage["matrix"])
        else:
            var = ("${key}" if isinstance(stage["foreach"], dict) else "${item}") if "foreach" in stage else None
        stage_name = f"{name}@{var}" if var else name
        assert cmd.endswith(f"--stage {stage_name}") or f"--stage {stage_name} " in cmd, name
        out = _outs(body).get(f"{TIMING_DIR}/{stage_name}.json")
        assert out is not None, f"{name}: {TIMING_DIR}/{stage_name}.json is not declared as an output"
        assert out.get("cache") is False, f"{name}: the timing record is committed like the metrics (cache: false)"


def test_the_pipeline_stage_depends_on_every_record_in_order():
    dvc = _dvc()
    [collector] = [n for n, s in dvc["stages"].items() if COLLECT_COMMAND in " ".join(str(s.get("cmd")).split())]
    body = dvc["stages"][collector]
    records = [d for d in body["deps"] if d.startswith(f"{TIMING_DIR}/")]
    assert records == [f"{TIMING_DIR}/{n}.json" for n in pipeline_stages(dvc)]
    assert list(dvc["stages"])[-1] == collector, "the collector comes last"
    assert {"reports/metrics/pipeline.json": {"cache": False}} in body["metrics"]
    assert _outs(body)["reports/tables/pipeline.md"] == {"cache": False}
    assert "report" in pipeline_stages(dvc), "the budget's first part ends at the report stage"
