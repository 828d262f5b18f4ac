"""EDM's preconditioning of a score network (Karras et al. 2022, "Elucidating the design space", Table 1).

A variance-exploding score model sees x = x₀ + σz for σ from 0.01 to about 30. Asked for the score s = −z/σ
directly (NCSN), or for ε (a DDPM's parameterisation), the network's error is multiplied by σ in the denoised
image D = x + σ² s: at σ = 30 a 1 % error in ε is an error of 0.3 per pixel, and early in training the samples
that pass through large σ come out as grey noise. EDM instead writes

    D(x, σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, c_noise(σ)),
    c_skip = σ_d² / (σ² + σ_d²),  c_out = σ σ_d / √(σ² + σ_d²),  c_in = 1 / √(σ² + σ_d²),  c_noise = ¼ ln σ,

so that F's input and its training target have unit variance at every σ (σ_d: the data's scale), and the score
is s = (D − x) / σ². ``precondition_score`` wraps a diffusers ``UNet2DModel`` with a Fourier σ-embedding in
exactly that, as forward hooks: ``unet(x, σ).sample`` is the score, so every sampler, the loss and the FID
probe call it as before, and the weights, their saving and the EMA are untouched. diffusers' Fourier embedding
takes the log of its timestep, so the network is given σ^¼ (its log is c_noise); its built-in division of the
output by that timestep is undone. The card records ``{"name": "edm", "sigma_data": σ_d}`` and
``lab.models.store.load_diffusion`` re-applies it.
"""
from __future__ import annotations

import torch
from diffusers import UNet2DModel
from diffusers.models.unets.unet_2d import UNet2DOutput

NAME = "edm"


def coefficients(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in) of EDM at ``sigma``."""
    total = sigma ** 2 + sigma_data ** 2
    return sigma_data ** 2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt()


def precondition_score(unet: UNet2DModel, sigma_data: float) -> UNet2DModel:
    """Make ``unet(x, σ).sample`` the EDM-preconditioned score (module docstring). Idempotent."""
    if getattr(unet, "lab_preconditioning", None) is not None:
        return unet
    unet.lab_preconditioning = {"name": NAME, "sigma_data": float(sigma_data)}

    def before(module, args, kwargs):
        x, sigma, args, kwargs = _split(args, kwargs)
        sigma = _per_sample(sigma, x)
        *_, c_in = coefficients(sigma, sigma_data)
        return _join(x * c_in, sigma.flatten() ** 0.25 if sigma.ndim else sigma ** 0.25, args, kwargs)

    def after(module, args, kwargs, output):
        x_in, quarter, *_ = _split(args, kwargs)
        sigma = _per_sample(torch.as_tensor(quarter, device=x_in.device, dtype=torch.float32) ** 4, x_in)
        c_skip, c_out, c_in = coefficients(sigma, sigma_data)
        raw = (output.sample if hasattr(output, "sample") else output[0]).float()
        network = raw * sigma ** 0.25  # undo diffusers' division by the timestep it was given
        x = x_in.float() / c_in
        score = (c_skip * x + c_out * network - x) / sigma ** 2
        return UNet2DOutput(sample=score) if hasattr(output, "sample") else (score,)

    unet.register_forward_pre_hook(before, with_kwargs=True)
    unet.register_forward_hook(after, with_kwargs=True)
    return unet


def _split(args, kwargs):
    args, kwargs = list(args), dict(kwargs)
    x = args[0] if args else kwargs["sample"]
    sigma = args[1] if len(args) > 1 else kwargs["timestep"]
    return x, sigma, args, kwargs


def _join(x, sigma, args, kwargs):
    for position, name, value in ((0, "sample", x), (1, "timestep", sigma)):
        if len(args) > position:
            args[position] = value
        else:
            kwargs[name] = value
    return tuple(args), kwargs


def _per_sample(sigma, x: torch.Tensor) -> torch.Tensor:
    """σ as a float32 tensor broadcastable against ``x`` (one value, or one per sample)."""
    sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32)
    return sigma.reshape(-1, *([1] * (x.ndim - 1))) if sigma.ndim else sigma
