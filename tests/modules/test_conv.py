"""Shapes of the time resampling blocks for random lengths."""

from __future__ import annotations

import pytest
import torch

from duotok.modules.conv import ConvDownsample, ConvUpsample


@pytest.mark.parametrize("length", [1, 7, 100, 257])
def test_downsample_length(length):
    down = ConvDownsample(16, 32, factor=4)
    y = down(torch.randn(2, length, 16))
    assert y.shape == (2, down.output_length(length), 32)
    assert y.shape[1] == -(-length // 4)


def test_upsample_inverts_the_rate():
    up = ConvUpsample(32, 12, factor=4)
    assert up(torch.randn(3, 25, 32)).shape == (3, 100, 12)


def test_factor_must_be_power_of_two():
    with pytest.raises(ValueError):
        ConvDownsample(4, 4, factor=3)
