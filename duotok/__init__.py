"""duotok — a runnable reproduction of Duo-Tok, a dual-track semantic music tokenizer.

Package map (one guess should find anything):

- ``duotok.audio``   — audio I/O with validation, log-mel / STFT front end, chroma and mask targets
- ``duotok.data``    — corpus loaders (duosynth, MUSDB18-HQ layout, mixture-only folders) and the
                        ``duosynth`` corpus generator (``duotok.data.synth``)
- ``duotok.config``  — ``params.yaml`` profiles (smoke / default / paper)
- ``duotok.reporting`` — figure helpers used by the notebooks
- ``duotok.models``, ``duotok.quantization``, ``duotok.modules`` — the networks of stages 1-3
- ``duotok.train``   — the shared training loop and the stage runners
- ``duotok.eval``    — held-out metrics of each stage
- ``duotok.tokenizer`` — :class:`DuoTok` (song → two token streams) and the ``.tok`` format
- ``duotok.cli``     — the ``duotok`` command
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["DuoTok", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import duotok` (e.g. by the CLI) should not pay for importing torch.
    if name == "DuoTok":
        from duotok.tokenizer import DuoTok

        return DuoTok
    raise AttributeError(f"module 'duotok' has no attribute {name!r}")
