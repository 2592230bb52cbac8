"""The domain-gap report: a MUSDB-layout folder scored beside the generated corpus with the pipeline's
models (tiny untrained ones here, saved where the loaders look), every track accounted for."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from duotok.eval.domain_gap import (
    CORPUS,
    FOLDER,
    MODEL_LAYOUT,
    compute_domain_gap,
    find_tracks,
    load_models,
    main,
    track_excerpt,
    write_domain_gap,
)
from duotok.separation.base import STEMS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "separation"))
from gen_helpers import tiny_codec, tiny_model  # noqa: E402

SR = 16000
SECONDS = 1.5
MUSDB_TRACKS = (("test", "Track A", SECONDS), ("test", "Track B", SECONDS), ("train", "Track C", SECONDS))
CORPUS_SONGS = (("s1", "test", SECONDS), ("s2", "test", SECONDS), ("s3", "train", SECONDS))
# Mel L1 for the separators too: museval takes seconds per excerpt, so only the SDR test runs it.
FAST = dict(excerpt_seconds=1.0, separation_metrics=("mel_l1",), reconstruction_metrics=("mel_l1",), profile="smoke")


# --------------------------------------------------------------------------- fixtures


def _tiny_duotok():
    """Smoke-profile stage 2 + 3 with 1-s chunks (tests/tokenizer/conftest.py) and a 2-step decoder
    (tests/tokenizer/test_decode.py): untrained, so only the plumbing is under test."""
    from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder
    from duotok.models.dit import DiTConfig, LatentDiT
    from duotok.tokenizer import DuoTok, DuoTokConfig
    from duotok.tokenizer.decoder import TokenDecoder
    from duotok.train import finetune, quantize

    separator, _, _ = finetune.build_config("smoke")
    quantizer, _, _ = quantize.build_config("smoke")
    torch.manual_seed(0)
    tokenizer = DuoTok(DuoTokConfig(separator=separator, quantizer=quantizer, chunk_seconds=1.0, chunk_batch=2))
    torch.manual_seed(1)
    ae = WaveAutoencoder(AutoencoderConfig(dim=16, n_blocks=1, latent_dim=4, n_fft=512))
    dit = LatentDiT(DiTConfig(latent_dim=4, cond_dim=tokenizer.config.quantizer.encoder.dim, dim=16, n_layers=1,
                              n_heads=2, cond_upsample=2))
    return tokenizer.eval(), tokenizer.with_decoder(TokenDecoder.from_parts(ae, dit, steps=2))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A models/ folder in the pipeline's layout (MODEL_LAYOUT), written with save_pretrained."""
    from duotok.separation.openunmix import OpenUnmix, OpenUnmixConfig

    root = tmp_path_factory.mktemp("models")
    tokenizer, codec = _tiny_duotok()
    tokenizer.save_pretrained(root / MODEL_LAYOUT["tokenizer"])
    codec.save_pretrained(root / MODEL_LAYOUT["codec"])
    torch.manual_seed(0)
    OpenUnmix(OpenUnmixConfig(hidden_size=16, n_layers=1)).save_pretrained(root / MODEL_LAYOUT["openunmix"])
    tiny_model().save_pretrained(root / MODEL_LAYOUT["token-lm"])
    tiny_codec().save_pretrained(root / MODEL_LAYOUT["token-lm-codec"])
    return root


@pytest.fixture
def folders(tmp_path, make_musdb, make_duosynth) -> tuple[Path, Path]:
    """A MUSDB-layout folder whose Track B lacks its bass stem and whose test/ holds a non-track folder,
    and a duosynth corpus with two test songs."""
    musdb = make_musdb(tmp_path / "musdb", tracks=MUSDB_TRACKS)
    (musdb / "test" / "Track B" / "bass.wav").unlink()
    (musdb / "test" / "notes").mkdir()
    (musdb / "test" / "notes" / "readme.txt").write_text("not a track")
    return musdb, make_duosynth(tmp_path / "data", CORPUS_SONGS)


class NoisyTruth:
    """A bound reading the true stems: each stem plus white noise 20 dB below it (a known SDR)."""

    name = "truth + noise"
    needs_references = True
    sample_rate = SR

    def separate(self, mixture):
        raise TypeError("reads the references")

    def separate_with_references(self, mixture, stems):
        rng = np.random.default_rng(0)
        stems = np.asarray(stems, dtype=np.float64)
        noise = rng.standard_normal(stems.shape) * np.sqrt((stems ** 2).mean(axis=1, keepdims=True) / 100.0)
        return {s: torch.from_numpy((stems[i] + noise[i]).astype(np.float32)) for i, s in enumerate(STEMS)}


# --------------------------------------------------------------------------- tests


def test_every_track_gets_a_row_and_a_track_without_a_stem_is_reported_while_the_others_finish(models_dir, folders):
    musdb, corpus = folders
    result = compute_domain_gap(musdb, models_dir, corpus, systems=["mask-head", "openunmix"], max_tracks=5, **FAST)

    by_side = {side: {t["song"]: t["status"] for t in result.tracks if t["dataset"] == side}
               for side in (FOLDER, CORPUS)}
    assert by_side == {FOLDER: {"Track A": "ok", "Track B": "failed", "Track C": "ok"},
                       CORPUS: {"s1": "ok", "s2": "ok"}}                    # corpus: the test split only
    [failure] = result.failures
    assert failure["song"] == "Track B" and failure["stage"] == "load"
    assert str(musdb / "test" / "Track B") in failure["error"] and "bass" in failure["error"]
    assert "duotok-domain-gap-" not in failure["error"]                      # the real path, not the view's
    assert [s["path"] for s in result.skipped] == [str(musdb / "test" / "notes")]
    assert any("44100" in note for t in result.tracks if t["song"] == "Track A" for note in t["notes"])

    scored = [(t["dataset"], t["song"]) for t in result.tracks if t["status"] == "ok"]
    assert sorted({(r["dataset"], r["song"], r["system"], r["stem"]) for r in result.separation}) == sorted(
        (d, s, system, stem) for d, s in scored for system in ("mask-head", "openunmix") for stem in STEMS)
    assert sorted((r["dataset"], r["song"], r["stream"]) for r in result.tokens) == sorted(
        (d, s, stream) for d, s in scored for stream in ("vocal", "accompaniment"))
    assert sorted((r["dataset"], r["song"], r["track"]) for r in result.reconstruction) == sorted(
        (d, s, t) for d, s in scored for t in ("vocal", "accompaniment", "mixture"))
    assert all(r["seconds"] == pytest.approx(1.0) for r in result.separation)
    assert not result.ok
    assert result.summaries[FOLDER]["tracks"] == {"found": 3, "considered": 3, "ok": 2, "partial": 0, "failed": 1}


def test_the_summaries_are_the_means_of_the_rows(models_dir, folders):
    musdb, corpus = folders
    result = compute_domain_gap(musdb, models_dir, corpus, systems=["mask-head"], **FAST)
    sep, tok, rec = (result.frame(v) for v in ("separation", "tokens", "reconstruction"))
    for side in (FOLDER, CORPUS):
        s = result.summaries[side]
        for stem in STEMS:
            values = sep[(sep["dataset"] == side) & (sep["stem"] == stem)]["mel_l1"].dropna()
            summary = s["separation"]["mask-head"]["stems"][stem]["mel_l1"]
            assert summary["n"] == len(values) and summary["n"] > 0
            assert summary["mean"] == pytest.approx(values.mean())
        for stream in ("vocal", "accompaniment"):
            rows = tok[(tok["dataset"] == side) & (tok["stream"] == stream)]
            assert s["tokens"][stream]["entropy_rate_bps"]["mean"] == pytest.approx(rows["entropy_rate_bps"].mean())
            assert s["tokens"][stream]["used"]["mean"] == pytest.approx(rows["used"].mean())
            pooled = s["tokens_pooled"][stream]
            assert pooled["frames"] == rows["frames"].sum() and pooled["used"] >= rows["used"].max()
        for track in ("vocal", "accompaniment", "mixture"):
            rows = rec[(rec["dataset"] == side) & (rec["track"] == track)]
            assert s["reconstruction"][track]["mel_l1"]["mean"] == pytest.approx(rows["mel_l1"].mean())
    # the entropy rate is in bits per second of audio: 25 Hz tokens of a codebook of 64 codes at most
    rate = result.settings["frame_rate"]
    assert 0 < tok["entropy_rate_bps"].max() <= rate * math.log2(64) + 1e-9


def test_the_sdr_is_museval_s_and_a_known_estimate_scores_as_expected(models_dir, folders):
    """20 dB of noise under each true stem scores ~20 dB, exactly what museval says on the same excerpt
    (museval takes seconds per excerpt: one track per side)."""
    from duotok.eval.separation import bss_eval_track

    musdb, corpus = folders
    models = load_models(models_dir, {"noisy": NoisyTruth()}, ("separation",))
    result = compute_domain_gap(musdb, models_dir, corpus, views=("separation",), models=models, max_tracks=1,
                                **{**FAST, "separation_metrics": ("sdr", "sir", "sar")})
    track = next(t for t in find_tracks(musdb)[0] if t.song == "Track A")
    excerpt, _ = track_excerpt(track, 1.0, SR)
    estimate = NoisyTruth().separate_with_references(excerpt.mixture, excerpt.stems)
    expected = bss_eval_track(excerpt.stems, np.stack([estimate[s].numpy() for s in STEMS]), SR)
    noisy = [r for r in result.separation if r["song"] == "Track A" and r["system"] == "noisy"]
    assert [r["stem"] for r in noisy] == list(STEMS)
    for metric in ("sdr", "sir", "sar"):
        np.testing.assert_allclose([r[metric] for r in noisy], expected[metric.upper()], rtol=1e-9)
    rows = {r["stem"]: r["sdr"] for r in noisy}
    assert all(15.0 < rows[s] < 25.0 for s in STEMS)
    assert {r["song"] for r in result.separation} == {"Track A", "s1"}


def test_a_corrupt_file_is_named_and_the_cap_keeps_the_first_tracks(models_dir, folders):
    musdb, corpus = folders
    (musdb / "train" / "Track C" / "vocals.wav").write_bytes(b"RIFF not really a wav")
    result = compute_domain_gap(musdb, models_dir, corpus, views=("tokens",), max_tracks=3, **FAST)
    errors = {f["song"]: f["error"] for f in result.failures}
    assert set(errors) == {"Track B", "Track C"}
    assert str(musdb / "train" / "Track C" / "vocals.wav") in errors["Track C"]
    assert {r["song"] for r in result.tokens if r["dataset"] == FOLDER} == {"Track A"}

    capped = compute_domain_gap(musdb, models_dir, corpus, views=("tokens",), max_tracks=1, **FAST)
    assert [t["song"] for t in capped.tracks] == ["Track A", "s1"]             # MUSDB's test split first
    assert capped.datasets[FOLDER]["found"] == 3 and capped.datasets[FOLDER]["considered"] == 1
    assert capped.ok


def test_the_token_lm_and_the_oracle_load_from_the_models_folder(models_dir):
    models = load_models(models_dir, ["openunmix", "token-lm", "oracle"], ("separation",), profile="smoke")
    assert set(models.separators) == {"openunmix", "token-lm", "oracle"} and models.sample_rate == SR
    assert models.paths["openunmix"] == str(models_dir / MODEL_LAYOUT["openunmix"])
    mixture = torch.from_numpy((0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32))
    stems = models.separators["token-lm"].separate(mixture)
    assert tuple(stems) == STEMS and all(x.shape == mixture.shape for x in stems.values())


def test_a_missing_model_or_bad_argument_fails_the_job_with_the_folder_named(tmp_path, models_dir, folders):
    with pytest.raises(RuntimeError, match="openunmix") as info:
        load_models(tmp_path / "empty", ["openunmix"], ("separation",))
    assert str(tmp_path / "empty" / MODEL_LAYOUT["openunmix"]) in str(info.value)
    with pytest.raises(ValueError, match="unknown separation system.*demucs"):
        load_models(models_dir, ["demucs"], ("separation",))
    musdb, corpus = folders
    with pytest.raises(ValueError, match="unknown view"):
        compute_domain_gap(musdb, models_dir, corpus, views=("vibes",))
    empty = tmp_path / "no_tracks"
    empty.mkdir()
    with pytest.raises(ValueError, match="no tracks found"):
        compute_domain_gap(empty, models_dir, corpus)


def test_the_report_files_are_written_atomically(models_dir, folders, tmp_path, monkeypatch):
    import duotok.reporting.domain_gap as report

    musdb, corpus = folders
    result = compute_domain_gap(musdb, models_dir, corpus, systems=["mask-head"], max_tracks=2, **FAST)
    out = tmp_path / "report"
    written = write_domain_gap(result, out)
    assert sorted(p.name for p in out.iterdir()) == ["domain_gap.json", "domain_gap.md", "domain_gap.png"]
    assert json.loads(written["json"].read_text()) == json.loads(json.dumps(result.to_dict()))
    markdown = written["markdown"].read_text()
    assert "Track B" in markdown and "bass" in markdown and "mask-head · vocals" in markdown
    assert written["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    result.failures.clear()                                   # a different report, whose figure fails
    monkeypatch.setattr(report, "plot_domain_gap", lambda record: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        write_domain_gap(result, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before      # the old files, and no temp files

    def half_written(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.undo()
    monkeypatch.setattr("duotok.io.files._finish", half_written)     # the rename of the first file fails
    with pytest.raises(OSError, match="disk full"):
        write_domain_gap(result, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_command_reports_the_bad_track_and_exits_1(models_dir, folders, tmp_path, capsys):
    musdb, corpus = folders
    argv = [str(musdb), "--models", str(models_dir), "--reference", str(corpus), "--out", str(tmp_path / "out"),
            "--views", "tokens", "--seconds", "1", "--profile", "smoke"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "Track B" in captured.err and "1 track(s)" in captured.err
    assert (tmp_path / "out" / "domain_gap.md").is_file()
    assert main([str(tmp_path / "nowhere"), "--models", str(models_dir), "--out", str(tmp_path / "out2")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_importing_the_module_does_not_import_torch():
    code = ("import sys, argparse; import duotok.eval.domain_gap as d; "
            "d.add_domain_gap_parser(argparse.ArgumentParser().add_subparsers()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_the_notebook_runs_end_to_end_on_a_musdb_folder(models_dir, folders, tmp_path):
    """notebooks/10_domain_gap.py's cells in order, with papermill-style parameter overrides (no kernel)."""
    import jupytext

    from duotok.paths import project_root

    musdb, corpus = folders
    overrides = {"profile": "smoke", "folder": str(musdb), "models_dir": str(models_dir),
                 "reference_root": str(corpus), "out_dir": str(tmp_path / "out"), "systems": "mask-head,oracle",
                 "separation_metrics": "mel_l1", "reconstruction_metrics": "mel_l1", "excerpt_seconds": 1.0,
                 "max_tracks": 2, "examples": 1}
    namespace: dict = {}
    for cell in jupytext.read(project_root() / "notebooks" / "10_domain_gap.py").cells:
        if cell.cell_type != "code":
            continue
        exec(compile(cell.source, "10_domain_gap.py", "exec"), namespace)
        if "parameters" in cell.metadata.get("tags", []):
            assert set(overrides) <= set(namespace), "an override names no parameter"
            namespace.update(overrides)
    result = namespace["result"]
    assert {e["dataset"] for e in result.examples} == {FOLDER, CORPUS}
    assert set(result.examples[0]["separated"]) == {"mask-head", "oracle"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["domain_gap.json", "domain_gap.md",
                                                                    "domain_gap.png"]


def test_excerpts_are_the_reconstruction_tables_spans(folders):
    """One track read alone through its view is the excerpt held_out_excerpts gives the corpus tables."""
    from duotok.data.latents import stem_tracks
    from duotok.eval.roundtrip import held_out_excerpts

    _, corpus = folders
    tracks, skipped = find_tracks(corpus, CORPUS, ["test"])
    assert [t.song for t in tracks] == ["s1", "s2"] and not skipped
    reference = held_out_excerpts(corpus, "test", 1.0, 2, SR)
    for track, expected in zip(tracks, reference, strict=True):
        excerpt, notes = track_excerpt(track, 1.0, SR)
        vocal, accompaniment = stem_tracks(excerpt.stems)
        assert excerpt.offset_seconds == expected.offset_seconds == pytest.approx(0.25) and not notes
        np.testing.assert_array_equal(vocal, expected.vocal)
        np.testing.assert_array_equal(accompaniment, expected.accompaniment)
        np.testing.assert_array_equal(excerpt.mixture, expected.mixture)
