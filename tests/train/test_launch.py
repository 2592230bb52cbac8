"""``params.yaml: launch``: a stage runner starts torchrun itself when asked for several processes, and is
the plain call otherwise."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from duotok.config import Params
from duotok.errors import ConfigError
from duotok.paths import project_root
from duotok.train.launch import LaunchConfig, launchable, torchrun_command

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import launch_toy  # noqa: E402


@pytest.fixture
def child_path(monkeypatch):
    """torchrun's processes must import launch_toy by name, as they would a duotok runner."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def with_launch(profile: str = "smoke", **launch) -> Params:
    return Params.load(profile).with_overrides({"launch": launch})


def test_one_process_is_the_plain_call():
    result = launch_toy.run("smoke", scale=2.0)
    assert result["world_size"] == 1 and result["pid"] == os.getpid() and result["rank_sum"] == 2.0


def test_two_processes_run_under_torchrun_and_rank_0_answers(tmp_path, child_path):
    params = with_launch(nproc_per_node=2, payload_dir=str(tmp_path / "payloads"))
    result = launch_toy.run(params, out_dir=tmp_path / "out", scale=10.0)
    assert result["world_size"] == 2 and result["rank"] == 0
    assert result["pid"] != os.getpid(), "ran in this process, not under torchrun"
    assert result["rank_sum"] == 30.0, "both ranks joined the all-reduce and the argument arrived"
    assert result["overrides"] == [{"launch": {"nproc_per_node": 2, "payload_dir": str(tmp_path / "payloads")}}], \
        "the resolved Params (overrides included) travel to the processes"
    assert (tmp_path / "out" / "written_by").read_text() == "0"
    assert list((tmp_path / "payloads").iterdir()) == [], "the payload is removed afterwards"


def test_a_failing_launch_says_so(tmp_path, child_path):
    params = with_launch(nproc_per_node=2, payload_dir=str(tmp_path / "payloads"))
    with pytest.raises(RuntimeError, match="failed under torchrun"):
        launch_toy.run(params, out_dir=tmp_path / "out", scale="not a number")


def test_pretrain_launches_itself_from_params(tmp_path, make_duosynth, child_path):
    """The stage runner the pipeline calls, with nothing changed but params: DDP over 2 processes."""
    from test_pretrain import SONGS

    from duotok.train import pretrain

    root = make_duosynth(tmp_path / "data", SONGS)
    params = with_launch(nproc_per_node=2, payload_dir=str(tmp_path / "payloads"))
    result = pretrain.run(params, out_dir=tmp_path / "ddp", data_dir=root, steps=2, device="cpu")
    assert result.step == 2
    summary = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert summary["world_size"] == 2


def test_command_for_one_node_and_for_several(tmp_path):
    one = torchrun_command(LaunchConfig(nproc_per_node=4), tmp_path)
    assert "--standalone" in one and "--nproc-per-node=4" in one and one[-2:] == ["duotok.train.launch", str(tmp_path)]
    many = torchrun_command(LaunchConfig(nproc_per_node=8, nnodes=4, rdzv_endpoint="node0:29400"), tmp_path)
    assert "--standalone" not in many
    assert {"--nnodes=4", "--nproc-per-node=8", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29400",
            "--rdzv-id=duotok"} <= set(many)


@pytest.mark.parametrize("bad, match", [
    ({"nproc_per_node": 0}, "nproc_per_node"),
    ({"nnodes": "2"}, "nnodes"),
    ({"processes": 2}, "unknown settings"),
    ({"nnodes": 2}, "node 0's host"),
])
def test_bad_launch_settings_are_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        LaunchConfig.from_dict(bad)


def test_a_runner_without_params_cannot_be_launchable():
    with pytest.raises(TypeError, match="params"):
        launchable(lambda steps=1: steps)


def test_every_profile_runs_one_process_by_default():
    for profile in ("smoke", "default", "paper"):
        assert LaunchConfig.from_params(Params.load(profile)).world_size == 1


def test_stages_that_run_launchable_code_depend_on_the_launch_params():
    stages = yaml.safe_load((project_root() / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        if "duotok/train/launch.py" in body.get("deps", []):
            assert {"launch.base", "launch.${profile}"} <= set(body.get("params", [])), name
