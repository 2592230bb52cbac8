"""duotok — a runnable reproduction of Duo-Tok, a dual-track semantic music tokenizer.

Package map (one guess should find anything):

- ``duotok.audio``   — audio I/O with validation, log-mel / STFT front end, chroma and mask targets
- ``duotok.data``    — corpus loaders (duosynth, MUSDB18-HQ layout, mixture-only folders) and the
                        ``duosynth`` corpus generator (``duotok.data.synth``)
- ``duotok.config``  — ``params.yaml`` profiles (smoke / default / paper)
- ``duotok.reporting`` — figure helpers used by the notebooks
- ``duotok.cli``     — the ``duotok`` command
"""

__version__ = "0.1.0"
