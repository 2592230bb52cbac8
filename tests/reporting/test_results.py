import json

import pandas as pd
import pytest
import yaml

from duotok.codecs.base import fixed_bitrate, sizes_label
from duotok.paths import project_root
from duotok.reporting.claims import claim_verdicts
from duotok.reporting.lm import lm_codebook_table, lm_protocol_table
from duotok.reporting.markdown import markdown_table
from duotok.reporting.results import claims_record, collect_rows, dropped_tags_note, render_tokenizer_page

RECON = {"mel_l1": 1.5, "pesq": 1.1, "stoi": 0.3, "visqol": 3.0, "n": 2}


def _lm(codec, ppl, bps, sizes, rate):
    return {"codec": codec, "ppl_1024": ppl, "bits_per_second": bps, "codebook_sizes": sizes, "frame_rate": rate,
            "kbps": fixed_bitrate(rate, sizes) / 1000.0, "codebooks": sizes_label(sizes),
            "ce_per_codebook": [1.0] * len(sizes), "bits_per_second_per_codebook": [bps / len(sizes)] * len(sizes)}


@pytest.fixture
def metrics_dir(tmp_path):
    m = tmp_path / "metrics"
    (m / "baselines").mkdir(parents=True)
    dual = {t: dict(RECON) for t in ("vocal", "accompaniment", "mixture")}
    (m / "reconstruction.json").write_text(json.dumps({"measured": {"tokens (oracle stems)": dual,
                                                                    "tokens (separated)": dual}}))
    (m / "baselines" / "rvq.json").write_text(json.dumps({
        "kbps": 4.0, "token_rate": 50.0, "codebooks": "8x1024",
        "reconstruction": {"oracle": {"mixture": {**RECON, "mel_l1": 1.0}}}}))
    (m / "baselines" / "opus.json").write_text(json.dumps({
        "kbps": 6.0, "token_rate": None, "reconstruction": {"oracle": {"mixture": {**RECON, "mel_l1": 0.8}}}}))
    (m / "lm.json").write_text(json.dumps({"codecs": {"duotok": _lm("Duo-Tok", 3.0, 300.0, [1024, 1024], 25.0),
                                                      "rvq": _lm("RVQ codec", 50.0, 2000.0, [1024] * 8, 50.0)}}))
    probe = {"ap_mean": 0.5, "ap_std": 0.01, "auc_mean": 0.8, "auc_std": 0.02}
    (m / "probe.json").write_text(json.dumps({"codecs": {"duotok": probe, "rvq": {**probe, "ap_mean": 0.4}}}))
    return m


def test_rows_and_tokenizer_page(metrics_dir):
    rows = collect_rows(metrics_dir, ["duotok", "rvq", "opus"])
    duo, rvq, opus = rows
    assert duo["kbps"] == pytest.approx(0.5) and duo["ppl_1024"] == 3.0 and duo["ap"] == 0.5
    assert set(duo["reconstruction"]) == {"vocal", "accompaniment", "mixture"}
    assert "n" not in duo["reconstruction"]["vocal"]
    assert rvq["kbps"] == pytest.approx(4.0) and rvq["reconstruction"]["mixture"]["mel_l1"] == 1.0
    assert "ppl_1024" not in opus and "bits_per_second" not in opus
    assert "ap" not in opus and opus["kbps"] == 6.0
    protocols = pd.DataFrame([{"codec": "Duo-Tok", "bits/s saved": 12.5}])
    text = render_tokenizer_page(rows, protocols, claims_record(rows, profile="smoke", mel_tolerance=0.15),
                                 source="oracle")
    assert "| best tagging AP" in text.lower() or "AP" in text
    assert "confirmed" in text and "(3.00, 1.50)" in text and "12.5" in text
    # Figure 1's y axis is named for what it is (one quantity for all codecs), Mel L1's definition is the
    # published one, and ViSQOL's blind spot is stated.
    assert "y = mixture Mel L1" in text and "mean of vocal and accompaniment" not in text
    assert "calculate_mel_distance" in text and "4.29–4.53" in text
    # The page does not speak for the ablations (their own stage; the front page states their claims) and
    # points to the front page.
    assert "## Ablations" not in text and "ablation_claims" not in text and "(README.md)" in text
    stages = yaml.safe_load((project_root() / "dvc.yaml").read_text())["stages"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["report"]["outs"]]
    assert "reports/tokenizers.md" in outs and "reports/metrics/claims.json" in outs
    assert "reports/README.md" not in outs  # the results stage writes the front page


def test_claims_record_is_what_the_page_states(metrics_dir):
    """The record the front page reads carries the page's verdicts, their rules and the training seeds."""
    rows = collect_rows(metrics_dir, ["duotok", "rvq", "opus"])
    record = claims_record(rows, profile="smoke", mel_tolerance=0.15)
    assert record["claims"] == claim_verdicts(rows, subject="Duo-Tok", mel_tolerance=0.15)
    assert record["training_seeds"] == {"Duo-Tok": [0], "RVQ codec": [0]}  # opus has no LM: not a rival here
    assert any("trained **once**" in line for line in record["rules"])
    json.dumps(record)  # it is written as JSON
    page = render_tokenizer_page(rows, pd.DataFrame([{"codec": "Duo-Tok"}]), record, source="oracle")
    for claim in record["claims"]:
        assert f"| {claim['claim']} | **{claim['verdict']}** |" in page


def test_missing_metric_file_names_the_stage(metrics_dir):
    (metrics_dir / "probe.json").unlink()
    with pytest.raises(FileNotFoundError, match="probe.json"):
        collect_rows(metrics_dir, ["duotok"])


def test_lm_tables():
    results = {"a": _lm("A", 2.0, 100.0, [16, 16], 25.0)}
    table = lm_codebook_table(results)
    assert list(table["codebook"]) == [0, 1] and table["bits_per_second"].sum() == pytest.approx(100.0)
    proto = lm_protocol_table({"a": {"codec": "A", "accompaniment_only": {"bits_per_second": 60.0, "ppl_1024": 3.0},
                                     "given_vocals": {"bits_per_second": 45.0, "ppl_1024": 2.0},
                                     "bits_per_second_saved": 15.0, "relative_saving": 0.25}})
    assert proto.loc[0, "bits/s saved"] == 15.0
    assert markdown_table(proto).count("\n") == 2


def test_rows_and_readme_carry_information_seeds_and_dropped_tags(metrics_dir):
    """Issue 18: entropy rate, usage and per-song values reach the rows; the README states what each
    verdict requires, says the run has one training seed, and names the tags left out of the AP."""
    lm = json.loads((metrics_dir / "lm.json").read_text())
    songs = {"s0": {"log_ppl_1024": 1.0, "bits_per_second": 80.0}, "s1": {"log_ppl_1024": 1.2, "bits_per_second": 90.0}}
    lm["codecs"]["duotok"].update(entropy_rate_bps=197.0, codebook_usage=0.08, per_song_by_seed={"0": songs})
    lm["codecs"]["rvq"].update(entropy_rate_bps=3000.0, codebook_usage=0.9,
                               per_song_by_seed={"0": {k: {m: 3 * v for m, v in d.items()} for k, d in songs.items()}})
    (metrics_dir / "lm.json").write_text(json.dumps(lm))
    probe = json.loads((metrics_dir / "probe.json").read_text())
    for entry in probe["codecs"].values():
        entry.update(tags_kept=["a", "b"], tags_dropped={"rare": "2 positive test song(s) < 5"},
                     min_positive_test_songs=5, per_seed=[{}, {}, {}])
    (metrics_dir / "probe.json").write_text(json.dumps(probe))
    rows = collect_rows(metrics_dir, ["duotok", "rvq", "opus"])
    duo = rows[0]
    assert duo["entropy_rate_bps"] == 197.0 and duo["codebook_usage"] == 0.08 and duo["probe_seeds"] == 3
    assert duo["per_song_by_seed"]["0"]["s1"]["bits_per_second"] == 90.0
    assert dropped_tags_note(rows).startswith("AP/AUC average over the 2 tags with ≥ 5 positive test songs")
    text = render_tokenizer_page(rows, pd.DataFrame([{"codec": "Duo-Tok"}]),
                                 claims_record(rows, profile="smoke", mel_tolerance=0.15), source="oracle")
    assert "rare (2 positive test song(s) < 5)" in text
    assert "**confounded**" in text and "trained **once**" in text  # PPL/bits win by 197 vs 3000 bits/s
    assert "**not testable here (one training seed)**" in text  # the AP win (0.5 vs 0.4) on one run
    assert "| **confirmed** |" not in text
    assert "beat (confounded)" in text and "*Token H bits/s*" in text
