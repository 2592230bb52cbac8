"""How the evaluated generative separator is run: in chunks of the crop length it was trained on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from duotok.config import Params
from duotok.separation.cli import load_token_lm
from duotok.separation.systems import generation_chunk_seconds

sys.path.insert(0, str(Path(__file__).parent))
from gen_helpers import tiny_codec, tiny_config, tiny_model  # noqa: E402


def test_a_sequence_is_as_long_as_the_training_crop_and_never_past_max_frames():
    config = tiny_config(max_frames=500)                      # 10 s at 16 kHz / hop 320
    assert generation_chunk_seconds(config, 2.0) == 2.0
    assert generation_chunk_seconds(tiny_config(max_frames=40), 2.0) == pytest.approx(0.8)   # capped
    with pytest.raises(ValueError, match="trained_seconds"):
        generation_chunk_seconds(config, 0.0)


def test_the_token_lm_command_chunks_at_the_profile_s_training_crop(tmp_path):
    params = Params.load("smoke")
    crop = float(params.section("separation")["generative"]["segment_seconds"])
    model_dir = tiny_model(max_frames=10 * int(crop * 50)).save_pretrained(tmp_path / "model")
    codec_dir = tiny_codec().save_pretrained(tmp_path / "codec")
    separator = load_token_lm(str(model_dir), str(codec_dir), params)
    assert separator.chunk_seconds == pytest.approx(crop)
