import pytest
import torch

from duotok.codecs.base import Codec, stream_ids
from duotok.codecs.feature_tokenizer import FeatureTokenizer, FeatureTokenizerConfig
from duotok.models.bestrq import MelConfig
from duotok.models.encoder import DuoEncoder, EncoderConfig
from duotok.train.baselines import fit_kmeans, fit_simvq

ENC = EncoderConfig(n_mels=32, dim=16, n_lower=1, n_upper=1, n_heads=2)
MEL = MelConfig(n_mels=32)


def _tokenizer(**kw) -> FeatureTokenizer:
    torch.manual_seed(0)
    cfg = FeatureTokenizerConfig(mel=MEL, encoder=ENC, codebook_size=8, chunk_seconds=1.0, **kw)
    return FeatureTokenizer.from_encoder(cfg, DuoEncoder(ENC), torch.nn.Linear(16, 6))


def _audio(seconds: float = 2.3, seed: int = 0) -> torch.Tensor:
    return torch.randn(int(16000 * seconds), generator=torch.Generator().manual_seed(seed)) * 0.1


def test_config_validation():
    with pytest.raises(ValueError, match="one layer per stream"):
        FeatureTokenizerConfig(streams=("mixture",), layers=("lower", "upper"))
    with pytest.raises(ValueError, match="bottleneck_dim"):
        FeatureTokenizerConfig(streams=("mixture",), layers=("bottleneck",), bottleneck_dim=None)
    with pytest.raises(ValueError, match="unknown streams"):
        FeatureTokenizerConfig(streams=("drums",), layers=("lower",))


def test_kmeans_tokens_are_nearest_centroids():
    tok = _tokenizer(streams=("mixture",), layers=("lower",), quantizer="kmeans")
    assert isinstance(tok, Codec)
    feats = tok.stream_features(_audio(), 0, normalize=False)
    assert feats.shape == (tok.n_tokens(_audio().numel()), 16)            # ceil(36800 / 640) = 58
    tok.set_feature_stats(0, feats.mean(0), feats.std(0))
    fit_kmeans(tok.quantizers[0], tok.normalized(0, feats), iters=5, batch_frames=32, seed=0)
    ids = tok.encode(_audio())
    assert ids.shape == (1, 58)
    z = tok.stream_features(_audio(), 0)
    dist = torch.cdist(z, tok.quantizers[0].codebook())
    assert torch.equal(ids[0], dist.argmin(dim=1))
    torch.testing.assert_close(tok.embed(ids), tok.quantizers[0].codebook()[ids[0]])


def test_long_audio_is_tokenized_in_independent_chunks():
    """Like DuoTok: 1-s chunks here, each its own pass; the first chunk does not see the rest."""
    tok = _tokenizer(streams=("mixture",), layers=("upper",), quantizer="kmeans")
    audio = _audio(2.3)
    h, _ = tok.features(audio[None, :16000], torch.tensor([16000]), "upper")
    full = tok.stream_features(audio, 0, normalize=False)
    torch.testing.assert_close(full[:25], h[0, :25])
    changed = audio.clone()
    changed[16000:] = 0.0
    torch.testing.assert_close(tok.stream_features(changed, 0, normalize=False)[:25], full[:25])


def test_simvq_fit_lowers_the_loss_and_stem_streams_need_a_separator():
    tok = _tokenizer(streams=("vocal", "accompaniment"), layers=("upper", "bottleneck"), bottleneck_dim=6)
    feats = torch.randn(512, 16)
    log = fit_simvq(tok.quantizers[0], feats, steps=60, batch_frames=128, lr=1e-2, seed=0)
    assert log[-1]["loss"] < log[0]["loss"]
    with pytest.raises(RuntimeError, match="separator"):
        tok.encode(_audio())
    v, a = _audio(seed=1), _audio(seed=2)
    ids = tok.encode_stems(v, a)
    assert ids.shape == (2, 58)
    tok.with_separator(lambda mixture: (v, a))
    assert torch.equal(tok.encode(v + a), ids)
    assert tok.embed(ids).shape == (58, 16 + 6)
    assert torch.equal(stream_ids(tok, ids, "accompaniment"), ids[1:])
    with pytest.raises(RuntimeError, match="no decoder"):
        tok.decode(ids)


def test_bad_audio_and_save_load(tmp_path):
    tok = _tokenizer(streams=("mixture",), layers=("bottleneck",), bottleneck_dim=6)
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(torch.full((1600,), float("nan")))
    with pytest.raises(ValueError, match="mono"):
        tok.encode(torch.zeros(2, 1600))
    tok.save_pretrained(tmp_path / "t")
    loaded = FeatureTokenizer.from_pretrained(tmp_path / "t").eval()
    assert loaded.fingerprint() == tok.fingerprint()
    assert torch.equal(loaded.encode(_audio()), tok.encode(_audio()))


def _tiny_decoder(cond_dim: int):
    from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder
    from duotok.models.dit import DiTConfig, LatentDiT
    from duotok.tokenizer.decoder import TokenDecoder

    torch.manual_seed(1)
    ae = WaveAutoencoder(AutoencoderConfig(dim=16, n_blocks=1, latent_dim=4, n_fft=512))
    dit = LatentDiT(DiTConfig(latent_dim=4, cond_dim=cond_dim, dim=16, n_layers=1, n_heads=2, cond_upsample=2))
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return TokenDecoder.from_parts(ae, dit, steps=2)


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.3])
def test_decode_lengths_seeding_and_mixture(seconds):
    tok = _tokenizer(streams=("vocal", "accompaniment"), layers=("upper", "lower"))
    tok.with_decoder(_tiny_decoder(16))
    v, a = _audio(seconds, 1), _audio(seconds, 2)
    ids = tok.encode_stems(v, a)
    out = tok.decode(ids, num_samples=v.numel())
    assert set(out) == {"vocal", "accompaniment", "mixture"}
    assert all(x.shape == (v.numel(),) for x in out.values())
    torch.testing.assert_close(out["mixture"], out["vocal"] + out["accompaniment"])
    torch.testing.assert_close(tok.decode(ids, num_samples=v.numel())["vocal"], out["vocal"])
    assert not torch.equal(tok.decode(ids, num_samples=v.numel(), seed=5)["vocal"], out["vocal"])
