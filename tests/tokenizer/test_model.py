import numpy as np
import pytest
import soundfile as sf
import torch

from duotok.errors import TokenFileError
from duotok.tokenizer import DuoTok, save_tokens
from duotok.tokenizer.tokens import TokenFile

from .conftest import tiny_config


def song(seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 16000)) / 16000
    return 0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(t.shape, generator=g)


@pytest.mark.parametrize("seconds", [0.3, 1.0, 2.5])
def test_encode_gives_one_token_per_40ms_in_each_codebook(tiny_duotok, seconds):
    vocal, accompaniment = tiny_duotok.encode(song(seconds))
    n = int(np.ceil(seconds * 25 - 1e-9))
    assert vocal.shape == accompaniment.shape == (n,)
    assert vocal.dtype == torch.long
    assert int(vocal.min()) >= 0 and int(vocal.max()) < tiny_duotok.codebook_sizes[0]
    assert int(accompaniment.min()) >= 0 and int(accompaniment.max()) < tiny_duotok.codebook_sizes[1]


def test_encode_is_deterministic_and_chunk_local(tiny_duotok):
    x = song(2.0)
    a = tiny_duotok.encode(x)
    b = tiny_duotok.encode(x)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    # chunks are independent: the first second's tokens do not depend on what follows
    first = tiny_duotok.encode(x[:16000])
    assert torch.equal(first[0], a[0][:25]) and torch.equal(first[1], a[1][:25])


def test_encode_is_separate_then_encode_stems(tiny_duotok):
    x = song(1.5, seed=3)
    vocals, accompaniment = tiny_duotok.separate(x)
    assert vocals.shape == accompaniment.shape == x.shape
    # the masks sum to one, so the two estimates add back up to the mixture
    torch.testing.assert_close(vocals + accompaniment, x, atol=1e-4, rtol=0)
    direct = tiny_duotok.encode(x)
    staged = tiny_duotok.encode_stems(vocals, accompaniment)
    assert all(torch.equal(p, q) for p, q in zip(direct, staged, strict=True))


def test_embed_equals_the_quantizer_output(tiny_duotok):
    """decode(indices) == the forward pass's quantized output, for each track's own codebook."""
    x = song(1.0, seed=5)
    model = tiny_duotok.quantizer
    audio = torch.stack([x, x * 0.5])
    route = torch.tensor([0, 1])
    with torch.no_grad():
        result, *_ = model.quantize(audio, route)
    for row, track in enumerate(("vocal", "accompaniment")):
        emb = tiny_duotok.embed(result.codes[row], track)
        torch.testing.assert_close(emb, result.quantized[row].float(), atol=1e-5, rtol=1e-5)
    assert tiny_duotok.embed(result.codes[:1], "vocal").shape == (1, result.codes.shape[1], model.config.encoder.dim)
    with pytest.raises(ValueError, match="outside"):
        tiny_duotok.embed(torch.tensor([tiny_duotok.codebook_sizes[0]]), "vocal")


def test_bad_audio_is_refused(tiny_duotok):
    with pytest.raises(ValueError, match="NaN"):
        tiny_duotok.encode(torch.full((1600,), float("nan")))
    with pytest.raises(ValueError, match="empty"):
        tiny_duotok.encode(torch.zeros(0))
    with pytest.raises(ValueError, match="mono"):
        tiny_duotok.encode(torch.zeros(2, 1600))
    with pytest.raises(ValueError, match="differ in length"):
        tiny_duotok.encode_stems(torch.zeros(1600), torch.zeros(1601))


def test_save_load_roundtrip_and_token_files(tiny_duotok, tmp_path):
    tiny_duotok.save_pretrained(tmp_path / "model")
    loaded = DuoTok.from_pretrained(tmp_path / "model")
    x = song(1.2, seed=7)
    assert all(torch.equal(p, q) for p, q in zip(tiny_duotok.encode(x), loaded.encode(x), strict=True))
    assert loaded.fingerprints() == tiny_duotok.fingerprints()

    wav = tmp_path / "in.wav"
    sf.write(wav, np.stack([x.numpy(), x.numpy()], axis=1), 16000)  # stereo: downmixed with a warning
    with pytest.warns(UserWarning):
        tokens = loaded.tokenize_file(wav)
    path = save_tokens(tmp_path / "in.tok", tokens)
    assert loaded.load_tokens(path).n_frames == 30

    other = DuoTok(tiny_config(seed=11)).eval()  # other random codebooks
    assert other.fingerprints() != loaded.fingerprints()
    with pytest.raises(TokenFileError, match="another model"):
        other.load_tokens(path)


def test_token_file_of_foreign_sizes_is_refused(tiny_duotok, tmp_path):
    tokens = TokenFile(vocal=np.zeros(3), accompaniment=np.zeros(3), sample_rate=16000, frame_rate=25.0,
                       codebook_sizes=(1024, 1024), fingerprints=tiny_duotok.fingerprints(), num_samples=1920)
    path = save_tokens(tmp_path / "x.tok", tokens)
    with pytest.raises(TokenFileError, match="sizes"):
        tiny_duotok.load_tokens(path)


@pytest.mark.parametrize("pcm", [(song(0.5).numpy() * 32767).astype(np.int16),
                                 (song(0.5) * 2**31 / 2).to(torch.int32)])
def test_integer_pcm_is_refused_with_the_fix(tiny_duotok, pcm):
    with pytest.raises(ValueError, match=r"integer samples .*32768.*tokenize_file.*load_audio"):
        tiny_duotok.encode(pcm)
    with pytest.raises(ValueError, match="integer samples"):
        tiny_duotok.encode_stems(pcm, pcm)
    # the documented fix works
    scaled = (song(0.5).numpy() * 32767).astype(np.int16).astype(np.float32) / 32768
    assert tiny_duotok.encode(scaled)[0].shape == (13,)


def test_encode_refuses_audio_at_another_rate(tiny_duotok):
    x = song(0.5)
    with pytest.raises(ValueError, match=r"44100 Hz.*16000 Hz.*on_rate_mismatch=\"resample\""):
        tiny_duotok.encode(x, sample_rate=44100)
    with pytest.raises(ValueError, match="44100 Hz.*16000 Hz"):
        tiny_duotok.encode_stems(x, x, sample_rate=44100)
    with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
        tiny_duotok.encode(x, sample_rate=16000.0)
    same = tiny_duotok.encode(x, sample_rate=16000)
    assert all(torch.equal(p, q) for p, q in zip(same, tiny_duotok.encode(x), strict=True))


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_samples_are_refused(tiny_duotok, bad):
    x = song(0.2)
    x[7] = bad
    with pytest.raises(ValueError, match=r"mixture: audio contains 1 NaN or inf sample\(s\).*sample 7"):
        tiny_duotok.encode(x)
    with pytest.raises(ValueError, match="accompaniment: audio contains"):
        tiny_duotok.encode_stems(song(0.2), x)


def test_embed_refuses_unknown_tracks_and_non_integer_ids(tiny_duotok):
    ids = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"track must be one of \('vocal', 'accompaniment'\).*'drums'"):
        tiny_duotok.embed(ids, "drums")
    for track in (2, -1, True, 0.5):
        with pytest.raises(ValueError, match="track must be one of"):
            tiny_duotok.embed(ids, track)
    for floats in (torch.tensor([0.0, 1.7]), np.array([0.0, 1.7]), [0.5, 1.0]):
        with pytest.raises(ValueError, match="vocal ids: token ids must be integers"):
            tiny_duotok.embed(floats, "vocal")
    with pytest.raises(ValueError, match="accompaniment ids: token ids must be integers"):
        tiny_duotok.embed(torch.tensor([True, False]), 1)
    with pytest.raises(ValueError, match=r"outside \[0, \d+\) \(found -1"):
        tiny_duotok.embed(torch.tensor([-1, 0]), "vocal")
    assert tiny_duotok.embed(np.array([0, 1], dtype=np.int32), 1).shape[0] == 2


def test_separate_equals_the_sum_of_the_three_accompaniment_stems(tiny_duotok):
    """One accompaniment mask through one iSTFT = drums + bass + other rendered one by one (linearity)."""
    from duotok.models.heads import separate

    x = song(2.5)
    vocals, accompaniment = tiny_duotok.separate(x)
    chunks, lengths = tiny_duotok._chunks(x)
    m = tiny_duotok.config.separator.mel
    with torch.no_grad():
        masks = tiny_duotok.separator.infer(chunks, lengths)["outputs"]["mask"]
        stems = separate(masks, chunks, m.n_fft, m.hop_length, m.win_length, length=chunks.shape[-1])
    n = x.numel()
    assert torch.allclose(vocals, stems[:, 0].reshape(-1)[:n], atol=1e-6)
    assert torch.allclose(accompaniment, stems[:, 1:].sum(dim=1).reshape(-1)[:n], atol=1e-6)


def test_tokenize_file_streams_blocks_and_equals_encoding_the_whole_file(tiny_duotok, tmp_path):
    """A 44.1 kHz stereo file longer than one block (chunk_batch x chunk = 2 s here): same tokens as
    encoding the whole loaded signal at once."""
    import warnings

    from duotok.audio.io import load_audio

    rng = np.random.default_rng(3)
    path = tmp_path / "long.wav"
    sf.write(path, (0.2 * rng.standard_normal((int(44100 * 5.3), 2))).astype(np.float32), 44100, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        streamed = tiny_duotok.tokenize_file(path)
        audio = load_audio(path, tiny_duotok.sample_rate, on_rate_mismatch="resample", on_multichannel="downmix")
    vocal, accompaniment = tiny_duotok.encode(audio)
    assert streamed.num_samples == audio.size and streamed.n_frames == tiny_duotok.n_tokens(audio.size)
    assert np.array_equal(streamed.vocal, vocal.numpy()) and np.array_equal(streamed.accompaniment,
                                                                            accompaniment.numpy())
