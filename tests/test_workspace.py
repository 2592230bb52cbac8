"""Exploration workspaces: another profile runs in a copy, and the checkout's reviewed results stay put."""

from __future__ import annotations

import pytest
import yaml

from duotok.cli import main
from duotok.errors import ConfigError
from duotok.paths import project_root
from duotok.workspace import prepare


def _profile(path):
    return yaml.safe_load(path.read_text())["profile"]


def test_prepare_copies_what_a_clone_holds_and_sets_the_profile_there_only(tmp_path):
    before = (project_root() / "params.yaml").read_text()
    ws = prepare("smoke", tmp_path / "ws")
    assert _profile(ws / "params.yaml") == "smoke"
    assert (project_root() / "params.yaml").read_text() == before, "the checkout's params.yaml is untouched"
    assert (ws / "dvc.yaml").is_file() and (ws / "duotok" / "__init__.py").is_file() and (ws / ".git").is_dir()
    assert not (ws / "models").exists() and not (ws / ".venv").exists(), "ignored paths are not copied"
    assert (project_root() / "dvc.lock").is_file() and not (ws / "dvc.lock").exists(), \
        "the checkout's lock describes the checkout's outputs: the workspace starts its own"


def test_a_second_prepare_refreshes_code_but_keeps_the_workspace_results(tmp_path):
    ws = prepare("smoke", tmp_path / "ws")
    (ws / "dvc.lock").write_text("# the workspace's own lock\n")
    metrics = ws / "reports" / "metrics" / "pretrain.json"
    metrics.write_text("{}\n")
    (ws / "duotok" / "paths.py").write_text("# edited\n")
    prepare("smoke", ws)
    assert (ws / "dvc.lock").read_text() == "# the workspace's own lock\n"
    assert metrics.read_text() == "{}\n"
    assert (ws / "duotok" / "paths.py").read_text() == (project_root() / "duotok" / "paths.py").read_text()


def test_a_workspace_inside_the_checkout_is_refused_except_under_explore(tmp_path):
    with pytest.raises(ConfigError, match="must not be the project"):
        prepare("smoke", project_root() / "reports" / "ws")
    with pytest.raises(ConfigError, match="unknown profile"):
        prepare("tiny", tmp_path / "ws")


def test_cli_explore_no_run_prepares_and_says_how_to_run(tmp_path, capsys):
    assert main(["explore", "smoke", "--dir", str(tmp_path / "ws"), "--no-run"]) == 0
    out = capsys.readouterr().out
    assert "not touched" in out and "make repro" in out
    assert _profile(tmp_path / "ws" / "params.yaml") == "smoke"
