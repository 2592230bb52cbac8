"""The Duo-Tok tokenizer: a song in, two 25 Hz token streams out (vocal, accompaniment).

- :class:`DuoTok` bundles the stage-2 separator (mask head) and the stage-3 dual-codebook quantizer;
- :mod:`duotok.tokenizer.tokens` is the versioned token-file format, with codebook fingerprints.
"""

from duotok.tokenizer.model import DuoTok, DuoTokConfig
from duotok.tokenizer.tokens import TokenFile, load_tokens, save_tokens

__all__ = ["DuoTok", "DuoTokConfig", "TokenFile", "load_tokens", "save_tokens"]
