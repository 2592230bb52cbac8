import numpy as np
import pytest
import torch

from duotok.codecs.base import bitrate, check_ids, codebook_label, is_dual_track, stream_ids
from duotok.codecs.opus import OpusCodec, ffmpeg_has_libopus
from duotok.eval.reconstruction import reconstruction_metrics


class _Fake:
    name = "fake"
    sample_rate = 16000
    frame_rate = 25.0
    codebook_sizes = (1024, 1024, 4096)
    streams = {"vocal": (0,), "accompaniment": (1, 2)}


def test_bitrate_and_labels():
    codec = _Fake()
    assert bitrate(codec) == 25.0 * (10 + 10 + 12)
    assert codebook_label(codec) == "2x1024+1x4096"
    assert is_dual_track(codec)
    ids = torch.arange(12).view(3, 4)
    assert torch.equal(stream_ids(codec, ids, "accompaniment"), ids[1:])
    with pytest.raises(KeyError, match="mixture"):
        stream_ids(codec, ids, "mixture")


def test_check_ids_names_the_problem():
    codec = _Fake()
    with pytest.raises(ValueError, match=r"\(3, T\)"):
        check_ids(codec, torch.zeros(2, 5, dtype=torch.long))
    bad = torch.zeros(3, 5, dtype=torch.long)
    bad[0, 0] = 1024
    with pytest.raises(ValueError, match="outside"):
        check_ids(codec, bad)


@pytest.mark.skipif(not ffmpeg_has_libopus(), reason="ffmpeg with libopus is not installed (make setup installs it)")
def test_opus_round_trip_keeps_length_and_alignment():
    t = np.arange(16000 * 2) / 16000
    # A tone over a -40 dB noise floor: on a bare sine nearly every mel bin of the reference sits at the
    # toolkit Mel L1's 1e-5 clamp, so any codec noise at all scores about as badly as silence.
    noise = 0.003 * np.random.default_rng(0).standard_normal(t.size)
    x = (0.3 * np.sin(2 * np.pi * 330 * t) + noise).astype(np.float32)
    codec = OpusCodec(12.0)
    y = codec.reconstruct(torch.from_numpy(x))["mixture"].numpy()
    assert y.shape == x.shape
    assert np.corrcoef(x[8000:24000], y[8000:24000])[0, 1] > 0.9          # aligned: pre-skip removed
    low = OpusCodec(6.0).reconstruct(torch.from_numpy(x))["mixture"].numpy()
    mel_12, mel_6 = (reconstruction_metrics(x, z, 16000, ["mel_l1"])["mel_l1"] for z in (y, low))
    assert mel_12 < 1.5 and mel_12 < mel_6                                    # measured: 0.75 and 2.03
    assert low.shape == x.shape
    with pytest.raises(ValueError, match="NaN"):
        codec.reconstruct(torch.full((1600,), float("nan")))
