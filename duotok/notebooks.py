"""The one convention every pipeline stage follows: a notebook, run by papermill, with parameters.

Each notebook lives in ``notebooks/`` as a jupytext ``py:percent`` file (the source of truth and
the DVC dependency: saving an executed notebook never changes it) paired with an output-free
``.ipynb`` for JupyterLab. A stage runs ``duotok notebook run NAME -p key value ...``: the ``.py``
is converted in memory, papermill injects the parameters after the cell tagged ``parameters`` and
executes it with the ``duotok`` kernel, and the executed copy (outputs included) is written to
``reports/notebooks/NAME.ipynb`` — atomically, so a failed run leaves no half-written report.
With ``--stage STAGE`` (every ``dvc.yaml`` stage passes its own name) the run is timed and its record
written to ``reports/metrics/timing/STAGE.json`` (:mod:`duotok.timing`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from duotok.paths import project_root
from duotok.timing import timed_stage

KERNEL_NAME = os.environ.get("DUOTOK_KERNEL", "duotok")


def notebook_source(name: str) -> Path:
    path = project_root() / "notebooks" / f"{name}.py"
    if not path.is_file():
        available = sorted(p.stem for p in (project_root() / "notebooks").glob("*.py"))
        raise FileNotFoundError(f"{path}: no such notebook; available: {available}")
    return path


def _kernel_available(name: str) -> bool:
    from jupyter_client.kernelspec import KernelSpecManager

    return name in KernelSpecManager().find_kernel_specs()


def run_notebook(name: str, parameters: dict[str, Any], output: str | Path | None = None,
                 kernel_name: str | None = None, progress: bool = False, log_output: bool = False,
                 stage: str | None = None) -> Path:
    """Execute ``notebooks/NAME.py`` with papermill and write the executed ``.ipynb``; with ``stage``, time
    the run as that DVC stage (``reports/metrics/timing/STAGE.json``, written only if it succeeds)."""
    with timed_stage(stage, profile=parameters.get("profile")):
        return _execute_notebook(name, parameters, output, kernel_name, progress, log_output)


def _execute_notebook(name: str, parameters: dict[str, Any], output: str | Path | None,
                      kernel_name: str | None, progress: bool, log_output: bool) -> Path:
    import jupytext
    import nbformat
    import papermill as pm

    kernel = kernel_name or KERNEL_NAME
    if not _kernel_available(kernel):
        raise RuntimeError(
            f"Jupyter kernel {kernel!r} is not installed; run `make setup` (it registers it with "
            f"`python -m ipykernel install --sys-prefix --name {kernel}`) or set DUOTOK_KERNEL"
        )
    src = notebook_source(name)
    nb = jupytext.read(src)
    out = Path(output) if output else project_root() / "reports" / "notebooks" / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src_nb = Path(tmp) / f"{name}.ipynb"
        nbformat.write(nb, src_nb)
        tmp_out = out.with_name(f".{out.stem}.partial.ipynb")
        try:
            pm.execute_notebook(
                str(src_nb), str(tmp_out), parameters=parameters, kernel_name=kernel,
                cwd=str(project_root() / "notebooks"), progress_bar=progress, log_output=log_output,
            )
        except BaseException:
            # Keep the failed run for debugging, but never under the final name.
            if tmp_out.exists():
                tmp_out.replace(out.with_name(f"{out.stem}.failed.ipynb"))
            raise
        normalize_executed_notebook(tmp_out)
        tmp_out.replace(out)
    return out


_VOLATILE_RUN_KEYS = ("start_time", "end_time", "duration", "input_path", "output_path")


def normalize_executed_notebook(path: str | Path) -> None:
    """Remove what differs between two runs of the same notebook on the same data — timestamps,
    durations, temporary paths, random cell ids, the absolute location of the checkout and of the
    environment — so the executed copy is byte-identical and `dvc.lock` stays clean on a rerun."""
    import json
    import sys

    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    for key in _VOLATILE_RUN_KEYS:
        nb.get("metadata", {}).get("papermill", {}).pop(key, None)
    replacements = [(str(Path(sys.prefix).resolve()), "<env>"), (str(project_root()), "<root>")]
    for index, cell in enumerate(nb.get("cells", [])):
        cell["id"] = f"cell-{index:03d}"
        meta = cell.get("metadata", {})
        meta.pop("execution", None)
        for key in _VOLATILE_RUN_KEYS:
            meta.get("papermill", {}).pop(key, None)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = "".join(output.get("text", []))
                for old, new in replacements:
                    text = text.replace(old, new)
                output["text"] = text.splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def sync_notebook_pair(name: str) -> Path:
    """Write the output-free ``.ipynb`` twin of ``notebooks/NAME.py`` (for JupyterLab users)."""
    import jupytext

    src = notebook_source(name)
    nb = jupytext.read(src)
    for index, cell in enumerate(nb.cells):    # nbformat draws random ids: a sync would rewrite every cell
        cell["id"] = f"cell-{index:03d}"
    dst = src.with_suffix(".ipynb")
    jupytext.write(nb, dst, fmt="ipynb")
    return dst
