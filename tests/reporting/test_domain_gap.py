"""The domain-gap report's tables, Markdown and figure, from a hand-written record (no models)."""

from __future__ import annotations

import math

import pytest

from duotok.reporting.domain_gap import (
    comparison_frame,
    markdown_report,
    plot_domain_gap,
    render_domain_gap,
    view_table,
)


def _stats(mean, n=2):
    return {"mean": mean, "median": mean, "n": n}


def _side(sdr_vocals: float, entropy: float, mel: float, failed: int = 0) -> dict:
    stems = {s: {"sdr": _stats(sdr_vocals + i)} for i, s in enumerate(("vocals", "drums", "bass", "other"))}
    return {
        "tracks": {"found": 3, "considered": 2 + failed, "ok": 2, "partial": 0, "failed": failed},
        "separation": {"mask-head": {"system": "mask-head", "n_songs": 2, "rtf": 0.1, "stems": stems,
                                     "average": {"sdr": {"mean": sdr_vocals + 1.5, "median": sdr_vocals + 1.5}}}},
        "tokens": {"vocal": {"entropy_rate_bps": _stats(entropy), "used": _stats(40.0)},
                   "accompaniment": {"entropy_rate_bps": _stats(entropy + 10), "used": _stats(50.0)}},
        "tokens_pooled": {"vocal": {"used": 60, "codebook_size": 1024}},
        "reconstruction": {"vocal": {"mel_l1": _stats(mel)}, "accompaniment": {"mel_l1": _stats(mel + 0.5)}},
    }


RECORD = {
    "format": "duotok-domain-gap", "version": 1,
    "settings": {"excerpt_seconds": 10.0, "sample_rate": 16000, "models_dir": "models", "frame_rate": 25.0,
                 "codebook_sizes": [1024, 1024]},
    "datasets": {"folder": {"root": "/music/musdb", "layout": "musdb", "splits": ["test"]},
                 "corpus": {"root": "data", "layout": "duosynth", "splits": ["test"]}},
    "summaries": {"folder": _side(-2.0, 150.0, 3.0, failed=1), "corpus": _side(4.0, 200.0, 2.0)},
    "failures": [{"dataset": "folder", "song": "Broken | Song", "path": "/music/musdb/test/Broken | Song",
                  "stage": "load", "error": "missing stem file(s): 'bass' (bass.wav)"}],
    "skipped": [{"dataset": "folder", "path": "/music/musdb/test/docs", "reason": "not a track folder"}],
}


def test_the_gap_is_folder_minus_corpus_for_every_number():
    frame = comparison_frame(RECORD)
    row = frame[(frame["view"] == "separation") & (frame["item"] == "bass")].iloc[0]
    assert (row["folder"], row["corpus"], row["gap"]) == (0.0, 6.0, -6.0)
    mean = frame[(frame["view"] == "separation") & (frame["item"] == "mean")].iloc[0]
    assert mean["gap"] == pytest.approx(-6.0) and mean["folder_n"] == 2
    tokens = frame[(frame["view"] == "tokens") & (frame["group"] == "accompaniment")
                   & (frame["metric"] == "entropy_rate_bps")].iloc[0]
    assert tokens["gap"] == pytest.approx(-50.0)
    mel = frame[(frame["view"] == "reconstruction") & (frame["group"] == "vocal")].iloc[0]
    assert mel["gap"] == pytest.approx(1.0)
    assert len(frame) == 4 + 1 + 4 + 2          # 4 stems + mean, 2 x 2 token stats, 2 tracks


def test_a_number_missing_on_one_side_has_no_gap():
    record = {**RECORD, "summaries": {**RECORD["summaries"], "corpus": {**_side(4.0, 200.0, 2.0),
                                                                        "reconstruction": {}}}}
    frame = comparison_frame(record)
    rec = frame[frame["view"] == "reconstruction"]
    assert rec["gap"].isna().all() and (rec["corpus_n"] == 0).all()
    table = view_table(frame, "reconstruction")
    assert table.loc["vocal", "mel_l1 ↓"] == "3 / — (—)"


def test_tables_read_folder_slash_corpus_with_the_gap():
    table = view_table(comparison_frame(RECORD), "separation")
    assert table.loc["mask-head · vocals", "sdr ↑"] == "-2 / 4 (-6)"
    assert table.loc["mask-head · vocals", "n (folder / corpus)"] == "2 / 2"
    assert view_table(comparison_frame(RECORD), "tokens").loc["vocal", "entropy_rate_bps ↑"] == "150 / 200 (-50)"


def test_the_markdown_names_every_failure_and_skipped_folder():
    text = markdown_report(RECORD)
    assert "2 of 3 track(s) considered" in text and "1 failed" in text
    assert "Broken | Song" in text and "missing stem" in text and "/music/musdb/test/docs" in text
    assert "| mask-head · vocals |" in text and "60 / 1024" in text
    clean = markdown_report({**RECORD, "failures": [], "skipped": []})
    assert "None: every track was scored in every view." in clean and "Skipped" not in clean


def test_the_figure_and_files_render_with_views_missing():
    partial = {**RECORD, "summaries": {side: {**s, "separation": {}, "reconstruction": {}}
                                       for side, s in RECORD["summaries"].items()}}
    fig = plot_domain_gap(partial)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("separation: not computed" in t for t in texts)
    assert any("not computed" in t and "reconstruction" in t for t in texts)
    files = render_domain_gap(partial)
    assert files["figure"][:4] == b"\x89PNG" and b"Not computed." in files["markdown"]


def test_nan_is_refused_in_the_json_record():
    bad = {**RECORD, "settings": {**RECORD["settings"], "excerpt_seconds": math.nan}}
    with pytest.raises(ValueError):
        render_domain_gap(bad)
