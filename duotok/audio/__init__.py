"""Audio I/O with validation, the log-mel / STFT front end, and chroma and mask targets."""

from duotok.audio.chroma import chroma_from_audio, chroma_from_notes
from duotok.audio.features import LogMel, istft, magnitude, mel_filterbank, stft
from duotok.audio.io import audio_info, load_audio, resample, save_audio
from duotok.audio.masks import apply_masks, ratio_masks

__all__ = [
    "LogMel",
    "apply_masks",
    "audio_info",
    "chroma_from_audio",
    "chroma_from_notes",
    "istft",
    "load_audio",
    "magnitude",
    "mel_filterbank",
    "ratio_masks",
    "resample",
    "save_audio",
    "stft",
]
