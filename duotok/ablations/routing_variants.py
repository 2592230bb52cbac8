"""The two routing *ablations* of stage 3 (the router itself — hard routing of each frame to its track's
codebook — is :mod:`duotok.quantization.dual`), built from the unchanged stage-3 pieces.

* ``shared`` — :func:`tie_codebooks`: both routes use one codebook branch (projections and SimVQ),
  so the tracks compete for the same entries at the same bits per frame. This tests the paper's
  claim that separate codebooks matter, at equal bitrate.
* ``separated`` — :func:`separated_stems_loss`: stage 3 learns from the frozen stage-2 separator's
  estimates instead of the true stems, i.e. from what the tokenizer sees at inference on a mixture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from duotok.models.dualtrack import DualTrackModel
from duotok.models.heads import separate
from duotok.models.multitask import MultiTaskModel
from duotok.quantization.dual import TRACKS, DualCodebookQuantizer
from duotok.train import quantize

_SHARED, _TIED = "branches.0.", "branches.1."

# --------------------------------------------------------------------------- shared codebook


def is_tied(quantizer: DualCodebookQuantizer) -> bool:
    """Whether both routes go through the very same branch module."""
    return quantizer.branches[0] is quantizer.branches[1]


def _untie_saved_state(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                       local_metadata: Any) -> None:
    """state_dict post-hook: store the tied branch under both names as separate tensors.

    Why: ``save_pretrained`` keeps one name per group of shared tensors (as safetensors' ``save_model`` did),
    and ``from_pretrained`` of a plain :class:`DualTrackModel` (what the tokenizer
    and the resumed Trainer build) then reports ``branches.1.*`` missing. Cloning the second copy
    makes the checkpoint an ordinary dual-codebook one whose two branches are equal."""
    if not isinstance(module, DualCodebookQuantizer) or not is_tied(module):
        return
    for key in [k for k in state_dict if k.startswith(prefix + _TIED)]:
        value = state_dict[key]
        if not isinstance(value, nn.Parameter):  # keep_vars=True callers want the live parameters
            state_dict[key] = value.detach().clone()


def _check_loaded_state(module: nn.Module, state_dict: Mapping[str, Any], prefix: str, local_metadata: Any,
                        strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                        error_msgs: list[str]) -> None:
    """load_state_dict pre-hook: refuse weights whose two branches differ (e.g. resuming a dual-codebook
    run into a shared one), which would otherwise load silently as branch 1's weights."""
    if not isinstance(module, DualCodebookQuantizer) or not is_tied(module):
        return
    for key, value in state_dict.items():
        if not key.startswith(prefix + _SHARED):
            continue
        twin = prefix + _TIED + key[len(prefix + _SHARED):]
        if twin in state_dict and not torch.equal(torch.as_tensor(value).cpu(),
                                                  torch.as_tensor(state_dict[twin]).cpu()):
            error_msgs.append(f"shared codebook: {key} and {twin} differ in the weights being loaded; "
                              "they come from a model with two separate codebooks")
            return


def tie_codebooks(model: DualTrackModel) -> DualTrackModel:
    """Make both routes of ``model`` use branch 0 (vocal): one shared codebook, same bits per track.

    In place (returns ``model``). The model stays a plain :class:`DualTrackModel` with an unchanged
    config, so its checkpoints load anywhere one loads (``DuoTok.from_stages`` included) as two equal
    branches, giving the same codes for the same input on either route. Training keeps the tie by
    construction: both names refer to one module, so there is one set of parameters to update."""
    quantizer = model.quantizer
    sizes = quantizer.codebook_sizes
    if len(set(sizes)) != 1:
        got = dict(zip(TRACKS, sizes, strict=True))
        raise ValueError(f"a shared codebook needs equal codebook sizes per track, got {got}; "
                         "set quantize.model.codebook_sizes to two equal values")
    if not is_tied(quantizer):
        quantizer.branches[1] = quantizer.branches[0]
        quantizer.register_state_dict_post_hook(_untie_saved_state)
        quantizer.register_load_state_dict_pre_hook(_check_loaded_state)
    return model


# --------------------------------------------------------------------------- separated stems


class SeparatedStemsLoss:
    """``quantize.quantize_loss`` with the vocal stem and the accompaniment replaced by the frozen
    separator's estimates from ``batch["mixture"]``; targets (chroma, lyrics) stay the score's.

    The separator runs without gradients, in eval mode (no bottleneck noise) and in float32 (autocast
    off), so its stems are those ``DuoTok.separate`` gives at inference, for the same crop. It is moved
    to the batch's device lazily, because the Trainer places only the stage-3 model."""

    def __init__(self, separator: MultiTaskModel):
        if "mask" not in separator.heads:
            raise ValueError("the stage-2 model has no mask head, so it cannot separate the mixtures; "
                             "use a stage 2 trained with finetune.model.heads.mask: true")
        self.separator = separator.eval().requires_grad_(False)

    @torch.no_grad()
    def separate(self, mixture: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """Mixtures ``(B, samples)`` with valid lengths ``(B,)`` → estimated stems ``(B, S, samples)``
        (vocals first), zero past each item's length like the oracle crops."""
        if self.separator.training:
            self.separator.eval()
        self.separator.to(mixture.device)
        m = self.separator.config.mel
        with torch.autocast(device_type=mixture.device.type, enabled=False):
            audio = mixture.float()
            masks = self.separator.infer(audio, length)["outputs"]["mask"]
            stems = separate(masks.float(), audio, m.n_fft, m.hop_length, m.win_length,
                             length=audio.shape[-1])
        valid = torch.arange(audio.shape[-1], device=audio.device)[None] < length.to(audio.device)[:, None]
        return (stems * valid[:, None]).to(mixture.dtype)

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch stage 3 trains on: ``stems`` and ``accompaniment`` replaced by the estimates."""
        stems = self.separate(batch["mixture"], batch["length"])
        return {**batch, "stems": stems, "accompaniment": stems[:, 1:].sum(dim=1)}

    def __call__(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        return quantize.quantize_loss(model, self.inputs(batch))


def separated_stems_loss(separator: MultiTaskModel) -> SeparatedStemsLoss:
    """A loss with the signature of ``quantize.quantize_loss(model, batch)`` that feeds stage 3 the
    stage-2 separator's stems instead of the oracle ones (see :class:`SeparatedStemsLoss`)."""
    return SeparatedStemsLoss(separator)
