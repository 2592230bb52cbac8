"""The README's command sequences run as written: the smoke training sequence of stages 1-4, then
encoding and decoding a song with the models it trained (on a tiny generated corpus, in a temporary
project root; the torchrun line is covered by the runners' own DDP tests)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from duotok.paths import project_root

SONGS = (("a", "train", 5.0), ("b", "train", 4.5), ("c", "train", 4.0), ("d", "valid", 4.0), ("e", "test", 4.0))


def readme_block(heading: str) -> list[str]:
    """The commands of the first ```bash block after ``heading``: continuation lines joined, comments
    and blank lines dropped."""
    text = (project_root() / "README.md").read_text(encoding="utf-8")
    start = text.index(heading)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block, f"no bash block after {heading!r}"
    joined = block.group(1).replace("\\\n", " ")
    lines = [shlex.join(shlex.split(line, comments=True)) for line in joined.splitlines()]
    return [line for line in lines if line]


def test_the_training_sequence_block_is_what_this_test_runs():
    commands = readme_block("### Training (stages 1–4)")
    assert [c.split()[:3] for c in commands[:5]] == [["duotok", "train", s] for s in
                                                     ("pretrain", "finetune", "quantize", "autoencoder", "decoder")]
    assert commands[5].startswith("duotok encode") and commands[6].startswith("duotok decode")
    assert commands[-1].startswith("torchrun")


@pytest.mark.slow
def test_readme_smoke_training_sequence_runs_as_written(tmp_path, make_duosynth):
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(project_root() / "params.yaml", root / "params.yaml")
    make_duosynth(root / "data", SONGS)
    t = np.arange(3 * 16000) / 16000
    sf.write(root / "song.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    env = {**os.environ, "DUOTOK_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    for command in readme_block("### Training (stages 1–4)"):
        argv = shlex.split(command)
        if argv[0] != "duotok":
            continue
        proc = subprocess.run([sys.executable, "-m", "duotok.cli", *argv[1:]], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert (root / "models" / "quantize-smoke" / "tokenizer" / "model.safetensors").is_file()
    assert (root / "models" / "codec-smoke" / "model.safetensors").is_file()
    assert {p.name for p in (root / "decoded" / "song").iterdir()} == {"vocal.wav", "accompaniment.wav",
                                                                      "mixture.wav"}
