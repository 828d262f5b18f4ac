"""Warm start: a conditional UNet or a noisy classifier begins as an unconditional DDPM (every matching weight
copied; the new conditioning layers keep their zero initialisation, so the model starts as the unconditional one)."""
from __future__ import annotations

import torch
from diffusers import UNet2DModel
from torch import nn

from lab.errors import LabError
from lab.models.conditional_unet import CLASS_EMBED_KEYS, ConditionalUNet, unet_kwargs


def copy_matching(target: nn.Module, source: dict[str, torch.Tensor], prefix: str = "") -> tuple[int, list[str]]:
    """Copy every tensor of ``source`` whose name (with ``prefix``) and shape match into ``target``.
    Returns (tensors copied, names of ``target`` left as initialised)."""
    own = target.state_dict()
    copied = set()
    with torch.no_grad():
        for name, value in source.items():
            key = prefix + name
            if key in own and own[key].shape == value.shape:
                own[key].copy_(value)
                copied.add(key)
    return len(copied), [k for k in own if k not in copied]


def warm_start(model: nn.Module, base_unet: UNet2DModel) -> dict:
    """Initialise from an unconditional DDPM: every matching weight copied; new conditioning layers
    keep their zero (or identity) initialisation. Returns a summary for the model card."""
    prefix = "unet." if isinstance(model, ConditionalUNet) else ""
    base = unet_kwargs(base_unet)
    mine = dict(model.config.unet_config or {})
    for key in CLASS_EMBED_KEYS:
        mine.pop(key, None)
    keep = ("sample_size", "in_channels", "block_out_channels", "down_block_types", "layers_per_block")
    if any(_norm(base.get(k)) != _norm(mine.get(k)) for k in keep):
        raise LabError("The model to warm-start from has a different UNet layout "
                       f"({', '.join(f'{k}={base.get(k)}' for k in keep)}); train without --init-from, "
                       "or from a DDPM of the same size and channels.")
    copied, fresh = copy_matching(model, base_unet.state_dict(), prefix)
    return {"copied_tensors": copied, "new_tensors": len(fresh),
            "new_tensor_names": sorted({k.rsplit(".", 1)[0] for k in fresh})[:12]}


def _norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v
