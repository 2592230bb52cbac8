"""Models (audiocraft's ``models/``): the Duo-Tok encoder split at the bottleneck
(``duotok.models.encoder``), and the heads and noise modules of the later training stages."""
