"""``scripts/repro_committing.sh``: one commit per finished stage, and a failure keeps what finished before it.

The script runs in a throw-away git repository whose ``.venv/bin/dvc`` is a fake: it writes the stage's
``dvc.lock`` entry and timing record, or fails for a stage named ``broken``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "repro_committing.sh"

FAKE_DVC = """#!/usr/bin/env bash
# fake `dvc repro --single-item STAGE`
stage="$3"
if [ "$stage" = broken ]; then echo "stage $stage failed" >&2; exit 3; fi
if [ "$stage" = unchanged ]; then exit 0; fi
echo "$stage: done" >> dvc.lock
mkdir -p reports/metrics/timing
echo '{"wall_seconds": 90.0}' > "reports/metrics/timing/$stage.json"
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, repo / "scripts" / SCRIPT.name)
    fake = repo / ".venv" / "bin" / "dvc"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_DVC)
    fake.chmod(0o755)
    (repo / ".gitignore").write_text(".venv/\n")
    (repo / "dvc.lock").write_text("")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    return repo


def _run(repo: Path, *stages: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["bash", "scripts/repro_committing.sh", *stages], cwd=repo, env=env,
                          capture_output=True, text=True)


def test_each_finished_stage_is_committed_with_its_wall_time(tmp_path):
    repo = _repo(tmp_path)
    result = _run(repo, "a", "unchanged", "b")
    assert result.returncode == 0, result.stderr
    log = _git(repo, "log", "--format=%s").splitlines()
    assert log == ["dvc repro b (1.5 min)", "dvc repro a (1.5 min)", "start"]
    assert "unchanged: nothing changed" in result.stderr
    assert _git(repo, "status", "--porcelain") == ""


def test_a_failing_stage_stops_the_loop_and_keeps_the_commits_before_it(tmp_path):
    repo = _repo(tmp_path)
    result = _run(repo, "a", "broken", "b")
    assert result.returncode == 3
    assert _git(repo, "log", "--format=%s").splitlines() == ["dvc repro a (1.5 min)", "start"]
    assert "b: done" not in (repo / "dvc.lock").read_text()


def test_dry_run_runs_nothing_and_no_stage_is_a_usage_error(tmp_path):
    repo = _repo(tmp_path)
    dry = _run(repo, "--dry-run", "a", "b")
    assert dry.returncode == 0
    assert dry.stdout.splitlines() == [
        "nice -n 10 dvc repro --single-item a && git commit dvc.lock reports/",
        "nice -n 10 dvc repro --single-item b && git commit dvc.lock reports/",
    ]
    assert _git(repo, "log", "--format=%s").splitlines() == ["start"]
    assert _run(repo).returncode == 2
