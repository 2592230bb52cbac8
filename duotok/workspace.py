"""Exploration workspaces: run the pipeline on another profile without touching the reviewed results.

Why: DVC keeps one set of outputs per workspace. ``dvc repro`` on the smoke profile in the checkout
overwrites the committed ``default`` metrics, figures and ``dvc.lock`` (and ``duotok data ensure``
replaces the 633 MB default corpus with the smoke one). An exploration therefore runs in a copy of the
project — what a clone would hold (tracked plus new, non-ignored files), under ``.explore/<profile>/``
by default (git-ignored) — with its own ``params.yaml`` profile, corpus, models and reports:

    duotok explore smoke              # = make repro PROFILE=smoke
    duotok explore paper --no-run     # only prepare the copy; run `make repro` in it yourself

The checkout's ``params.yaml``, ``dvc.lock``, ``data/`` and ``reports/`` stay as they were. The
integration test of the smoke pipeline uses the same copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from duotok.config import PROFILES, set_active_profile
from duotok.errors import ConfigError
from duotok.paths import project_root

EXPLORE_DIR = ".explore"
#: Tracked paths that a workspace's own pipeline rewrites: copied once, then left to it.
OWN_RESULTS = ("reports/",)
#: Tracked files that describe the checkout's outputs only, never copied. ``dvc.lock`` records the hashes of
#: the checkout's models and reports, which a workspace does not have: every stage there runs anyway. The copy
#: would cost time, not just space: DVC re-reads and re-writes the whole lock after every stage (ruamel's
#: round-trip YAML, ≈ 11 s of CPU for the 670 KB default lock on a slow 2-core EPYC), so a workspace that
#: started with the checkout's lock paid that at every one of its ≈ 60 stages; one that starts empty pays for
#: its own lock only, which grows to ≈ 340 KB over the smoke pipeline.
CHECKOUT_ONLY = ("dvc.lock",)


def tracked_files(root: Path) -> list[str]:
    """What a clone of ``root`` would contain: tracked and new, non-ignored files (relative paths)."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigError(f"{root}: not a git checkout, so there is no clone-like copy to make ({exc})") from exc
    return [rel for rel in out.decode().split("\0") if rel and (root / rel).is_file()]


def copy_project(dst: Path, root: Path | None = None) -> Path:
    """Copy the clone-like content of ``root`` into ``dst`` and make ``dst`` a git repository of its own
    (DVC wants one). Code and params are refreshed on every call; what the workspace produced itself
    (its corpus and models, which are ignored, its ``reports/`` and its own ``dvc.lock``) is kept, so a
    rerun there resumes instead of starting over. The checkout's ``dvc.lock`` is never copied
    (:data:`CHECKOUT_ONLY`)."""
    root = root or project_root()
    dst_r, root_r = dst.resolve(), root.resolve()
    if (dst_r == root_r or root_r in dst_r.parents) and not dst_r.is_relative_to(root_r / EXPLORE_DIR):
        raise ConfigError(f"{dst}: an exploration workspace must not be the project itself or inside it "
                          f"(except under {EXPLORE_DIR}/)")
    dst.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files(root):
        target = dst / rel
        if rel in CHECKOUT_ONLY:
            continue  # the workspace writes its own (and keeps it, so a rerun there resumes)
        if target.exists() and rel.startswith(OWN_RESULTS):
            continue  # the workspace's own results from an earlier run
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    if not (dst / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    return dst


def prepare(profile: str, dst: str | os.PathLike[str] | None = None, root: Path | None = None) -> Path:
    """A copy of the project at ``dst`` (default ``<root>/.explore/<profile>``) whose active profile is
    ``profile``."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {PROFILES}")
    root = root or project_root()
    target = Path(dst) if dst is not None else root / EXPLORE_DIR / profile
    copy_project(target, root)
    set_active_profile(profile, target / "params.yaml")
    return target


def run_pipeline(workspace: Path) -> int:
    """``duotok data ensure`` then ``dvc repro`` inside ``workspace`` (its own project root); the exit code."""
    env = {**os.environ, "DUOTOK_ROOT": str(workspace.resolve()), "DVC_NO_ANALYTICS": "1",
           "DVC_SITE_CACHE_DIR": str(workspace.resolve() / ".dvc" / "site-cache")}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    for cmd in ([sys.executable, "-m", "duotok.cli", "data", "ensure"], [sys.executable, "-m", "dvc", "repro"]):
        code = subprocess.run(cmd, cwd=workspace, env=env, check=False).returncode
        if code:
            return code
    return 0
