import math

import pytest
import torch

from duotok.eval.codes import token_agreement, usage_report
from duotok.eval.ssl import code_distribution, feature_pca
from duotok.quantization.simvq import CodeUsage


def test_code_distribution_of_uniform_and_collapsed_codes():
    uniform = code_distribution(torch.arange(64).repeat(10), 64)
    assert uniform["entropy_bits"] == pytest.approx(6.0)
    assert uniform["normalized_entropy"] == pytest.approx(1.0) and uniform["used_fraction"] == 1.0
    collapsed = code_distribution(torch.zeros(100, dtype=torch.long), 64)
    assert collapsed["entropy_bits"] == 0.0 and collapsed["used_fraction"] == 1 / 64
    with pytest.raises(ValueError):
        code_distribution(torch.zeros(0, dtype=torch.long), 64)


def test_usage_report_counts_dead_codes_and_perplexity():
    usage = CodeUsage(8)
    usage.update(torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3]]))
    report = usage_report(usage, frame_rate=25.0)
    assert report["usage"] == 0.5 and report["dead"] == 4 and report["frames"] == 8
    assert report["perplexity"] == pytest.approx(4.0)
    assert report["entropy_bits_per_second"] == pytest.approx(2.0 * 25)
    assert report["max_entropy_bits"] == math.log2(8)


def test_token_agreement():
    assert token_agreement(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])) == 0.75
    with pytest.raises(ValueError, match="shape"):
        token_agreement(torch.tensor([1]), torch.tensor([1, 2]))


def test_feature_pca_finds_the_dominant_direction_and_is_sign_stable():
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 200)
    direction = torch.randn(16, generator=g)
    features = t[:, None] * direction * 10 + 0.01 * torch.randn(200, 16, generator=g)
    projected, explained = feature_pca(features, n_components=2)
    assert projected.shape == (200, 2)
    assert explained[0] > 0.99
    again, _ = feature_pca(features.clone(), n_components=2)
    assert (again == projected).all()
    assert abs(torch.corrcoef(torch.stack([torch.from_numpy(projected[:, 0]).float(), t]))[0, 1]) > 0.99
