"""File formats and safe writing (checkpoints and token files join this package in later stages)."""

from duotok.io.files import write_json_atomic

__all__ = ["write_json_atomic"]
