"""The `duotok` command on small inputs (exit codes and messages a user sees)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from duotok.cli import main
from duotok.paths import project_root


def test_params_prints_the_resolved_profile(capsys):
    assert main(["params", "synth", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "# profile: smoke" in out and "n_songs: 6" in out


def test_profile_rewrites_params_yaml(tmp_path, monkeypatch, capsys):
    shutil.copy(project_root() / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "duotok").mkdir()
    monkeypatch.setenv("DUOTOK_ROOT", str(tmp_path))
    assert main(["profile", "paper"]) == 0
    assert "profile: paper" in (tmp_path / "params.yaml").read_text()
    assert main(["profile"]) == 0
    assert capsys.readouterr().out.strip().endswith("paper")


def test_unknown_notebook_is_a_clear_error(capsys):
    assert main(["notebook", "run", "99_nope"]) == 2
    err = capsys.readouterr().err
    assert "99_nope" in err and "available" in err


def test_data_info_on_missing_folder_fails_cleanly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "duotok.cli", "data", "info", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "none" in proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["data", "--help"], ["notebook", "run", "--help"]])
def test_help(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0


def test_train_pretrain_help_is_forwarded(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "pretrain", "--help"])
    assert exc.value.code == 0
    assert "--data-dir" in capsys.readouterr().out


def test_stage_commands_take_their_stage_name():
    """dvc.yaml's stage commands pass --stage NAME, which times the run (duotok/timing.py)."""
    from duotok.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["notebook", "run", "05_baseline", "-p", "codec", "rvq", "--stage", "baseline@rvq"])
    assert args.stage == "baseline@rvq" and args.param == [["codec", "rvq"]]
    assert parser.parse_args(["tokens", "--codec", "rvq", "--stage", "tokens@rvq"]).stage == "tokens@rvq"
    assert parser.parse_args(["notebook", "run", "00_corpus"]).stage is None, "outside DVC nothing is timed"


def test_papermill_imports_without_the_unused_iri_checker_and_still_validates():
    """`duotok notebook run` skips ``rfc3987_syntax`` (3 s of Lark grammars per stage), and nbformat still
    validates: a fresh interpreter, as a DVC stage starts one."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from duotok.cli import skip_unused_slow_imports\n"
        "skip_unused_slow_imports()\n"
        "import jupytext, nbformat, papermill\n"
        "assert sys.modules['rfc3987_syntax'] is None, 'the iri checker was imported'\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x = 1')])\n"
        "nbformat.validate(nb)\n"
        "bad = nbformat.v4.new_notebook(); bad['cells'] = [{'cell_type': 'code'}]\n"
        "try:\n"
        "    nbformat.validate(bad)\n"
        "except nbformat.ValidationError:\n"
        "    print('rejected')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "rejected", "an invalid notebook must still fail validation"
