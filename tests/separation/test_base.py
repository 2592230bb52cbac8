"""The separator contract: four named stems, each as long as the mixture, finite."""

from __future__ import annotations

import pytest
import torch

from duotok.separation import STEMS, Separator, check_stems


class _Quarter:
    name = "quarter"
    sample_rate = 16000

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        return {s: mixture / 4 for s in STEMS}


def test_a_conforming_separator_passes_and_keeps_the_stem_order():
    sep = _Quarter()
    assert isinstance(sep, Separator)
    x = torch.randn(100)
    out = check_stems(dict(reversed(list(sep.separate(x).items()))), 100, sep.name)
    assert tuple(out) == STEMS and torch.allclose(sum(out.values()), x)


@pytest.mark.parametrize("bad, message", [
    ({s: torch.zeros(10) for s in STEMS[:3]}, "missing"),
    ({**{s: torch.zeros(10) for s in STEMS}, "piano": torch.zeros(10)}, "unknown"),
    ({**{s: torch.zeros(10) for s in STEMS}, "bass": torch.zeros(9)}, "shape"),
    ({**{s: torch.zeros(10) for s in STEMS}, "drums": torch.full((10,), float("nan"))}, "NaN"),
])
def test_a_broken_output_is_named(bad, message):
    with pytest.raises(ValueError, match=message):
        check_stems(bad, 10, "toy")
