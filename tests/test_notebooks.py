"""The notebook convention: jupytext sources with a typed parameters cell, output-free twins in sync."""

from __future__ import annotations

import json

import jupytext
import pytest

from duotok.paths import project_root

NOTEBOOKS = sorted((project_root() / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no jupytext sources"


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_small_and_literal(source):
    nb = jupytext.read(source)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    lines = [ln for ln in cells[0].source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert any(ln.startswith("profile:") for ln in lines), "every stage takes the profile"
    for ln in lines:
        assert ":" in ln.split("=")[0] and "=" in ln, f"typed assignment expected: {ln!r}"
        value = ln.split("=", 1)[1].split("#")[0].strip()
        assert "(" not in value, f"parameters must be literals, not derived values: {ln!r}"


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_twin_exists_has_no_outputs_and_matches(source):
    twin = source.with_suffix(".ipynb")
    assert twin.is_file(), f"run `make notebooks` to write {twin.name}"
    raw = json.loads(twin.read_text())
    for cell in raw["cells"]:
        assert not cell.get("outputs"), f"{twin.name} is committed with outputs"
        assert cell.get("execution_count") in (None,), f"{twin.name} has execution counts"
    py_cells = [c.source for c in jupytext.read(source).cells]
    nb_cells = [c.source for c in jupytext.read(twin).cells]
    assert py_cells == nb_cells, f"{twin.name} is out of sync with {source.name}: run `make notebooks`"


def test_corpus_notebook_runs_on_real_data_layout(tmp_path, make_musdb, monkeypatch):
    """Users with MUSDB18-HQ-layout data get the corpus report too (no tags, no score checks); run as a
    stage, the run is timed, the notebook's kernel counted as the stage's own CPU time."""
    from duotok.notebooks import run_notebook

    monkeypatch.setattr("duotok.timing.timing_path", lambda stage: tmp_path / "timing" / f"{stage}.json")
    root = make_musdb(tmp_path / "musdb", tracks=(("train", "Track A", 3.0), ("test", "Track B", 2.0)))
    out = run_notebook("00_corpus", {"profile": "smoke", "data_dir": str(root),
                                     "figures_dir": str(tmp_path / "fig"),
                                     "metrics_path": str(tmp_path / "corpus.json")},
                       output=tmp_path / "executed.ipynb", stage="corpus")
    assert out.is_file()
    timing = json.loads((tmp_path / "timing" / "corpus.json").read_text())
    assert timing["stage"] == "corpus" and timing["profile"] == "smoke" and timing["wall_seconds"] > 0
    if timing["own_cpu_seconds"] is not None:   # the kernel (a child process) imports numpy, torch, ...
        assert timing["own_cpu_seconds"] > 1.0, timing
    metrics = json.loads((tmp_path / "corpus.json").read_text())
    assert metrics["layout"] == "musdb" and metrics["n_songs"] == 2
    assert metrics["pitch_check"]["notes"] == 0
    assert metrics["max_mixture_residual"] < 1e-3, "MUSDB mixture ≈ sum of stems (after resampling)"
    assert (tmp_path / "fig" / "example_stems.png").is_file()


def test_executed_notebooks_are_normalized(tmp_path):
    """Timestamps, durations, temp paths and random ids are removed: two runs give the same bytes."""
    import sys

    from duotok.notebooks import normalize_executed_notebook

    nb = {"cells": [{"cell_type": "code", "id": "a1b2", "source": "x", "execution_count": 1,
                     "metadata": {"execution": {"iopub.status.busy": "2026-01-01T00:00:00Z"},
                                  "papermill": {"duration": 1.5, "start_time": "t0", "end_time": "t1",
                                                "status": "completed"}},
                     "outputs": [{"output_type": "stream", "name": "stderr",
                                  "text": [f"{sys.prefix}/lib/x.py:1: Warning\n"]}]}],
          "metadata": {"papermill": {"duration": 3.0, "start_time": "t", "end_time": "u",
                                     "input_path": "/tmp/abc/x.ipynb", "parameters": {"profile": "smoke"}}},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    normalize_executed_notebook(path)
    out = json.loads(path.read_text())
    assert out["metadata"]["papermill"] == {"parameters": {"profile": "smoke"}}
    cell = out["cells"][0]
    assert cell["id"] == "cell-000" and "execution" not in cell["metadata"]
    assert cell["metadata"]["papermill"] == {"status": "completed"}
    assert cell["outputs"][0]["text"] == ["<env>/lib/x.py:1: Warning\n"]


def test_syncing_a_twin_twice_writes_the_same_bytes(tmp_path, monkeypatch):
    """Cell ids are the cells' positions, not nbformat's random ones, so a sync rewrites only what changed."""
    import duotok.notebooks as notebooks

    source = tmp_path / NOTEBOOKS[0].name
    source.write_text(NOTEBOOKS[0].read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(notebooks, "notebook_source", lambda name: source)
    first = notebooks.sync_notebook_pair(source.stem).read_bytes()
    second = notebooks.sync_notebook_pair(source.stem).read_bytes()
    assert first == second
    ids = [cell["id"] for cell in json.loads(first)["cells"]]
    assert ids == [f"cell-{i:03d}" for i in range(len(ids))]
