"""UNet configurations (diffusers ``UNet2DModel``) for the lab's image sizes.

A DDPM network predicts ε from (x_t, t). A score network uses diffusers' Fourier time
embedding, is called with σ as its timestep and returns ``net(x, σ) / σ`` — the NCSN++
convention, so ``ScoreSdeVePipeline`` can run it too. A VE-SDE score network is wrapped in EDM's
preconditioning (lab.models.precondition).
"""
from __future__ import annotations

from diffusers import UNet2DModel

from lab.errors import LabError

_DOWN3 = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")
_UP3 = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")

PRESETS: dict[str, dict] = {
    # 28 and 32 px grey (MNIST, Fashion-MNIST, USPS); attention only at the coarsest level
    "gray28": dict(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
                   down_block_types=_DOWN3, up_block_types=_UP3),
    "gray32": dict(sample_size=32, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
                   down_block_types=_DOWN3, up_block_types=_UP3),
    # 64 px RGB (UTKFace, CelebA)
    "rgb64": dict(sample_size=64, in_channels=3, out_channels=3, block_out_channels=(32, 64, 96, 128),
                  down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                  up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D")),
}


def build_unet(preset: str, formulation: str = "ddpm", **overrides) -> UNet2DModel:
    """A fresh UNet. ``formulation`` is 'ddpm' (ε-prediction) or 'score' (Fourier σ-embedding)."""
    if preset not in PRESETS:
        raise LabError(f"Unknown UNet preset {preset!r}: choose one of {', '.join(PRESETS)}.")
    config = dict(PRESETS[preset], layers_per_block=1, norm_num_groups=8, attention_head_dim=16)
    if formulation == "score":
        config.update(time_embedding_type="fourier", flip_sin_to_cos=True, freq_shift=0)
    elif formulation != "ddpm":
        raise LabError(f"Unknown formulation {formulation!r}: use 'ddpm' or 'score'.")
    config.update(overrides)
    return UNet2DModel(**config)


def preset_for(size: int, channels: int) -> str:
    for name, cfg in PRESETS.items():
        if cfg["sample_size"] == size and cfg["in_channels"] == channels:
            return name
    known = ", ".join(f"{c['sample_size']}px/{c['in_channels']}ch" for c in PRESETS.values())
    raise LabError(f"No UNet preset for {size} px with {channels} channel(s): use one of {known}.")

