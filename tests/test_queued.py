"""The patches queued for the next full re-run (``queued/*.patch``) still apply, in order, to this tree: an
edit on ``main`` that conflicts with one fails here, not on the day of the re-run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from duotok.config import project_root

QUEUED = project_root() / "queued"


def _touched(patch: Path) -> set[str]:
    return set(re.findall(r"^diff --git a/(\S+) b/\S+$", patch.read_text(encoding="utf-8"), flags=re.M))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_queued_patches_apply_in_order_to_this_tree(tmp_path):
    patches = sorted(QUEUED.glob("*.patch"))
    assert patches, f"no patches in {QUEUED}"
    tree = tmp_path / "tree"          # outside any repository: git apply then patches the files in place
    for name in set().union(*(_touched(p) for p in patches)):
        source = project_root() / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    for patch in patches:
        result = subprocess.run(["git", "apply", "--whitespace=nowarn", str(patch)], cwd=tree,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{patch.name} no longer applies after the ones before it:\n{result.stderr}"
