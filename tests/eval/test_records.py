"""The metrics-file schema: one header for every training stage, the reconstruction systems by key."""

from __future__ import annotations

import json

import pytest

from duotok.eval.records import (
    RECONSTRUCTION_SYSTEMS,
    TRAINING_HEADER,
    training_record,
    write_record,
)
from duotok.train.loop import TrainResult


def test_training_record_has_the_header_then_the_stage_fields(tmp_path):
    result = TrainResult(step=7, train={"loss": 1.0}, valid={"loss": 2.0}, seconds=3.5,
                         precision={"setting": "auto", "used": "fp32", "device": "cpu", "reason": "x"})
    record = training_record("smoke", result, masked_accuracy=0.5)
    assert list(record)[: len(TRAINING_HEADER)] == list(TRAINING_HEADER)
    assert record["steps"] == 7 and record["precision"]["used"] == "fp32" and record["masked_accuracy"] == 0.5
    assert record["final_train"] == {"loss": 1.0} and record["final_valid"] == {"loss": 2.0}
    path = write_record(tmp_path / "m.json", record)
    assert json.loads(path.read_text()) == record
    with pytest.raises(ValueError, match="common header"):
        training_record("smoke", result, steps=3)
    with pytest.raises(ValueError, match="profile"):
        write_record(tmp_path / "x.json", {"steps": 1})


def test_the_report_reads_the_names_the_evaluation_writes():
    from duotok.reporting import results

    assert results.RECONSTRUCTION_SYSTEMS is RECONSTRUCTION_SYSTEMS
    assert set(RECONSTRUCTION_SYSTEMS) == {"autoencoder", "oracle", "separated"}
