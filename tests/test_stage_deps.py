"""dvc.yaml's code deps follow the imports of each stage's notebook: the real pipeline is in sync, and a
missing dependency (a lazy import included) is caught and then repaired by ``sync``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from duotok import stage_deps
from duotok.paths import project_root


def _write(root: Path, rel: str, text: str = "") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def _toy_project(root: Path) -> None:
    _write(root, "duotok/__init__.py", """
        def __getattr__(name):              # a lazy export (PEP 562): runs only when Heavy is asked for
            if name == "Heavy":
                from duotok.heavy import Heavy
                return Heavy
            raise AttributeError(name)
        """)
    _write(root, "duotok/heavy.py", "Heavy = 3\n")
    _write(root, "duotok/cli.py", """
        import argparse


        def cmd_tokens(args):
            from duotok.helpers import tool
            return tool
        """)
    _write(root, "duotok/notebooks.py")
    _write(root, "duotok/a.py", """
        from .helpers import tool          # relative import of a module-level helper


        def later():
            from duotok.sub.c import thing  # a lazy import: runs when the stage calls later()
            return thing
        """)
    _write(root, "duotok/helpers.py", "tool = 1\n")
    _write(root, "duotok/unused.py", "x = 1\n")
    _write(root, "duotok/sub/__init__.py")
    _write(root, "duotok/sub/c.py", "thing = 2\n")
    _write(root, "notebooks/n.py", "from duotok.a import later\nlater()\n")
    _write(root, "dvc.yaml", """
        # a comment that must survive
        stages:
          step:
            cmd: duotok notebook run n -p profile smoke
            deps:
              - data
              - notebooks/n.py
              - duotok/a.py
              - duotok/unused.py
            outs:
              - out
        """)


def test_the_pipeline_is_in_sync_with_its_imports():
    drifts = stage_deps.check(project_root())
    assert not drifts, "\n".join(d.describe() for d in drifts) + "\nrun `duotok deps sync`"


def test_a_missing_and_an_extra_dependency_are_caught_then_synced(tmp_path):
    _toy_project(tmp_path)
    [drift] = stage_deps.check(tmp_path)
    assert drift.stage == "step"
    assert set(drift.missing) == {"duotok/__init__.py", "duotok/helpers.py", "duotok/notebooks.py", "duotok/sub"}
    assert drift.extra == ["duotok/unused.py"]
    assert "does not depend on" in drift.describe()

    assert stage_deps.sync(tmp_path) == ["step"]
    assert stage_deps.check(tmp_path) == []
    text = (tmp_path / "dvc.yaml").read_text()
    assert "# a comment that must survive" in text
    deps = yaml.safe_load(text)["stages"]["step"]["deps"]
    assert deps[:2] == ["data", "notebooks/n.py"]  # the non-code deps keep their place
    assert deps[2:] == ["duotok/__init__.py", "duotok/a.py", "duotok/helpers.py", "duotok/notebooks.py",
                        "duotok/sub"]
    assert stage_deps.sync(tmp_path) == []  # a second sync changes nothing


def test_foreach_stages_are_checked_too(tmp_path):
    _toy_project(tmp_path)
    _write(tmp_path, "dvc.yaml", """
        stages:
          many:
            foreach: [x, y]
            do:
              cmd: duotok notebook run n -p which ${item}
              deps:
                - notebooks/n.py
        """)
    [drift] = stage_deps.check(tmp_path)
    assert drift.stage == "many" and "duotok/a.py" in drift.missing


def test_lazy_exports_count_only_where_asked_for(tmp_path):
    _toy_project(tmp_path)
    stage_deps.sync(tmp_path)
    assert "duotok/heavy.py" not in yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]["step"]["deps"]
    _write(tmp_path, "notebooks/n.py", "from duotok import Heavy\nfrom duotok.a import later\n")
    [drift] = stage_deps.check(tmp_path)
    assert drift.missing == ["duotok/heavy.py"]


def test_a_cli_stage_depends_on_what_its_subcommand_imports(tmp_path):
    _toy_project(tmp_path)
    _write(tmp_path, "dvc.yaml", """
        stages:
          tokens:
            cmd: mkdir -p out && duotok tokens --codec x
            deps:
              - data
        """)
    [drift] = stage_deps.check(tmp_path)
    assert drift.missing == ["duotok/__init__.py", "duotok/cli.py", "duotok/helpers.py"]


def test_a_notebook_stage_depends_on_what_the_runner_imports(tmp_path):
    """The runner writes the stage's timing record: what it imports is part of every notebook stage."""
    _toy_project(tmp_path)
    _write(tmp_path, "duotok/notebooks.py", "from duotok.timer import timed_stage\n")
    _write(tmp_path, "duotok/timer.py", "timed_stage = 1\n")
    [drift] = stage_deps.check(tmp_path)
    assert {"duotok/notebooks.py", "duotok/timer.py"} <= set(drift.missing)
    stage_deps.sync(tmp_path)
    assert "duotok/timer.py" in yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]["step"]["deps"]
