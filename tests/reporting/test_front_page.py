"""The results front page (reports/README.md, stage `results`): every claim the stages decided, stated with
its verdict and evidence, nothing recomputed, and the stage wired to exactly the records it reads."""

import json

import pytest
import yaml

from duotok.paths import project_root
from duotok.reporting.front_page import PAGES, RECORDS, load_records, render_front_page, tally


def _records() -> dict:
    return {
        "table2": {
            "profile": "smoke", "subject": "Duo-Tok", "training_seeds": {"Duo-Tok": [0, 1], "RVQ codec": [0, 1]},
            "rules": ["Verdicts: **confirmed** — …", "", "Codec-training seeds per codec: Duo-Tok 2, RVQ codec 2"],
            "claims": [
                {"claim": "best tagging AP among token codecs", "verdict": "not confirmed",
                 "evidence": "Duo-Tok AP 0.68 worse than RVQ codec 0.71; interval [-0.05, 0.0004]"},
                {"claim": "lowest LM bits per second", "verdict": "confounded",
                 "evidence": "a | pipe inside the evidence"},
            ],
        },
        "ablations": {
            "profile": "smoke", "train_seeds": [0, 1], "n_train_seeds": {"reference": 2, "noise_off": 1},
            "rules": "Three rules, in order.",
            "claims": [
                {"id": "a", "claim": "noise lowers PPL@1024", "verdict": "not confirmed (within seed spread)",
                 "evidence": "2 / 2 training seeds, 95 % paired bootstrap over 16 test songs: [0.001, 0.045]"},
                {"id": "e", "claim": "heads are guardrails", "verdict": "not confirmed",
                 "evidence": "AP 0.686 vs 0.650"},
            ],
        },
        "separation": {
            "profile": "smoke",
            "findings": [{"finding": "drums are the weakest stem", "verdict": "did not hold",
                          "evidence": "vocals 3.6, drums 3.8"}],
        },
    }


def test_every_claim_is_stated_with_its_verdict_and_evidence():
    records = _records()
    text = render_front_page(records, profile="smoke")
    assert text.startswith("# Results\n") and "**smoke** profile" in text
    for claim in records["table2"]["claims"]:
        assert f"| {claim['claim']} | **{claim['verdict']}** |" in text
    assert "a \\| pipe inside the evidence" in text  # a pipe in the evidence does not split the row
    for claim in records["ablations"]["claims"]:
        assert f"| {claim['id']} | {claim['claim']} | **{claim['verdict']}** | {claim['evidence']} |" in text
    assert "| drums are the weakest stem | **did not hold** | vocals 3.6, drums 3.8 |" in text
    # the rules and the trainings behind the verdicts come with them
    assert "Codec-training seeds per codec: Duo-Tok 2, RVQ codec 2" in text and "Three rules, in order." in text
    assert "Trainings per variant: reference 2, noise_off 1." in text
    # the sections in the papers' order, then the pages with the numbers
    order = [text.index(h) for h in ("## Duo-Tok: Table 2 claims", "## Duo-Tok: ablation claims",
                                     "## Source separation (the second paper): findings", "## Pages")]
    assert order == sorted(order)
    for _, path, _ in PAGES:
        assert f"]({path})" in text


def test_the_tally_counts_each_sections_verdicts():
    records = _records()
    assert tally(records) == {"Duo-Tok: Table 2": {"not confirmed": 1, "confounded": 1},
                              "Duo-Tok: ablations": {"not confirmed (within seed spread)": 1, "not confirmed": 1},
                              "Separation: findings": {"did not hold": 1}}
    text = render_front_page(records, profile="smoke")
    assert "| Duo-Tok: Table 2 | 1 not confirmed, 1 confounded |" in text


def test_a_run_without_separation_findings_says_so():
    records = _records()
    records["separation"] = {"profile": "smoke"}
    text = render_front_page(records, profile="smoke")
    assert "No findings recorded by this run's separation stage." in text
    assert "| Separation: findings | none checked |" in text


def test_a_missing_record_names_the_stage_that_writes_it(tmp_path):
    for key, (name, _) in RECORDS.items():
        (tmp_path / name).write_text(json.dumps(_records()[key]))
    assert load_records(tmp_path)["ablations"]["n_train_seeds"]["reference"] == 2
    (tmp_path / "ablation_claims.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"ablation_claims\.json.*dvc repro ablations"):
        load_records(tmp_path)


def test_the_results_stage_reads_exactly_the_records_and_writes_the_front_page():
    """dvc.yaml: the results stage depends on the three records (so a changed verdict re-renders the page),
    each record is an output of the stage that RECORDS names, and only results writes reports/README.md."""
    stages = yaml.safe_load((project_root() / "dvc.yaml").read_text())["stages"]

    def outs(stage: str) -> list[str]:
        return [next(iter(o)) if isinstance(o, dict) else o for o in stages[stage].get("outs", [])]

    results = stages["results"]
    records = [f"reports/metrics/{name}" for name, _ in RECORDS.values()]
    assert [d for d in results["deps"] if d.startswith("reports/")] == records
    for name, stage in RECORDS.values():
        path = f"reports/metrics/{name}"
        writes = outs(stage) + [next(iter(m)) for m in stages[stage].get("metrics", [])]
        assert path in writes, (stage, path)
    writers = [name for name, body in stages.items() if "reports/README.md" in outs(name)]
    assert writers == ["results"]
    assert "--stage results" in results["cmd"] and "reports/metrics/timing/results.json" in outs("results")
