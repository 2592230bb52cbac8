"""Table 2 / Figure 1 / claim checks from hand-made measured rows: display formatting (dual-track vs
single-stream, missing values, ± std), the CSV round trip, the separated published section, LaTeX
escaping, atomic writes, the Pareto Mel L1 quantity (the mixture's, for every codec), figure files, and the
claim verdicts."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from duotok.reporting.claims import claim_verdicts, head_to_head
from duotok.reporting.pareto import (
    PUBLISHED_LABEL,
    Y_LABEL,
    pareto_mel_l1,
    pareto_points,
    plot_pareto,
    published_points,
    save_pareto,
)
from duotok.reporting.table2 import (
    PUBLISHED_TITLE,
    TABLE2_COLUMNS,
    format_table,
    latex_escape,
    measured_frame,
    measured_table,
    published_table,
    write_table2,
)


def _recon(mel: float, pesq: float = 1.5, stoi: float = 0.6, visqol: float | None = 3.0) -> dict:
    return {"pesq": pesq, "stoi": stoi, "mel_l1": mel, "visqol": visqol}


def _rows() -> list[dict]:
    return [
        {"codec": "Duo-Tok", "kind": "dual-track semantic", "token_rate": 25.0, "codebooks": "2x1024",
         "kbps": 0.5, "ap": 0.41, "ap_std": 0.02, "auc": 0.80, "auc_std": 0.01, "ppl_1024": 3.2,
         "bits_per_second": 310.0, "entropy_rate_bps": 400.0, "codebook_usage": 0.5,
         "reconstruction": {"vocal": _recon(0.74, pesq=1.05, stoi=0.2), "accompaniment": _recon(1.12),
                            "mixture": _recon(0.95)}},
        {"codec": "DAC_8%", "kind": "acoustic", "token_rate": 75, "codebooks": "8x1024", "kbps": 6.0,
         "ap": 0.20, "auc": 0.79, "ppl_1024": 194.0, "bits_per_second": 4000.0, "entropy_rate_bps": 350.0,
         "codebook_usage": 0.25,
         "reconstruction": {"mixture": _recon(0.73, pesq=2.66, visqol=None)}},
        {"codec": "X&Codec", "kind": "semantic", "token_rate": 12.5, "codebooks": "8x1024", "kbps": 4.0,
         "ap": 0.32, "auc": 0.87, "ppl_1024": 47.5, "bits_per_second": None, "entropy_rate_bps": 300.0,
         "reconstruction": {"mixture": _recon(0.91)}},
        {"codec": "Opus", "kind": "waveform", "token_rate": None, "codebooks": None, "kbps": 6.0,
         "ap": None, "auc": None, "ppl_1024": None, "bits_per_second": None,
         "reconstruction": {"mixture": _recon(0.5)}},
    ]


# --- table ------------------------------------------------------------------------------------------

def test_format_dual_and_single_stream_rows() -> None:
    table = measured_table(_rows())
    assert list(table.columns) == list(TABLE2_COLUMNS)
    duo, dac = table.loc["Duo-Tok"], table.loc["DAC_8%"]
    assert duo["PESQ"] == "1.05 / 1.50" and duo["STOI"] == "0.20 / 0.60" and duo["Mel L1"] == "0.74 / 1.12"
    assert duo["ViSQOL"] == "3.00 / 3.00"
    assert dac["PESQ"] == "2.66" and dac["Mel L1"] == "0.73"  # mixture, no slash
    assert duo["kbps"] == "0.50" and duo["PPL@1024"] == "3.20" and duo["bits/s"] == "310"
    assert duo["Token rate"] == "25" and table.loc["X&Codec", "Token rate"] == "12.5"
    # Issue 18: what the tokens carry sits beside the LM figures.
    assert duo["Token H bits/s"] == "400" and duo["Code usage"] == "50.0 %"
    assert table.loc["DAC_8%", "Code usage"] == "25.0 %" and table.loc["X&Codec", "Code usage"] == "—"
    assert list(table.columns).index("Token H bits/s") == list(table.columns).index("bits/s") + 1


def test_missing_values_and_std() -> None:
    table = measured_table(_rows())
    assert table.loc["Duo-Tok", "AP"] == "0.41 ± 0.02" and table.loc["Duo-Tok", "AUC"] == "0.80 ± 0.01"
    assert table.loc["DAC_8%", "AP"] == "0.20"  # no std given: no ±
    assert table.loc["DAC_8%", "ViSQOL"] == "—"
    opus = table.loc["Opus"]
    assert opus["AP"] == opus["AUC"] == opus["PPL@1024"] == opus["bits/s"] == opus["Token rate"] == "—"
    assert opus["Token H bits/s"] == opus["Code usage"] == "—"
    assert opus["Codebooks"] == "—" and opus["Mel L1"] == "0.50"


def test_dual_track_with_one_side_missing() -> None:
    row = {"codec": "half", "reconstruction": {"vocal": {"mel_l1": 0.7}, "mixture": {"mel_l1": 1.0}}}
    table = format_table(measured_frame([row]))
    assert table.loc["half", "Mel L1"] == "0.70 / —"
    assert table.loc["half", "PESQ"] == "—"


def test_unknown_track_raises() -> None:
    with pytest.raises(ValueError, match="vocals"):
        measured_frame([{"codec": "x", "reconstruction": {"vocals": {"mel_l1": 1.0}}}])


def test_published_table() -> None:
    table = published_table()
    assert list(table.columns) == list(TABLE2_COLUMNS)
    assert table.loc["Duo-Tok", "Mel L1"] == "0.74 / 1.12" and table.loc["Duo-Tok", "kbps"] == "0.75"
    assert table.loc["DAC", "PESQ"] == "2.66" and table.loc["DAC", "AP"] == "0.20"
    assert (table["bits/s"] == "—").all() and (table["ViSQOL"] == "—").all()
    assert (table["Token H bits/s"] == "—").all() and (table["Code usage"] == "—").all()


def test_write_table2_files(tmp_path) -> None:
    out = tmp_path / "reports"
    paths = write_table2(_rows(), out, note="Trained on the smoke corpus.")
    assert set(paths) == {"md", "csv", "tex"}
    assert sorted(p.name for p in out.iterdir()) == ["table2.csv", "table2.md", "table2.tex"]  # no temp files

    md = paths["md"].read_text()
    measured_at, published_at = md.index("## Measured in this repository"), md.index(f"## {PUBLISHED_TITLE}")
    assert measured_at < published_at < md.index("Trained on the smoke corpus.")
    assert "different data and scale, not comparable number-for-number" in md
    assert "*Token H bits/s*: unigram entropy rate" in md[:published_at]
    assert "| Duo-Tok | 25 | 2x1024 | 0.50 | 0.41 ± 0.02 |" in md[:published_at]
    assert "| MuCodec-LeVo |" in md[published_at:] and "| MuCodec-LeVo |" not in md[:published_at]


def test_csv_round_trip(tmp_path) -> None:
    paths = write_table2(_rows(), tmp_path)
    csv = pd.read_csv(paths["csv"])
    measured, published = csv[csv["source"] == "measured"], csv[csv["source"] == "published"]
    assert measured["codec"].tolist() == ["Duo-Tok", "DAC_8%", "X&Codec", "Opus"]
    assert len(published) == 7 and "MuCodec-LeVo" in set(published["codec"])
    duo = measured.set_index("codec").loc["Duo-Tok"]
    assert duo["pesq_vocal"] == 1.05 and duo["mel_l1_accompaniment"] == 1.12 and duo["mel_l1_mixture"] == 0.95
    assert duo["ap_std"] == 0.02 and duo["bits_per_second"] == 310.0 and duo["codebooks"] == "2x1024"
    assert duo["entropy_rate_bps"] == 400.0 and duo["codebook_usage"] == 0.5
    assert math.isnan(measured.set_index("codec").loc["Opus", "ap"])
    expected = measured_frame(_rows())
    pd.testing.assert_frame_equal(measured.drop(columns="source").reset_index(drop=True)[expected.columns],
                                  expected, check_dtype=False)


def test_latex_escaping(tmp_path) -> None:
    assert latex_escape("a_b % c & d") == r"a\_b \% c \& d"
    assert latex_escape("0.41 ± 0.02") == r"0.41 $\pm$ 0.02"
    assert latex_escape("\\") == r"\textbackslash{}"
    tex = write_table2(_rows(), tmp_path)["tex"].read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"DAC\_8\%" in tex and r"X\&Codec" in tex and r"0.41 $\pm$ 0.02" in tex
    assert "±" not in tex and "—" not in tex and "MuCodec" not in tex  # measured only
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == 4 and all(line.count(" & ") == len(TABLE2_COLUMNS) for line in body)


# --- Pareto figure ----------------------------------------------------------------------------------

def test_pareto_mel_l1_is_the_mixture_for_every_kind_of_codec() -> None:
    dual = {"codec": "dual", "reconstruction": {"vocal": _recon(0.74), "accompaniment": _recon(1.12),
                                                "mixture": _recon(0.95)}}
    single = {"codec": "single", "reconstruction": {"mixture": _recon(0.95)}}
    assert pareto_mel_l1(dual) == pareto_mel_l1(single) == 0.95   # one quantity, not the per-track mean 0.93
    # Missing data is None, never a silently different quantity (the per-track mean).
    per_track_only = {"codec": "half", "reconstruction": {"vocal": _recon(0.74), "accompaniment": _recon(1.12)}}
    nan_mixture = {"codec": "nan", "reconstruction": {**dual["reconstruction"], "mixture": _recon(math.nan)}}
    assert pareto_mel_l1(per_track_only) is None and pareto_mel_l1(nan_mixture) is None
    assert pareto_mel_l1({"codec": "none"}) is None and pareto_mel_l1({"codec": "x", "reconstruction": None}) is None
    points = pareto_points([{**per_track_only, "ppl_1024": 5.0}, {**single, "ppl_1024": 5.0}])
    assert points["codec"].tolist() == ["single"]
    assert points.attrs["dropped"] == {"half": "no mixture Mel L1 (per-track Mel L1 only: a different quantity)"}


def test_pareto_points_mixture_and_dropped() -> None:
    points = pareto_points(_rows())
    assert points["codec"].tolist() == ["Duo-Tok", "DAC_8%", "X&Codec"]
    duo = points.set_index("codec").loc["Duo-Tok"]
    assert duo["mel_l1"] == 0.95  # the mixture's, not the per-track mean (0.74 + 1.12) / 2
    assert points.set_index("codec").loc["DAC_8%", "mel_l1"] == 0.73
    assert points.attrs["dropped"] == {"Opus": "no PPL@1024"}
    # Published: the baselines' mixture Mel L1 (toolkit README); the paper's Duo-Tok row is per track only,
    # so its Figure-1 point (4.75, 0.93 = mean of 0.74 and 1.12) is a different quantity and is not drawn.
    published = published_points()
    assert published.set_index("codec").loc["DAC", "mel_l1"] == 0.73
    assert "Duo-Tok" not in set(published["codec"])
    assert "per-track Mel L1 only" in published.attrs["dropped"]["Duo-Tok"]


def test_pareto_figure_files(tmp_path) -> None:
    fig = plot_pareto(pareto_points(_rows()), published=published_points())
    assert fig.axes[0].get_xscale() == "log"
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"Duo-Tok", "DAC_8%", "X&Codec", "MuCodec-LeVo", "better"} <= labels
    legend_texts = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert PUBLISHED_LABEL in legend_texts and "6 kbps" in legend_texts
    assert fig.axes[0].get_ylabel() == Y_LABEL and "mixture Mel L1" in Y_LABEL
    paths = save_pareto(fig, tmp_path / "fig1")
    assert sorted(p.name for p in paths) == ["fig1.png", "fig1.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig1.png", "fig1.svg"]


# --- claims -----------------------------------------------------------------------------------------

def _verdicts(rows: list[dict]) -> dict[str, dict]:
    return {v["claim"].split(" (")[0]: v for v in claim_verdicts(rows)}


def test_claims_ahead_on_one_training_run_are_not_testable() -> None:
    verdicts = claim_verdicts(_rows())
    one = "not testable here (one training seed)"
    assert [v["verdict"] for v in verdicts] == [one, one, one, "not confirmed"]
    assert all(set(v) == {"claim", "verdict", "evidence"} for v in verdicts)
    assert "0.41" in verdicts[0]["evidence"] and "X&Codec 0.32" in verdicts[0]["evidence"]
    # Mixture Mel L1: Duo-Tok 0.95 vs best costlier Opus 0.5 (gap 0.45); within tolerance once Opus is gone.
    assert "Opus" in verdicts[3]["evidence"] and "0.950" in verdicts[3]["evidence"]
    assert claim_verdicts(_rows()[:3])[3]["verdict"] == "not confirmed"  # 0.95 vs DAC 0.73: gap 0.22 = 30 %
    assert claim_verdicts(_rows()[:3], mel_tolerance=0.25)[3]["verdict"] == "not confirmed"
    assert claim_verdicts(_rows()[:3], mel_tolerance=0.31)[3]["verdict"] == one


def test_the_mel_tolerance_is_relative_so_a_rescaled_mel_l1_keeps_its_verdict() -> None:
    """The toolkit's Mel L1 is ~1.4-4.4x the old Slaney one: the same codecs on either scale must get
    the same verdict, which an absolute margin cannot give."""
    rows = _rows()[:3]
    for scale in (1.0, 4.0):
        scaled = [{**r, "reconstruction": {track: {**m, "mel_l1": m["mel_l1"] * scale}
                                           for track, m in r["reconstruction"].items()}}
                  if r.get("reconstruction") else r for r in rows]
        assert claim_verdicts(scaled, mel_tolerance=0.31)[3]["verdict"] == "not testable here (one training seed)"
        assert claim_verdicts(scaled, mel_tolerance=0.29)[3]["verdict"] == "not confirmed"


def test_claims_not_confirmed_and_not_testable() -> None:
    rows = _rows()
    rows[0] = {**rows[0], "ap": 0.10, "ppl_1024": 500.0}
    verdicts = claim_verdicts(rows)
    assert verdicts[0]["verdict"] == verdicts[1]["verdict"] == "not confirmed"

    rows[0] = {**rows[0], "ap": None, "bits_per_second": None}
    verdicts = claim_verdicts(rows)
    assert verdicts[0]["verdict"] == "not testable here" and "Duo-Tok has no AP" in verdicts[0]["evidence"]
    assert verdicts[2]["verdict"] == "not testable here"

    only_subject = [_rows()[0], {"codec": "Opus", "kbps": 6.0}]
    assert {v["verdict"] for v in claim_verdicts(only_subject)} == {"not testable here"}
    absent = claim_verdicts(_rows(), subject="absent")
    assert {v["verdict"] for v in absent} == {"not testable here"}
    assert "no row named 'absent'" in absent[0]["evidence"]


def test_claims_tie_counts_as_best() -> None:
    rows = _rows()
    rows[2] = {**rows[2], "ap": 0.41}
    verdict = claim_verdicts(rows)[0]
    assert verdict["verdict"] == "not testable here (one training seed)" and "tied with" in verdict["evidence"]


def test_head_to_head() -> None:
    rows = _rows()
    rows[2] = {**rows[2], "ap": 0.41}
    table = head_to_head(rows, "Duo-Tok")
    assert list(table.index) == ["DAC_8%", "X&Codec", "Opus"]
    assert list(table.columns) == ["ap", "ppl_1024", "bits_per_second", "mel_l1"]
    assert table.loc["DAC_8%"].tolist() == ["beat", "beat", "beat", "lost"]
    assert table.loc["X&Codec"].tolist() == ["tie", "beat", "n/a", "lost"]
    assert table.loc["Opus"].tolist() == ["n/a", "n/a", "n/a", "lost"]
    single = head_to_head(rows, "Duo-Tok", "ppl_1024")
    assert list(single.columns) == ["ppl_1024"] and (single["ppl_1024"].iloc[:2] == "beat").all()
    with pytest.raises(ValueError, match="unknown metric"):
        head_to_head(rows, "Duo-Tok", "pesq")


def test_differences_within_the_seed_spread_tie() -> None:
    rows = _rows()
    rows[0] = {**rows[0], "ap": 0.505, "ap_std": 0.002}
    rows[2] = {**rows[2], "ap": 0.500, "ap_std": 0.002}      # 0.005 apart, combined spread 0.004
    assert head_to_head(rows, "Duo-Tok", "ap").loc["X&Codec", "ap"] == "beat"
    rows[2] = {**rows[2], "ap": 0.500, "ap_std": 0.02}       # the rival's seeds disagree by more
    assert head_to_head(rows, "Duo-Tok", "ap").loc["X&Codec", "ap"] == "tie"
    rows[1] = {**rows[1], "ap": 0.5065}                       # best other, without a spread: 0.0015 better
    rows[1].pop("ap_std", None)
    verdict = claim_verdicts(rows)[0]
    assert verdict["verdict"] == "not testable here (one training seed)"
    assert "within the probe-seed spread (probe seeds on one trained codec) 0.002" in verdict["evidence"]
    rows[1] = {**rows[1], "ap": 0.52}
    assert claim_verdicts(rows)[0]["verdict"] == "not confirmed"
