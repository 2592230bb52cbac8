"""Make sure ``data/`` holds the corpus the active profile asks for, generating it if needed.

Why not a DVC stage: ``data/`` is tracked by ``data.dvc`` (the raw corpus the pipeline reads, as a
user's real data would be). A fresh clone has no DVC remote to pull it from, so the main command
regenerates it first; because generation is byte-identical, the regenerated folder has the hash
recorded in ``data.dvc`` and ``dvc status`` stays clean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from duotok.data.synth.generate import FORMAT, corpus_fingerprint, generate_corpus


def corpus_status(cfg: dict[str, Any], out_dir: Path) -> tuple[bool, str]:
    """(up to date?, reason) for the corpus in ``out_dir`` against the synth config ``cfg``."""
    manifest = out_dir / "manifest.json"
    if not manifest.is_file():
        return False, f"{out_dir} has no manifest.json"
    try:
        m = json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return False, f"{manifest} is not valid JSON ({exc})"
    if m.get("format") != FORMAT:
        return False, f"{manifest} is not a duosynth corpus (format={m.get('format')!r}); leaving it alone"
    if m.get("config_fingerprint") != corpus_fingerprint(cfg):
        return False, f"{out_dir} was generated with other synth parameters"
    missing = [s["id"] for s in m.get("songs", []) if not (out_dir / "songs" / s["id"] / "meta.json").is_file()]
    if missing:
        return False, f"{out_dir} is missing {len(missing)} song folders (e.g. {missing[0]})"
    return True, f"{out_dir} is up to date ({len(m['songs'])} songs, {m['total_seconds'] / 3600:.2f} h)"


def _is_duosynth(out_dir: Path) -> bool:
    try:
        return json.loads((out_dir / "manifest.json").read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def ensure_corpus(cfg: dict[str, Any], out_dir: Path, workers: int | None = None,
                  force: bool = False) -> tuple[bool, str]:
    """Generate the corpus unless it is already current. Returns (generated?, message).

    A ``data/`` that is not a duosynth corpus (a user's real data, e.g. MUSDB18-HQ layout) is never
    overwritten: the pipeline then runs on it."""
    ok, reason = corpus_status(cfg, out_dir)
    if ok and not force:
        return False, reason
    if not force and out_dir.exists() and any(out_dir.iterdir()) and not _is_duosynth(out_dir):
        return False, (f"{out_dir} holds data that duotok did not generate (real data?): using it as it is "
                       "(pass --force to replace it with the generated corpus)")
    m = generate_corpus(cfg, out_dir, workers=workers)
    return True, (f"generated {len(m['songs'])} songs, {m['total_seconds'] / 3600:.2f} h of audio, "
                  f"in {m['_elapsed_seconds']:.0f} s ({reason})")
