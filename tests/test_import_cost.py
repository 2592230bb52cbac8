"""Modules every stage imports do not pull in what only some stages use: ``transformers`` (≈ 5 s) is imported
where an LM or a separator is built, ``scipy.signal`` (≈ 1.7 s) where audio is resampled. Each check runs in a
fresh interpreter, so what earlier tests imported does not count."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module, heavy", [("duotok.audio.io", "scipy.signal"),
                                           ("duotok.data.stems", "scipy.signal"),
                                           ("duotok.eval.token_lm", "transformers"),
                                           ("duotok.separation.generative", "transformers")])
def test_importing_a_module_does_not_import_what_only_some_stages_use(module, heavy):
    code = f"import sys, {module}; print({heavy!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False", f"importing {module} imports {heavy}"


def test_the_deferred_resampler_import_is_reached():
    """(The LM's and the separator's deferred imports are reached by their own tests, which build them.)"""
    import numpy as np

    from duotok.audio.io import resample
    assert resample(np.zeros(441, dtype=np.float32), 44100, 16000).shape == (160,)


def test_dvc_reads_its_yaml_files_with_the_c_reader():
    """DVC re-reads ``params.yaml`` for every stage and ``dvc.lock`` (~700 kB on ``default``) around every
    stage with ruamel's safe loader, which is pure Python unless ``ruamel.yaml.clib`` is installed
    (an optional extra since ruamel.yaml 0.19.1): 2.3 s against 0.5 s for the lock on a 2-core Xeon, and
    ``dvc status`` of the smoke pipeline 13.0 against 8.5 s. ``pyproject.toml`` pins it."""
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__name__ == "CParser"
