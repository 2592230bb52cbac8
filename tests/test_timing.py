"""A stage's timing record: its fields, the atomic write (none for a failed stage), and the CPU-sharing
measurement on a fake /proc/stat — a busy neighbour is ``shared_cpu``, an idle machine is not, and a
machine without /proc/stat records null instead of failing."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from duotok import timing
from duotok.timing import SHARED_CPU_THRESHOLD, cpu_sharing, read_proc_stat, timed_stage, timing_path

HZ = os.sysconf("SC_CLK_TCK")
MACHINE = {"cpu_model": "Test CPU", "logical_cores": 2, "usable_cores": 2, "system": "Linux x86_64",
           "native_bf16": True, "native_bf16_reason": "test", "gpu": None}


def _stat(busy_ticks: tuple[int, int], idle_ticks: tuple[int, int] = (10_000, 10_000), steal: int = 0) -> str:
    """A /proc/stat with two CPUs whose busy time (user / system / softirq split) is ``busy_ticks``."""
    rows = []
    for busy, idle in zip(busy_ticks, idle_ticks, strict=True):
        user, system, softirq = busy - busy // 4 - busy // 10, busy // 4, busy // 10
        rows.append([user, 0, system, idle, 5, 0, softirq, steal, 0, 0])
    total = [sum(col) for col in zip(*rows, strict=True)]
    lines = ["cpu  " + " ".join(map(str, total))]
    lines += [f"cpu{i} " + " ".join(map(str, row)) for i, row in enumerate(rows)]
    lines += ["intr 12345 0 0", "ctxt 999", "btime 1700000000", "processes 42"]
    return "\n".join(lines) + "\n"


class _Fakes:
    """Injected clocks and CPU counters: the test advances them inside the timed block."""

    def __init__(self):
        self.wall = 1000.0
        self.epoch = 1_780_000_000.0
        self.own = 5.0

    def clock(self) -> float:
        return self.wall

    def now(self) -> float:
        return self.epoch

    def own_cpu(self) -> float:
        return self.own

    def advance(self, seconds: float, own_cpu: float) -> None:
        self.wall += seconds
        self.epoch += seconds
        self.own += own_cpu


def _run_stage(tmp_path: Path, neighbour_ticks_per_cpu: int, stage_cpu_seconds: float = 150.0,
               wall: float = 100.0) -> dict:
    """Time a fake stage of ``wall`` s using ``stage_cpu_seconds`` on 2 CPUs, while a neighbour adds
    ``neighbour_ticks_per_cpu`` busy ticks to each CPU."""
    stat = tmp_path / "stat"
    stat.write_text(_stat((50_000, 60_000)))
    fakes = _Fakes()
    out = tmp_path / "timing" / "stage.json"
    with timed_stage("stage", profile="smoke", path=out, proc_stat=stat, cpus={0, 1}, own_cpu=fakes.own_cpu,
                     clock=fakes.clock, now=fakes.now, machine=lambda: MACHINE) as record:
        assert not out.exists(), "written only when the stage has finished"
        own_ticks = int(stage_cpu_seconds * HZ / 2)
        stat.write_text(_stat((50_000 + own_ticks + neighbour_ticks_per_cpu,
                               60_000 + own_ticks + neighbour_ticks_per_cpu)))
        fakes.advance(wall, stage_cpu_seconds)
    assert json.loads(out.read_text()) == record
    return record


def test_the_record_has_every_field(tmp_path):
    record = _run_stage(tmp_path, neighbour_ticks_per_cpu=0)
    assert record["format"] == "duotok-stage-timing" and record["version"] == 1
    assert record["stage"] == "stage" and record["profile"] == "smoke"
    assert record["wall_seconds"] == 100.0
    start, end = (datetime.fromisoformat(record[k]) for k in ("start_utc", "end_utc"))
    assert start.utcoffset().total_seconds() == 0 and (end - start).total_seconds() == 100
    assert record["own_cpu_seconds"] == 150.0
    assert record["machine_busy_cpu_seconds"] == pytest.approx(150.0, abs=0.05)
    assert record["cores_measured"] == 2 and record["steal_cpu_seconds"] == 0
    assert record["shared_cpu_threshold"] == SHARED_CPU_THRESHOLD
    assert record["machine"] == MACHINE


def test_a_busy_neighbour_means_a_shared_cpu(tmp_path):
    # the neighbour keeps half a core busy for the whole stage: 50 s of 200 s of capacity
    record = _run_stage(tmp_path, neighbour_ticks_per_cpu=int(25 * HZ))
    assert record["other_cpu_seconds"] == pytest.approx(50.0, abs=0.05)
    assert record["other_cpu_fraction"] == pytest.approx(0.25, abs=1e-3)
    assert record["shared_cpu"] is True


def test_an_idle_neighbour_is_not_sharing(tmp_path):
    # daemons: 0.4 s of CPU over the 100-s stage
    record = _run_stage(tmp_path, neighbour_ticks_per_cpu=int(0.2 * HZ))
    assert record["other_cpu_fraction"] < SHARED_CPU_THRESHOLD
    assert record["shared_cpu"] is False


def test_own_time_above_the_machine_count_is_not_negative(tmp_path):
    # tick granularity: the process tree can count a little more than /proc/stat saw
    record = _run_stage(tmp_path, neighbour_ticks_per_cpu=-3)
    assert record["other_cpu_seconds"] == 0.0 and record["shared_cpu"] is False


def test_no_proc_stat_records_null_and_does_not_fail(tmp_path):
    fakes = _Fakes()
    out = tmp_path / "t.json"
    with timed_stage("macos", path=out, proc_stat=tmp_path / "no-such-stat", own_cpu=fakes.own_cpu,
                     clock=fakes.clock, now=fakes.now, machine=lambda: MACHINE):
        fakes.advance(10.0, 9.0)
    record = json.loads(out.read_text())
    assert record["wall_seconds"] == 10.0 and record["own_cpu_seconds"] == 9.0
    for key in ("other_cpu_seconds", "other_cpu_fraction", "shared_cpu", "machine_busy_cpu_seconds",
                "steal_cpu_seconds", "cores_measured"):
        assert record[key] is None, key


def test_no_rusage_records_null(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(_stat((1, 1)))
    with timed_stage("x", path=tmp_path / "t.json", proc_stat=stat, cpus={0, 1}, own_cpu=lambda: None,
                     machine=lambda: MACHINE):
        pass
    record = json.loads((tmp_path / "t.json").read_text())
    assert record["own_cpu_seconds"] is None and record["shared_cpu"] is None


def test_a_failed_stage_writes_no_record(tmp_path):
    out = tmp_path / "t.json"
    out.write_text('{"stage": "x", "old": true}')
    with pytest.raises(RuntimeError, match="boom"), timed_stage("x", path=out, machine=lambda: MACHINE):
        raise RuntimeError("boom")
    assert json.loads(out.read_text()) == {"stage": "x", "old": True}, "the old record is kept as it was"
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"], "no temp file left behind"


def test_the_write_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous record whole, and no temp file."""
    out = tmp_path / "t.json"
    out.write_text('{"previous": 1}')

    def crash(obj, fh, **kwargs):
        fh.write('{"half": ')
        raise OSError("disk full")

    monkeypatch.setattr("duotok.io.files.json.dump", crash)
    with pytest.raises(OSError, match="disk full"), timed_stage("x", path=out, machine=lambda: MACHINE):
        pass
    assert json.loads(out.read_text()) == {"previous": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_no_stage_times_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DUOTOK_ROOT", str(tmp_path))
    with timed_stage(None) as record:
        pass
    assert record is None and not (tmp_path / "reports").exists()


def test_the_default_path_is_under_the_project_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DUOTOK_ROOT", str(tmp_path))
    assert timing_path("baseline@rvq") == tmp_path / "reports" / "metrics" / "timing" / "baseline@rvq.json"
    with timed_stage("tokens@duotok", profile="smoke", machine=lambda: MACHINE):
        pass
    assert json.loads(timing_path("tokens@duotok").read_text())["stage"] == "tokens@duotok"
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="not a stage name"):
            timing_path(bad)


def test_proc_stat_sums_the_usable_cpus_else_the_machine(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(_stat((100 * HZ, 300 * HZ), steal=7 * HZ))
    one = read_proc_stat(stat, cpus={1})
    assert one.n_cpus == 1 and one.busy_seconds == pytest.approx(300, abs=0.05) and one.steal_seconds == 7
    both = read_proc_stat(stat, cpus={0, 1})
    assert both.n_cpus == 2 and both.busy_seconds == pytest.approx(400, abs=0.05)
    # a CPU the file does not list (e.g. the host's numbering differs): the whole machine's line
    whole = read_proc_stat(stat, cpus={0, 5})
    assert whole.n_cpus == 2 and whole.busy_seconds == both.busy_seconds
    assert read_proc_stat(tmp_path / "missing") is None
    (tmp_path / "garbage").write_text("cpu x y z\n")
    assert read_proc_stat(tmp_path / "garbage") is None


def test_the_real_proc_stat_parses_where_there_is_one():
    if not Path("/proc/stat").is_file():
        pytest.skip("no /proc/stat on this system")
    times = read_proc_stat(cpus=timing.usable_cpus())
    assert times is not None and times.busy_seconds > 0 and times.n_cpus >= 1


def test_cpu_sharing_without_measurements_is_null():
    assert cpu_sharing(10.0, 2, None, 5.0) == {"other_cpu_seconds": None, "other_cpu_fraction": None,
                                               "shared_cpu": None}
    assert cpu_sharing(0.0, 2, 1.0, 1.0)["shared_cpu"] is None
    assert cpu_sharing(100.0, 2, 30.0, 10.0, threshold=0.2) == {"other_cpu_seconds": 20.0,
                                                                 "other_cpu_fraction": 0.1, "shared_cpu": False}


def test_machine_info_never_raises_and_names_the_cpu():
    info = timing.machine_info()
    assert info["logical_cores"] >= 1 and info["usable_cores"] >= 1
    assert set(info) >= {"cpu_model", "native_bf16", "native_bf16_reason", "gpu", "system"}
    if Path("/proc/cpuinfo").is_file():
        assert info["cpu_model"]
