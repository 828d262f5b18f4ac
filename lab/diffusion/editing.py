"""Editing with a DiffusionCLIP pair of UNets (inference): DDIM-invert with the original model, generate with the
fine-tuned one, in batches, optionally under bf16 autocast. The fine-tuning itself is ``lab.train.diffusionclip``.
"""
from __future__ import annotations

import contextlib

import torch

from lab.diffusion.samplers import ddim_generate, ddim_invert
from lab.errors import LabError
from lab.progress import ProgressFn, part


def precision_context(device: torch.device, precision: str):
    """fp32 (nothing), or bf16 autocast (CPU and CUDA) for the batched editing path."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise LabError(f"Unknown precision {precision!r}: use fp32 or bf16.")
    return torch.autocast(device.type if device.type in ("cpu", "cuda") else "cpu", dtype=torch.bfloat16)


@torch.inference_mode()
def edit_batched(unet_orig, unet_tuned, scheduler, images: torch.Tensor, t0: int, n_inv_step: int,
                 n_test_step: int, batch_size: int = 64, latents: torch.Tensor | None = None,
                 progress: ProgressFn | None = None, precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """Invert with the original model (unless ``latents`` are given), generate with the fine-tuned one,
    ``batch_size`` images at a time. Returns (edited images in [-1, 1], latents), both on the CPU."""
    device = next(unet_tuned.parameters()).device
    batches = -(-len(images) // batch_size)
    out, lats = [], []
    with precision_context(device, precision):
        for b in range(batches):
            x = images[b * batch_size:(b + 1) * batch_size].to(device)
            z = latents[b * batch_size:(b + 1) * batch_size].to(device) if latents is not None else ddim_invert(
                unet_orig, x, scheduler, n_inv_step, t0=t0)
            out.append(ddim_generate(unet_tuned, z, scheduler, n_test_step, t0, batch_size,
                                     progress=part(progress, b, batches, "Editing")))
            lats.append(z.float().cpu())
    return torch.cat(out), torch.cat(lats)

